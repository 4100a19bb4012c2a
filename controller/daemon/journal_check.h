/*
 * Whether a decoded run journal may be used to continue its run on this
 * daemon: the rig is the one the run was started on, the protocol is the one
 * it ran, every setpoint and override is one the rig allows, and every time
 * is inside the run. A journal is a file anyone with access to the data directory can edit
 * or break; nothing in it is used before this has passed.
 *
 * Pure; any thread.
 */
#ifndef PERFUSE_JOURNAL_CHECK_H
#define PERFUSE_JOURNAL_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "plan/plan.h"
#include "plan/rig.h"

/* How far a journal's times may lie ahead of the wall clock (clock steps, NTP). */
#define JOURNAL_CLOCK_SLACK_NS (10 * 60 * 1000000000LL)
/* The oldest run a journal may continue: a journal left this long is stale. */
#define JOURNAL_MAX_AGE_NS (366 * 86400 * 1000000000LL)
/* The earliest start a journal may claim: 2000-01-01T00:00:00Z. */
#define JOURNAL_MIN_START_NS (946684800 * 1000000000LL)

/* Check j against this daemon's rig and the plan loaded from j's protocol
 * text, at wall-clock time now_wall_ns (CLOCK_REALTIME). plan may be NULL:
 * then only what needs no plan is checked (do that before loading the plan,
 * so that an edited protocol is reported as edited). Returns 0, or -EINVAL
 * with one line in err saying what does not fit and what it should be. */
int journal_validate(const struct journal_rec *j, const struct rig *rig, const struct plan *plan,
                     int64_t now_wall_ns, char *err, size_t errlen);

#endif
