/* The alarm list: latching, acknowledgement and the events of each transition. */
#include "alarms.h"
#include "base/utf8.h"


#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void alarms_init(struct alarms *a, alarm_event_fn event, void *ctx)
{
    memset(a, 0, sizeof *a);
    a->next_id = 1;
    a->event = event;
    a->ctx = ctx;
}

void alarms_free(struct alarms *a)
{
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* The listed alarm of run for source/code/tag, or NULL. */
static struct alarm *find(const struct alarms *a, const char *run, const char *source, const char *code,
                          const char *tag)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].source, source) == 0 && strcmp(a->v[i].code, code) == 0 &&
            strcmp(a->v[i].tag, tag ? tag : "") == 0 && strcmp(a->v[i].run, run ? run : "") == 0)
            return &a->v[i];
    return NULL;
}

/* Report a transition. */
static void report(struct alarms *a, int64_t t, const char *sev, const struct alarm *al,
                   const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void report(struct alarms *a, int64_t t, const char *sev, const struct alarm *al,
                   const char *code, const char *fmt, ...)
{
    if (a->event == NULL)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    utf8_vformat(msg, sizeof msg, fmt, ap);
    va_end(ap);
    a->event(a->ctx, t, sev, al->source, code, msg, al->run);
}

/* Drop listed alarm i. */
static void drop(struct alarms *a, size_t i)
{
    memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof *a->v);
    a->n--;
}

uint32_t alarms_raise_run(struct alarms *a, const char *run, int64_t t_ns, const char *severity,
                          const char *source, const char *code, const char *tag, const char *fmt, ...)
{
    struct alarm *al = find(a, run, source, code, tag);
    if (al != NULL && al->active)
        return 0;
    if (al == NULL) {
        if (a->n == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 16;
            struct alarm *v = realloc(a->v, cap * sizeof *v);
            if (v == NULL)
                return 0;
            a->v = v;
            a->cap = cap;
        }
        al = &a->v[a->n++];
        memset(al, 0, sizeof *al);
        utf8_copy(al->source, sizeof al->source, source);
        snprintf(al->code, sizeof al->code, "%s", code);
        snprintf(al->tag, sizeof al->tag, "%s", tag ? tag : "");
        snprintf(al->run, sizeof al->run, "%s", run ? run : "");
    }
    /* A new id each time it is raised: an acknowledgement is for one occurrence. */
    al->id = a->next_id++;
    al->active = true;
    al->acked = false;
    al->acked_by[0] = '\0';
    al->raised_ns = t_ns;
    snprintf(al->severity, sizeof al->severity, "%s", severity);
    va_list ap;
    va_start(ap, fmt);
    utf8_vformat(al->message, sizeof al->message, fmt, ap);
    va_end(ap);
    report(a, t_ns, severity, al, "alarm_raised", "alarm %u %s: %s", al->id, al->code, al->message);
    return al->id;
}

void alarms_clear_run(struct alarms *a, const char *run, int64_t t_ns, const char *source,
                      const char *code, const char *tag)
{
    struct alarm *al = find(a, run, source, code, tag);
    if (al == NULL || !al->active)
        return;
    al->active = false;
    report(a, t_ns, "info", al, "alarm_cleared", "alarm %u %s cleared%s", al->id, al->code,
           al->acked ? "" : "; it stays listed until acknowledged");
    if (al->acked)
        drop(a, (size_t)(al - a->v));
}

int alarms_ack(struct alarms *a, int64_t t_ns, uint32_t id, const char *who)
{
    int acked = 0;
    bool found = false;
    for (size_t i = 0; i < a->n;) {
        struct alarm *al = &a->v[i];
        if (id != 0 && al->id != id) {
            i++;
            continue;
        }
        found = true;
        if (!al->acked) {
            al->acked = true;
            utf8_copy(al->acked_by, sizeof al->acked_by, who);
            acked++;
            report(a, t_ns, "info", al, "alarm_acked", "alarm %u %s acknowledged by %s%s", al->id,
                   al->code, who, al->active ? " (its condition still holds)" : "");
        }
        if (!al->active) {
            drop(a, i);
            continue;
        }
        i++;
    }
    return found || id == 0 ? acked : -ENOENT;
}

size_t alarms_unacked(const struct alarms *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++)
        n += !a->v[i].acked;
    return n;
}

const char *alarm_state_name(const struct alarm *al)
{
    return al->active ? (al->acked ? "acknowledged" : "active") : "cleared";
}

/* The id of the active alarm source/code/tag, or 0. */
uint32_t alarms_find_active_run(const struct alarms *a, const char *run, const char *source,
                                const char *code, const char *tag)
{
    const struct alarm *al = find(a, run, source, code, tag);
    return al != NULL && al->active ? al->id : 0;
}

bool alarm_concerns(const struct alarm *al, const char *run_id)
{
    return al->run[0] == '\0' || (run_id != NULL && strcmp(al->run, run_id) == 0);
}
