/*
 * The MQTT client (controller/MQTT.md): publishes the rig's state, status,
 * samples, events and alarms to the broker the rig's 'mqtt:' section names,
 * and takes commands from it. libmosquitto runs on a thread of its own; the
 * loop hands it messages through a bounded queue, so nothing the broker does
 * can block the loop, the buses or the recorder. While the broker is out of
 * reach, messages are kept (bounded) and sent on reconnect, marked
 * "historical"; what did not fit is counted in an event. The broker is never
 * in the safety path: the run file stays the record.
 */
#ifndef PERFUSE_MQTT_H
#define PERFUSE_MQTT_H

#include <stddef.h>
#include <stdint.h>

struct daemon;
struct mqtt;

/* Start the client if the rig has an 'mqtt:' section (else *out = NULL and 0).
 * Loop thread, before the loop runs. A bad setting (unreadable password file,
 * a rig name that cannot be a topic level) returns a negative errno with the
 * reason and the fix in err; a broker out of reach is no error. The daemon
 * owns *out: mqtt_stop, then mqtt_free once the loop has ended. */
int mqtt_start(struct mqtt **out, struct daemon *d, char *err, size_t errlen);
/* A sample of rig channel ch (value: what the run file records, NaN for a
 * failed or implausible reading) taken at clock time t_ns. Loop thread. */
void mqtt_on_sample(struct mqtt *m, uint32_t ch, double value, int64_t t_ns);
/* The daemon stops: publish what is pending and the state offline, then stop
 * the thread (at most about 2 s) and close the loop's handles. Call while the
 * last run is still there, so its last samples and events go out. */
void mqtt_stop(struct mqtt *m);
/* Free, once the loop has ended. NULL is fine. */
void mqtt_free(struct mqtt *m);

#endif
