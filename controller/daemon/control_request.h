/*
 * Parsing one request line of the control protocol: JSON, an object, a known
 * command, its arguments of the right types. Pure (no daemon, no I/O), so
 * that it can be fuzzed (tests/fuzz/fuzz_request.c).
 */
#ifndef PERFUSE_CONTROL_REQUEST_H
#define PERFUSE_CONTROL_REQUEST_H

#include <stddef.h>

#include <jansson.h>

#include "commands.h"

/* Parse line (len bytes, no newline). On success returns 0 with *req (owned by
 * the caller) and *cmd. On failure returns -EPROTO (not a request), -ENOSYS
 * (unknown command) or -EINVAL (bad arguments) with a message in err, and *id
 * (a new reference, or NULL) set to the request's id if it had one. */
int request_parse(const char *line, size_t len, json_t **req, const struct ctl_command **cmd,
                  json_t **id, char *err, size_t errlen);

#endif
