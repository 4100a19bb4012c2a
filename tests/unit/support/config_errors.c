/*
 * Recording the configuration errors a driver reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config_errors.h"

/* dev_config.error that records into cfg->error_ctx instead of printing. */
void config_errors_record(const struct dev_config *cfg, const char *key, const char *fmt, ...)
{
    struct config_errors *e = cfg->error_ctx;
    if (e->n >= CONFIG_ERRORS_MAX)
        return;
    snprintf(e->key[e->n], sizeof e->key[0], "%s", key ? key : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text[e->n], sizeof e->text[0], fmt, ap);
    va_end(ap);
    e->n++;
}

/* Fail unless exactly n reports were made, each as want says, in that order. */
void config_errors_expect(const struct config_errors *e, size_t n, const struct config_error_want *want)
{
    for (size_t i = 0; i < n && i < (size_t)e->n; i++) {
        if (want[i].key != NULL && strcmp(e->key[i], want[i].key) != 0)
            fail_msg("error %zu: key '%s', expected '%s' (%s)", i, e->key[i], want[i].key, e->text[i]);
        if (want[i].text != NULL && strstr(e->text[i], want[i].text) == NULL)
            fail_msg("error %zu: '%s' does not say '%s'", i, e->text[i], want[i].text);
    }
    if ((size_t)e->n != n)
        fail_msg("%d errors reported, expected %zu (first: %s)", e->n, n, e->n > 0 ? e->text[0] : "none");
}
