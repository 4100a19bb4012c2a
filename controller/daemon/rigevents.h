/*
 * The rig's events while no run records them: a device that fails or comes
 * back, an alarm raised or acknowledged, the broker reached, while the rig is
 * idle. A run file holds the events of its run; these would otherwise reach
 * only the daemon's log. The last RIG_EVENTS_KEPT are kept, numbered, for the
 * broker (controller/MQTT.md) to publish.
 *
 * Loop thread only. Fixed size: RIG_EVENTS_KEPT x ~380 bytes, inline.
 */
#ifndef PERFUSE_RIGEVENTS_H
#define PERFUSE_RIGEVENTS_H

#include <jansson.h>
#include <stdint.h>

#define RIG_EVENTS_KEPT 256

struct rig_event {
    uint64_t seq;
    int64_t wall_ns;
    char severity[8], source[72], code[32], message[256];
};

struct rig_events {
    struct rig_event ring[RIG_EVENTS_KEPT];
    uint64_t total;             /* recorded so far; the next one gets this number */
};

/* Record one event at wall-clock time wall_ns (texts are cut to fit, kept UTF-8). */
void rig_events_add(struct rig_events *e, int64_t wall_ns, const char *severity, const char *source,
                    const char *code, const char *message);
/* The event numbered seq if it is still kept, else NULL. */
const struct rig_event *rig_events_at(const struct rig_events *e, uint64_t seq);
/* One event as the broker sends it: `time` is wall-clock seconds since the
 * epoch (there is no run time), with `utc` and `local`. A new reference. */
json_t *rig_event_json(const struct rig_event *ev);

#endif
