/*
 * What a run claims of the rig: the actuator channels its protocol writes
 * (its steps, its safe_state, which on_shutdown also applies) and every other
 * writable channel of the devices those belong to, since a device is driven
 * as a whole. Two runs may be active together when their claims do not
 * overlap. Sensors are never claimed: any run may read any of them, so the
 * sensors a protocol names (wait_until, limits) are kept apart, for its file.
 * Pure: no I/O, usable by the daemon, simulate and check alike.
 */
#ifndef PERFUSE_CLAIMS_H
#define PERFUSE_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>

#include "plan.h"
#include "rig.h"

/* Longest run name ("kidney-dose-10"): letters, digits, '-', '_' and '.'. */
#define CLAIMS_MAX_NAME 32

/* One run's claim on a rig of n channels. Zero-initialised is an empty claim. */
struct claims {
    size_t n;                   /* rig channels */
    bool *writes;               /* per channel: an actuator the run holds; owned */
    bool *reads;                /* per channel: a sensor the protocol names; owned */
};

/* The claim of plan on rig. Returns 0, or -ENOMEM (out is then empty). */
int claims_of_plan(const struct plan *plan, const struct rig *rig, struct claims *out);
/* Which rig channels a run of plan records (per channel, into keep, n_channels
 * long): what it claims, the sensors it names, and those its 'record:' lists
 * (every channel without 'record:'). */
void claims_recorded(const struct plan *plan, const struct claims *c, bool *keep);
/* Free a claim's arrays; it is empty afterwards. */
void claims_free(struct claims *c);
/* The first channel both claims hold, or -1 if they do not overlap. */
int claims_overlap(const struct claims *a, const struct claims *b);
/* How many actuator channels c holds. */
size_t claims_count(const struct claims *c);
/* The channels c holds, comma-separated ("pump1.flow, valve1.position"), in buf. */
void claims_list(const struct claims *c, const struct rig *rig, char *buf, size_t len);
/* Why a run cannot take channel ch: "pump1.flow is held by run NAME (ID4)
 * until it ends", ID4 being the first 4 characters of the holder's run id
 * (none if id is NULL or empty). */
void claims_conflict_message(const struct rig *rig, int ch, const char *holder_name,
                             const char *holder_id, char *buf, size_t len);
/* Whether name is a valid run name; if not, why in err. */
bool claims_name_valid(const char *name, char *err, size_t len);
/* A run name derived from a protocol's name: lower case, spaces and other
 * characters as '-', at most CLAIMS_MAX_NAME bytes, never empty ("run"). */
void claims_default_name(const char *protocol_name, char *buf, size_t len);

#endif
