/*
 * Recording the configuration errors a driver reports.
 */
#include <stdarg.h>
#include <stdio.h>

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
