/* Logging for every perfuse program: levels, object names, rate limits. */
#ifndef PERFUSE_LOG_H
#define PERFUSE_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Set the lowest level printed; returns 0, or -EINVAL for an unknown name. */
int log_set_level_name(const char *name);
void log_set_level(enum log_level level);
/* Set the program name printed before every line. The string must outlive logging. */
void log_set_program(const char *name);

/* Print one line to stderr: "perfused: pump1: message". Thread-safe. */
void log_msg(enum log_level level, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(obj, ...) log_msg(LOG_ERROR, obj, __VA_ARGS__)
#define log_warn(obj, ...)  log_msg(LOG_WARN, obj, __VA_ARGS__)
#define log_info(obj, ...)  log_msg(LOG_INFO, obj, __VA_ARGS__)
#define log_debug(obj, ...) log_msg(LOG_DEBUG, obj, __VA_ARGS__)

/*
 * A rate limit for a repeated complaint: at most one line per interval, and the
 * next line printed says how many were suppressed. Owned by whoever complains;
 * zero-initialise it.
 */
struct log_ratelimit {
    uint64_t last_ns;
    uint32_t suppressed;
};

/* Like log_msg, but at most once per interval_ms for this limiter. */
void log_limited(struct log_ratelimit *rl, uint32_t interval_ms, enum log_level level,
                 const char *object, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
