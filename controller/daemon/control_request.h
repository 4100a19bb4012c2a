/*
 * Parsing one request line of the control protocol against a table of
 * commands: JSON, an object, a command of the table, its arguments of the
 * right types. Pure (no daemon, no I/O): the table is a parameter, so that
 * the parser can be fuzzed (tests/fuzz/fuzz_request.c) and tested with a
 * table of its own (tests/unit/test_control_request.c).
 */
#ifndef PERFUSE_CONTROL_REQUEST_H
#define PERFUSE_CONTROL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct ctl_client;

/* A handler's return value: it arranged a later reply (control.h). */
#define CMD_DEFERRED 1

/* One control command. Its handler fills *result and returns 0, returns
 * CMD_DEFERRED after arranging a later reply, or returns a negative errno
 * with a message in err. Loop thread only. */
struct ctl_command {
    const char *name;
    int (*exec)(struct ctl_client *cl, json_t *req, json_t *result, char *err, size_t errlen);
    /* The arguments it takes, "name=T" separated by spaces, T one of: s string,
     * n number, b boolean, l list of strings, a alarm (positive integer or
     * "all"); a trailing ! means required. */
    const char *args;
    bool read_only;             /* changes nothing: served on the read-only socket too */
    bool loads_protocol;        /* may load a protocol (control_load_protocol), which then
                                 * serves only that request: one at a time per connection */
};

/* The commands a control server answers: v[0] to v[n - 1], in the order
 * their names are listed in messages. */
struct ctl_table {
    const struct ctl_command *v;
    size_t n;
};

/* The command of t called name, or NULL. */
const struct ctl_command *ctl_table_find(const struct ctl_table *t, const char *name);
/* The names of t's commands, comma-separated, into buf (cut to fit). */
void ctl_table_names(const struct ctl_table *t, char *buf, size_t len);

/* Parse line (len bytes, no newline) against the commands of t. On success
 * returns 0 with *req (owned by the caller) and *cmd. On failure returns
 * -EPROTO (not a request), -ENOSYS (unknown command: err lists t's commands)
 * or -EINVAL (bad arguments) with a message in err, and *id (a new reference,
 * or NULL) set to the request's id if it had one. */
int request_parse(const struct ctl_table *t, const char *line, size_t len, json_t **req,
                  const struct ctl_command **cmd, json_t **id, char *err, size_t errlen);
/* Check req's members against cmd's arguments: unknown names, wrong types,
 * missing required ones. Returns 0 or -EINVAL with err. */
int request_check_args(const struct ctl_command *cmd, json_t *req, char *err, size_t errlen);

#endif
