/* A run's claim on the rig's actuators, overlap between claims, run names. */
#include "claims.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Claim channel ch and every writable channel of its device; a regulated
 * channel claims its regulator's actuator (and that device) too. */
static void claim_device_of(struct claims *c, const struct rig *rig, int ch)
{
    if (ch < 0 || (size_t)ch >= c->n)
        return;
    int reg = rig_regulator_of(rig, ch);
    if (reg >= 0 && rig->regulators[reg].actuator != ch)
        claim_device_of(c, rig, rig->regulators[reg].actuator);
    const struct rig_device *dev = &rig->devices[rig->channels[ch].device];
    for (size_t k = 0; k < dev->n_chans; k++) {
        size_t idx = dev->first_channel + k;
        if (idx < c->n && rig->channels[idx].writable)
            c->writes[idx] = true;
    }
    c->writes[ch] = true;
}

/* Claim the targets of a list. */
static void claim_targets(struct claims *c, const struct rig *rig, const struct plan_target *t,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        claim_device_of(c, rig, t[i].channel);
}

/* Walk a step list: what it writes is claimed, what it waits on is read. */
static void claim_steps(struct claims *c, const struct rig *rig, const struct plan_step *parent)
{
    for (size_t i = 0; i < parent->n_steps; i++) {
        const struct plan_step *s = &parent->steps[i];
        claim_targets(c, rig, s->targets, s->n_targets);
        if (s->kind == STEP_WAIT && s->cond_channel >= 0 && (size_t)s->cond_channel < c->n)
            c->reads[s->cond_channel] = true;
        if (s->kind == STEP_REPEAT)
            claim_steps(c, rig, s);
    }
}

/* The claim of plan on rig. */
int claims_of_plan(const struct plan *plan, const struct rig *rig, struct claims *out)
{
    memset(out, 0, sizeof *out);
    size_t n = rig->n_channels;
    out->writes = calloc(n ? n : 1, sizeof *out->writes);
    out->reads = calloc(n ? n : 1, sizeof *out->reads);
    if (out->writes == NULL || out->reads == NULL) {
        claims_free(out);
        return -ENOMEM;
    }
    out->n = n;
    claim_steps(out, rig, &plan->root);
    /* safe_state is what abort, a fault and on_shutdown: safe-stop write. */
    claim_targets(out, rig, plan->safe_state, plan->n_safe);
    for (size_t i = 0; i < plan->n_limits; i++)
        if (plan->limits[i].channel >= 0 && (size_t)plan->limits[i].channel < n)
            out->reads[plan->limits[i].channel] = true;
    return 0;
}

/* Which channels a run of plan records. */
void claims_recorded(const struct plan *plan, const struct claims *c, bool *keep)
{
    for (size_t i = 0; i < c->n; i++)
        keep[i] = plan->record == NULL || c->writes[i] || c->reads[i];
    for (size_t i = 0; i < plan->n_record; i++)
        if (plan->record[i] >= 0 && (size_t)plan->record[i] < c->n)
            keep[plan->record[i]] = true;
}

/* Free a claim's arrays. */
void claims_free(struct claims *c)
{
    free(c->writes);
    free(c->reads);
    memset(c, 0, sizeof *c);
}

/* The first channel both claims hold, or -1. */
int claims_overlap(const struct claims *a, const struct claims *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++)
        if (a->writes[i] && b->writes[i])
            return (int)i;
    return -1;
}

/* How many actuator channels c holds. */
size_t claims_count(const struct claims *c)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        k += c->writes[i];
    return k;
}

/* The channels c holds, comma-separated. */
void claims_list(const struct claims *c, const struct rig *rig, char *buf, size_t len)
{
    size_t at = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n && i < rig->n_channels; i++) {
        if (!c->writes[i])
            continue;
        int w = snprintf(buf + at, len - at, "%s%s", at ? ", " : "", rig->channels[i].name);
        if (w < 0 || (size_t)w >= len - at)
            return;
        at += (size_t)w;
    }
}

/* Why a run cannot take channel ch. */
void claims_conflict_message(const struct rig *rig, int ch, const char *holder_name,
                             const char *holder_id, char *buf, size_t len)
{
    const char *cname = ch >= 0 && (size_t)ch < rig->n_channels ? rig->channels[ch].name : "?";
    if (holder_id != NULL && holder_id[0] != '\0')
        snprintf(buf, len, "%s is held by run %s (%.4s) until it ends", cname, holder_name,
                 holder_id);
    else
        snprintf(buf, len, "%s is held by run %s until it ends", cname, holder_name);
}

/* Whether name is a valid run name. */
bool claims_name_valid(const char *name, char *err, size_t len)
{
    size_t n = strlen(name);
    if (n == 0 || n > CLAIMS_MAX_NAME) {
        snprintf(err, len, "a run name has 1 to %d characters", CLAIMS_MAX_NAME);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!(isalnum(ch) || ch == '-' || ch == '_' || ch == '.') || ch >= 0x80) {
            snprintf(err, len, "a run name has only letters, digits, '-', '_' and '.' "
                     "(not '%c' at %zu)", isprint(ch) ? ch : '?', i + 1);
            return false;
        }
    }
    return true;
}

/* A run name derived from a protocol's name. */
void claims_default_name(const char *protocol_name, char *buf, size_t len)
{
    size_t at = 0, max = len ? len - 1 : 0;
    if (max > CLAIMS_MAX_NAME)
        max = CLAIMS_MAX_NAME;
    bool dash = false;
    for (const char *p = protocol_name ? protocol_name : ""; *p && at < max; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x80 && (isalnum(ch) || ch == '_' || ch == '.')) {
            buf[at++] = (char)tolower(ch);
            dash = false;
        } else if (!dash && at > 0) {
            buf[at++] = '-';
            dash = true;
        }
    }
    while (at > 0 && buf[at - 1] == '-')
        at--;
    if (len == 0)
        return;
    if (at == 0)
        snprintf(buf, len, "run");
    else
        buf[at] = '\0';
}
