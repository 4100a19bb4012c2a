/*
 * One perfusectl invocation: its global options, the command it runs (an
 * entry of the one command table in perfusectl.c), and the requests it sends
 * to perfused, with perfusectl's exit codes. Blocking; perfusectl only.
 */
#ifndef PERFUSE_CTL_H
#define PERFUSE_CTL_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "ctlclient.h"

/* perfusectl's exit codes (a contract: README.md, DESIGN.md section 1). */
enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct ctl;

/* What a command needs: the usage lists it under its kind, and a command
 * that only reads may use the read-only socket. */
enum ctl_reach {
    CTL_DAEMON,                 /* talks to perfused on the control socket */
    CTL_DAEMON_READ,            /* talks to perfused and only reads: the read-only socket will do */
    CTL_OFFLINE,                /* needs no daemon */
};

/* One command of perfusectl. The table of them (perfusectl.c) is the one
 * source of the usage, of COMMAND --help, of help COMMAND and of dispatch. */
struct ctl_command {
    const char *name;
    const char *synopsis;       /* the whole command line after "perfusectl ", name first */
    const char *summary;        /* what the usage says of it, in a few words */
    const char *help;           /* what COMMAND --help says of it (lines of at most 90 columns) */
    const char *example;        /* a command line that works */
    /* Run it: argv[0] is the command's name. Returns an exit code. */
    int (*run)(struct ctl *c, int argc, char **argv);
    enum ctl_reach reach;
    bool own_text_check;        /* it sends no argument as given (or checks its own): main does
                                 * not refuse an argument that is not UTF-8 before it runs */
};

/* The invocation. Owned by main, for the process's life. */
struct ctl {
    const struct ctl_command *cmd;  /* the command being run */
    const char *socket;             /* the socket to use */
    bool json;                      /* --json: output for programs */
    bool ro;                        /* --ro: use the read-only socket */
    bool socket_given;              /* --socket was given */
    char sockbuf[108];
    char robuf[108];
};

/* Print text to out from column col on, wrapped at column width at spaces;
 * lines after the first start at column indent. A bracketed group is not
 * broken; a newline in text starts a new line. Ends with a newline. */
void ctl_print_wrapped(FILE *out, int col, const char *text, int indent, int width);
/* Print "usage: perfusectl " and cmd's synopsis, wrapped under its
 * arguments; global is printed between the two (e.g. "[--json] "), may be "". */
void ctl_print_usage_line(FILE *out, const char *global, const struct ctl_command *cmd);
/* A usage error of the command being run: its synopsis and example on
 * stderr. Returns EXIT_USAGE. */
int ctl_usage_error(const struct ctl *c);

/* Connect to the daemon, or exit EXIT_UNREACHABLE with a message. A command
 * that only reads goes to the read-only socket when the control socket is not
 * open to this user (and no socket was named). Returns the client (owned by
 * the caller: ctlclient_close). */
struct ctlclient *ctl_connect(struct ctl *c);
/* Send req (taken) and wait for its reply. A refusal is printed (as JSON with
 * --json) and *exit_code is EXIT_REFUSED; a lost daemon is EXIT_UNREACHABLE.
 * Returns the result object (owned by the caller) or NULL. */
json_t *ctl_call(struct ctl *c, struct ctlclient *cl, json_t *req, int *exit_code);

#endif
