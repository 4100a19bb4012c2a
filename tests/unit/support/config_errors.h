/*
 * A collector of the configuration errors a driver reports while opening a
 * device, so that a test can check each key and message.
 *
 * Use: zero a struct config_errors, set dev_config.error to
 * config_errors_record and dev_config.error_ctx to the struct, and call the
 * driver's open(). The caller owns the struct; it is written only from the
 * thread that calls open(), and keeps the first CONFIG_ERRORS_MAX reports.
 */
#ifndef PERFUSE_TEST_CONFIG_ERRORS_H
#define PERFUSE_TEST_CONFIG_ERRORS_H

#include "driver.h"

#define CONFIG_ERRORS_MAX 8

struct config_errors {
    int n;
    char key[CONFIG_ERRORS_MAX][48];        /* "" for an error about the whole entry */
    char text[CONFIG_ERRORS_MAX][400];
};

/* dev_config.error that records into cfg->error_ctx instead of printing. */
void config_errors_record(const struct dev_config *cfg, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
