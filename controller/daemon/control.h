/*
 * The control server: the daemon's Unix socket. One JSON request per line,
 * one JSON reply per line; the first line the server sends is a greeting with
 * the protocol version. It knows the commands only as the table it is given
 * (control_request.h), and the program it serves only through hooks: it
 * includes neither the daemon nor the commands. Loop thread only.
 */
#ifndef PERFUSE_CONTROL_H
#define PERFUSE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>
#include <uv.h>

#include "control_request.h"

struct control;
struct plan_work;
struct rig;

/* One connected client, as command handlers see it. */
struct ctl_client {
    struct control *ctl;
    uid_t uid;
    pid_t pid;
    char user[96];              /* "uid 1000 (alice)" for the audit trail */
    bool retrying;              /* the handler runs a request it deferred before */
    bool read_only;             /* connected to the read-only socket */
    struct plan_work *parsed;   /* a run request's protocol, loaded on the thread pool
                                 * (owned by the control server; take ->plan) */
    char run_sel[40];           /* the run this client's events, watch and wait follow (its id,
                                 * set by those commands); "": the default one */
};

/* Where the server listens. */
struct control_config {
    const char *socket_path;        /* NULL: sockpath_default */
    const char *ro_socket_path;     /* NULL: perfused-ro.sock beside socket_path; "none": no such socket */
    const char *socket_group;       /* NULL: the daemon's group */
    const char *ro_socket_group;    /* NULL: the read-only socket is 0666 */
    int max_clients;                /* per socket; 0: CONTROL_MAX_CLIENTS */
};

/* What the server needs from the program it serves, besides its commands.
 * Each hook is given ctx; loop thread only. */
struct control_hooks {
    void *ctx;                  /* also what control_context returns to the handlers */
    /* A fresh status object (the "status" command's result), for watchers
     * and waiters. */
    json_t *(*status)(void *ctx, struct ctl_client *cl);
    /* The id of the run cl follows (cl->run_sel, or the current or last
     * run), NULL if there is none; and the sequence numbers of its events
     * still kept: first to total - 1. */
    const char *(*events)(void *ctx, struct ctl_client *cl, uint64_t *first, uint64_t *total);
    /* The event seq of that run as a JSON object (seq, time, severity,
     * source, code, message), or NULL if it is no longer kept. */
    json_t *(*event)(void *ctx, struct ctl_client *cl, uint64_t seq);
};

/* Open the socket (mode 0660) and the read-only socket (mode 0666, or 0660
 * with its group) that cfg names on loop, listen backlog SOMAXCONN, and serve
 * the commands of table (kept, not copied) with hooks (copied). Refuses if
 * another daemon answers there; replaces a stale socket. Returns 0 or a
 * negative errno with a message in err. */
int control_start(struct control **out, uv_loop_t *loop, const struct control_config *cfg,
                  const struct ctl_table *table, const struct control_hooks *hooks, char *err,
                  size_t errlen);
/* The socket's path. */
const char *control_path(const struct control *c);
/* Close the socket and every client; frees once libuv has released the handles. */
void control_close(struct control *c);

/* The hooks' ctx: what a handler runs in. */
void *control_context(struct control *c);
/* Send a JSON reply line to client (steals the reference). */
void control_send(struct ctl_client *cl, json_t *msg);
/* Register cl to be answered with id when the current run's file closes. */
int control_add_waiter(struct ctl_client *cl, json_t *id);
/* Send cl the status every interval_s seconds (with the run's new events)
 * until it disconnects; a watcher that does not read is dropped. */
int control_add_watcher(struct ctl_client *cl, double interval_s);
/* Run cmd with req again once the current run's file has closed, or after
 * timeout_ms at the latest (the handler then sees cl->retrying and must not
 * defer again). Takes a reference to req. */
int control_retry_after_close(struct ctl_client *cl, json_t *req, const char *cmd,
                              unsigned timeout_ms);
/* Load a run request's protocol text on the thread pool, against rig (which
 * must outlive the load); when it is done the request is executed again with
 * cl->parsed set. 0 or a negative errno. */
int control_load_protocol(struct ctl_client *cl, json_t *req, const struct rig *rig, const char *path,
                          const char *text);
/* Reply to cl's events request id with one page of the current run's events
 * (seq >= cursor, or the last `last` ones kept if last > 0; time >= since; at
 * most limit and about CONTROL_EVENTS_BYTES), written a few events per loop
 * turn, paused while cl does not read. A remote requester (MQTT) gets the page
 * as one reply, encoded on the loop a few events per turn, put together on
 * the thread pool. 0, -ENOENT (no run), -EBUSY, or -ENOMEM. */
int control_stream_events(struct ctl_client *cl, json_t *id, double since, uint64_t cursor, size_t limit,
                          size_t last);
/* The current run's file has closed: answer every waiter, run what waited
 * for it. c may be NULL. */
void control_run_closed(struct control *c, const char *run_id);

/* Takes a remote request's reply (a new reference). */
typedef void (*control_reply_fn)(void *ctx, json_t *msg);
/* Takes a remote request's reply made off the loop, as JSON text (stolen). */
typedef void (*control_reply_text_fn)(void *ctx, char *text);

/* Who sent a remote request and where its reply goes. */
struct control_remote {
    const char *who;            /* the sender in the audit trail ("mqtt user alice") */
    bool read_only;             /* only the table's read-only commands are served */
    const char *refused_hint;   /* read_only: the end of a refusal's message, where to go
                                 * instead (NULL: none) */
    control_reply_fn reply;     /* the reply, now or (a run whose protocol loads on the
                                 * thread pool) later */
    control_reply_text_fn reply_text;   /* a reply made off the loop (history); NULL: such
                                         * a command is refused */
    void *ctx;                  /* given to both; valid until control_close */
};

/* Handle one request that came from outside the sockets (the MQTT client) as
 * if a client of the control socket had sent line: the same parser, command
 * table and checks; from r (copied). watch, wait and events are refused: they
 * stream on a socket. */
void control_remote_request(struct control *c, const struct control_remote *r, const char *line,
                            size_t len);

/* Replies made off the loop: at most this many on the thread pool at once
 * (the others wait their turn), and this many in all (then -EBUSY). */
#define CONTROL_OFFLOOP_POOL 4
#define CONTROL_OFFLOOP_MAX 32
/* Prepares a piece of a reply from arg on the loop (a bounded piece: some
 * 100 us); 1 while there is more, 0 when done, or a negative errno. */
typedef int (*control_step_fn)(void *arg);
/* Writes a reply's result (a JSON object) to out from arg; 0 or a negative
 * errno. Runs on the thread pool: it may touch nothing but arg. */
typedef int (*control_write_fn)(void *arg, FILE *out);
/* Reply to cl's request id with a result too large to make at once on the
 * loop: step(arg) (if not NULL) is called on the loop, within the server's
 * budget per loop turn, until it is done; then write(arg, out) runs on the
 * thread pool (once it has room: CONTROL_OFFLOOP_POOL); free_arg(arg) runs
 * on the loop at the end. This client's next
 * requests wait for the reply, so replies stay in order. Returns 0 (the
 * handler then returns CMD_DEFERRED; arg is the server's), or a negative
 * errno (arg stays the caller's): -EBUSY while CONTROL_OFFLOOP_MAX replies
 * are being made or wait, -ENOTSUP for a remote requester that takes no text. */
int control_reply_off_loop(struct ctl_client *cl, json_t *id, control_step_fn step,
                           control_write_fn write, void (*free_arg)(void *arg), void *arg);

#endif
