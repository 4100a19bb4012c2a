/* Time helpers shared by all threads: monotonic and wall clocks, ISO 8601. */
#ifndef PERFUSE_TIMEUTIL_H
#define PERFUSE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define NS_PER_MS  1000000LL
#define NS_PER_SEC 1000000000LL

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t time_mono_ns(void);
/* CLOCK_MONOTONIC in milliseconds, for deadlines of device exchanges. */
int64_t time_mono_ms(void);
/* CLOCK_REALTIME in nanoseconds since the epoch. */
int64_t time_wall_ns(void);
/* Format wall time as ISO 8601 UTC with microseconds, "2026-11-22T09:10:11.123456Z". */
void time_iso8601(int64_t wall_ns, char *buf, size_t len);
/* Format wall time as ISO 8601 in the local time zone, with its offset and
 * milliseconds: "2026-11-22T10:10:11.123+01:00". */
void time_iso8601_local(int64_t wall_ns, char *buf, size_t len);
/* Format wall time as "YYYYmmdd-HHMMSS" (UTC) for file names. */
void time_stamp_compact(int64_t wall_ns, char *buf, size_t len);

#endif
