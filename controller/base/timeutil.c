/* Time helpers shared by all threads: monotonic and wall clocks, ISO 8601. */
#include "timeutil.h"

#include <stdio.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC in milliseconds. */
int64_t time_mono_ms(void)
{
    return (int64_t)(time_mono_ns() / NS_PER_MS);
}

/* CLOCK_REALTIME in nanoseconds since the epoch. */
int64_t time_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* Format wall time as ISO 8601 UTC with microseconds. */
void time_iso8601(int64_t wall_ns, char *buf, size_t len)
{
    time_t secs = (time_t)(wall_ns / NS_PER_SEC);
    long usec = (long)((wall_ns % NS_PER_SEC) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
}

/* Format wall time as ISO 8601 local time with the zone's offset. */
void time_iso8601_local(int64_t wall_ns, char *buf, size_t len)
{
    time_t secs = (time_t)(wall_ns / NS_PER_SEC);
    long ms = (long)((wall_ns % NS_PER_SEC) / 1000000);
    struct tm tm;
    localtime_r(&secs, &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%c%02ld:%02ld", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms, sign, off / 60, off % 60);
}

/* Format wall time as "YYYYmmdd-HHMMSS" (UTC) for file names. */
void time_stamp_compact(int64_t wall_ns, char *buf, size_t len)
{
    time_t secs = (time_t)(wall_ns / NS_PER_SEC);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, len, "%Y%m%d-%H%M%S", &tm);
}
