/* The rig's events while no run records them: a numbered ring. */
#include "rigevents.h"
#include "base/timeutil.h"
#include "base/utf8.h"

#include <stdio.h>

void rig_events_add(struct rig_events *e, int64_t wall_ns, const char *severity, const char *source,
                    const char *code, const char *message)
{
    struct rig_event *ev = &e->ring[e->total % RIG_EVENTS_KEPT];
    ev->seq = e->total++;
    ev->wall_ns = wall_ns;
    utf8_copy(ev->severity, sizeof ev->severity, severity);
    utf8_copy(ev->source, sizeof ev->source, source);
    utf8_copy(ev->code, sizeof ev->code, code);
    utf8_copy(ev->message, sizeof ev->message, message);
}

const struct rig_event *rig_events_at(const struct rig_events *e, uint64_t seq)
{
    if (seq >= e->total || e->total - seq > RIG_EVENTS_KEPT)
        return NULL;
    return &e->ring[seq % RIG_EVENTS_KEPT];
}

json_t *rig_event_json(const struct rig_event *ev)
{
    char utc[40], local[48];
    time_iso8601(ev->wall_ns, utc, sizeof utc);
    time_iso8601_local(ev->wall_ns, local, sizeof local);
    return json_pack("{s:I,s:f,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)ev->seq, "time",
                     (double)ev->wall_ns / 1e9, "utc", utc, "local", local, "severity", ev->severity,
                     "source", ev->source, "code", ev->code, "message", ev->message);
}
