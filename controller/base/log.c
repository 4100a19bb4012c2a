/* Logging for every perfuse program: levels, object names, rate limits. */
#include "log.h"
#include "rtsched.h"
#include "timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum log_level log_level = LOG_INFO;
static const char *log_program = "perfuse";
static pthread_mutex_t log_lock;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

/* Set the lowest level printed, by name. */
int log_set_level_name(const char *name)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0 ||
            (i == LOG_WARN && strcmp(name, "warn") == 0)) {
            log_level = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Set the lowest level printed. */
void log_set_level(enum log_level level)
{
    log_level = level;
}

/* Set the program name printed before every line. */
void log_set_program(const char *name)
{
    log_program = name;
}

/* The lock inherits priority: a real-time thread logging waits no longer
 * for a normal one that holds it than that thread's line takes. */
static void log_lock_init(void)
{
    rtsched_mutex_init(&log_lock);
}

/* Format and print one line under the lock, so threads never interleave. */
static void log_vmsg(enum log_level level, const char *object, uint32_t suppressed,
                     const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    pthread_once(&log_once, log_lock_init);
    pthread_mutex_lock(&log_lock);
    if (object != NULL && object[0] != '\0')
        fprintf(stderr, "%s: %s: %s: %s", log_program, level_names[level], object, buf);
    else
        fprintf(stderr, "%s: %s: %s", log_program, level_names[level], buf);
    if (suppressed > 0)
        fprintf(stderr, " (%u similar messages suppressed)", suppressed);
    fputc('\n', stderr);
    pthread_mutex_unlock(&log_lock);
}

/* Print one line to stderr if its level is enabled. */
void log_msg(enum log_level level, const char *object, const char *fmt, ...)
{
    if (level > log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, object, 0, fmt, ap);
    va_end(ap);
}

/* Print at most once per interval for this limiter, counting what was dropped. */
void log_limited(struct log_ratelimit *rl, uint32_t interval_ms, enum log_level level,
                 const char *object, const char *fmt, ...)
{
    if (level > log_level)
        return;
    uint64_t now = time_mono_ns();
    if (rl->last_ns != 0 && now - rl->last_ns < (uint64_t)interval_ms * 1000000u) {
        rl->suppressed++;
        return;
    }
    uint32_t suppressed = rl->suppressed;
    rl->last_ns = now;
    rl->suppressed = 0;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, object, suppressed, fmt, ap);
    va_end(ap);
}
