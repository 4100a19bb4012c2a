/*
 * The control commands, one table entry each. A handler fills *result and
 * returns 0, returns CMD_DEFERRED after arranging a later reply, or returns a
 * negative errno with a message in err. Loop thread only.
 */
#ifndef PERFUSE_COMMANDS_H
#define PERFUSE_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "control.h"

#define CMD_DEFERRED 1

struct ctl_command {
    const char *name;
    int (*exec)(struct ctl_client *cl, json_t *req, json_t *result, char *err, size_t errlen);
    /* The arguments it takes, "name=T" separated by spaces, T one of: s string,
     * n number, b boolean, a alarm (positive integer or "all"); a trailing ! means required. */
    const char *args;
    bool read_only;             /* changes nothing: served on the read-only socket too */
};

/* The command called name, or NULL. */
const struct ctl_command *command_find(const char *name);
/* Check req's members against cmd's arguments (no daemon needed): unknown
 * names, wrong types, missing required ones. Returns 0 or -EINVAL with err. */
int command_check_args(const struct ctl_command *cmd, json_t *req, char *err, size_t errlen);
/* A fresh status object (the "status" command's result), for watchers. */
json_t *command_status(struct ctl_client *cl);
/* Comma-separated command names, for messages. */
const char *command_names(void);

#endif
