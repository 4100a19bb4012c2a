/*
 * The operator's name a run is started with (run --operator): what a run
 * file, its journal and its events can keep whole. Checked by perfusectl
 * before it sends a run, and by perfused when one comes in.
 */
#ifndef PERFUSE_RUN_OPERATOR_H
#define PERFUSE_RUN_OPERATOR_H

#include <stdbool.h>
#include <stddef.h>

/* The longest operator name a run keeps, in bytes of UTF-8 (the run file,
 * its journal and its events keep it whole; a longer one is refused). */
#define RUN_OPERATOR_MAX 95

/* Whether name can be an operator's name: UTF-8, at most RUN_OPERATOR_MAX
 * bytes, no control characters; if not, why in err. */
bool run_operator_ok(const char *name, char *err, size_t len);

#endif
