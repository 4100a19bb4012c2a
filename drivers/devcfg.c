/* Reading a device's rig-file parameters, for drivers' open(). */
#include "driver.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The parameter called key, or NULL. */
const struct dev_param *devcfg_param(const struct dev_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_params; i++)
        if (cfg->params[i].key != NULL && strcmp(cfg->params[i].key, key) == 0)
            return &cfg->params[i];
    return NULL;
}

/* The value of key, or NULL. */
const char *devcfg_get(const struct dev_config *cfg, const char *key)
{
    const struct dev_param *p = devcfg_param(cfg, key);
    return p ? p->value : NULL;
}

/* Parse key as a quantity in its canonical unit. */
int devcfg_quantity(const struct dev_config *cfg, const char *key, enum quantity q, double *out)
{
    const char *v = devcfg_get(cfg, key);
    if (v == NULL)
        return -ENOENT;
    char err[256];
    int col;
    double x;
    if (unit_parse_value(v, q, &x, err, sizeof err, &col) < 0) {
        cfg->error(cfg, key, "'%s': %s", key, err);
        return -EINVAL;
    }
    *out = x;
    return 0;
}

/* Parse key as an integer in [min, max]. */
int devcfg_int(const struct dev_config *cfg, const char *key, long min, long max, long *out)
{
    const char *v = devcfg_get(cfg, key);
    if (v == NULL)
        return -ENOENT;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno == ERANGE || n < min || n > max) {
        cfg->error(cfg, key, "'%s' must be a whole number from %ld to %ld, found '%s'", key, min,
                   max, v);
        return -EINVAL;
    }
    *out = n;
    return 0;
}

/* The known key nearest to key within a typo's reach (one edit for short
 * keys, two for longer ones), or NULL. */
static const char *nearest_known(const char *key, const char *const known[])
{
    const char *best = NULL;
    int best_d = 3;
    for (size_t j = 0; known[j] != NULL; j++) {
        int reach = strlen(known[j]) <= 4 ? 1 : 2;
        int d = unit_edit_distance(key, known[j]);
        if (d <= reach && d < best_d) {
            best_d = d;
            best = known[j];
        }
    }
    return best;
}

/* Report every parameter that is not in known, suggesting the nearest one. */
int devcfg_check_known(const struct dev_config *cfg, const char *const known[], const char *what)
{
    char list[256] = "";
    size_t used = 0;
    for (size_t j = 0; known[j] != NULL && used < sizeof list; j++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", j ? ", " : "", known[j]);
    int bad = 0;
    for (size_t i = 0; i < cfg->n_params; i++) {
        const char *k = cfg->params[i].key;
        bool ok = false;
        for (size_t j = 0; known[j] != NULL && !ok; j++)
            ok = strcmp(k, known[j]) == 0;
        if (ok)
            continue;
        bad = 1;
        const char *best = nearest_known(k, known);
        if (best != NULL)
            cfg->error(cfg, k, "unknown parameter '%s' for %s (did you mean '%s'?)", k, what, best);
        else
            cfg->error(cfg, k, "unknown parameter '%s' for %s (expected %s)", k, what, list);
    }
    return bad ? -EINVAL : 0;
}

/* A syringe pump's syringe: its inside diameter (required) and volume (optional). */
int devcfg_syringe(const struct dev_config *cfg, const char *what, double min_mm, double max_mm,
                   double *diameter_mm, double *volume_ul)
{
    int bad = 0;
    int rc = devcfg_quantity(cfg, "syringe.diameter", Q_LENGTH, diameter_mm);
    if (rc == -ENOENT) {
        cfg->error(cfg, NULL, "%s needs the syringe's inside diameter, e.g. "
                   "'syringe: {diameter: 14.57 mm}' for a BD 10 mL syringe", what);
        bad = 1;
    } else if (rc == 0 && (*diameter_mm < min_mm || *diameter_mm > max_mm)) {
        cfg->error(cfg, "syringe.diameter", "syringe diameter must be %g to %g mm, found %g mm",
                   min_mm, max_mm, *diameter_mm);
        bad = 1;
    }
    bad |= rc == -EINVAL;
    *volume_ul = 0;
    rc = devcfg_quantity(cfg, "syringe.volume", Q_VOLUME, volume_ul);
    if (rc == 0 && !(*volume_ul > 0)) {
        cfg->error(cfg, "syringe.volume", "syringe volume must be above 0, found %g uL", *volume_ul);
        bad = 1;
    }
    bad |= rc == -EINVAL;
    return bad ? -EINVAL : 0;
}

/* key as a flow above 0 in uL/min; dflt when absent. */
int devcfg_positive_flow(const struct dev_config *cfg, const char *key, double dflt, double *out)
{
    *out = dflt;
    int rc = devcfg_quantity(cfg, key, Q_FLOW, out);
    if (rc == 0 && !(*out > 0)) {
        cfg->error(cfg, key, "%s must be above 0, found %g uL/min", key, *out);
        return -EINVAL;
    }
    return rc == -EINVAL ? -EINVAL : 0;
}
