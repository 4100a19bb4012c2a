/*
 * A collector of the configuration errors a driver reports while opening a
 * device, so that a test can check each key and message.
 *
 * Use: zero a struct config_errors, set dev_config.error to
 * config_errors_record and dev_config.error_ctx to the struct, and call the
 * driver's open(); config_errors_expect() then checks the reports. The
 * caller owns the struct; it is written only from the
 * thread that calls open(), and keeps the first CONFIG_ERRORS_MAX reports.
 */
#ifndef PERFUSE_TEST_CONFIG_ERRORS_H
#define PERFUSE_TEST_CONFIG_ERRORS_H

#include "drivers/driver.h"

#define CONFIG_ERRORS_MAX 8

struct config_errors {
    int n;
    char key[CONFIG_ERRORS_MAX][48];        /* "" for an error about the whole entry */
    char text[CONFIG_ERRORS_MAX][400];
};

/* One report a driver must make: its key ("" for the whole entry, NULL for
 * any) and a part of its message (NULL for any). */
struct config_error_want {
    const char *key;
    const char *text;
};

/* dev_config.error that records into cfg->error_ctx instead of printing. */
void config_errors_record(const struct dev_config *cfg, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fail unless exactly n reports were made, each as want says, in that order. */
void config_errors_expect(const struct config_errors *e, size_t n, const struct config_error_want *want);

#endif
