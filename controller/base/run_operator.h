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

/* What else a run is started with: run --sample KEY=VALUE (the sample: chip id,
 * cell line, passage, medium lot...) and run --notes TEXT. */
#define RUN_SAMPLE_MAX 32           /* --sample fields in one run */
#define RUN_SAMPLE_KEY_MAX 63       /* bytes of a key: letters, digits, '_' */
#define RUN_SAMPLE_VALUE_MAX 1024   /* bytes of UTF-8 in a value */
#define RUN_NOTES_MAX 8192          /* bytes of UTF-8 in the notes */

/* Whether kv is a sample field "KEY=VALUE" (KEY a letter then letters, digits
 * or '_'; VALUE UTF-8 without control characters); if not, why in err. */
bool run_sample_ok(const char *kv, char *err, size_t len);
/* Whether text can be a run's notes: UTF-8, at most RUN_NOTES_MAX bytes, no
 * control characters but line breaks and tabs; if not, why in err. */
bool run_notes_ok(const char *text, char *err, size_t len);

#endif
