/*
 * The latch file: the safe states that tripped limits hold (latch.h), kept
 * in the data directory as DATA_DIR/latch.json so that a restart (SIGTERM,
 * kill -9, a power cut) holds the same actuators again:
 *
 *   {"latch": 1, "rig": "sim", "holds": [
 *     {"cause": "chip1.pressure above its max 40 mbar", "channel": "chip1.pressure",
 *      "limit": {"from": "rig", "line": 3, "min": null, "max": 40, "for_ns": 1000000000,
 *                "side": "max"},
 *      "held": {"pump1.flow": null, "pump2.flow": null, "valve1.position": 1},
 *      "tripped": "2026-12-07T01:02:03.123456Z", "tripped_wall_ns": 1796605323123456000,
 *      "acknowledged": true, "acknowledged_by": "alice"}]}
 *
 * "held" maps each held channel to the value its safe state wrote, null for
 * the device's own safe action. "limit" is null for a hold that only an
 * acknowledgement releases (the one that stands for a latch file that could
 * not be used); "channel" is then "". "tripped" is for people; the daemon
 * reads "tripped_wall_ns". Bump LATCHFILE_VERSION when the format changes.
 *
 * Encoding and decoding are pure and take any text: every problem is an
 * error naming the hold and the member, never a crash.
 */
#ifndef PERFUSE_LATCHFILE_H
#define PERFUSE_LATCHFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "run/alarms.h"
#include "run/latch.h"
#include "plan/rig.h"

#define LATCHFILE_NAME "latch.json"
#define LATCHFILE_VERSION 1
#define LATCHFILE_MAX_BYTES (1 << 20)
#define LATCHFILE_MAX_HOLDS 256

/* One hold as the file keeps it. */
struct latchfile_hold {
    char cause[160];
    char channel[72];           /* the limit's channel; "" with no limit */
    struct latch_origin origin; /* origin.lim.channel -1: no limit */
    bool *held;                 /* per rig channel; owned */
    double *safe;               /* per rig channel: the safe value, NaN for the device's
                                 * own safe action; owned */
    bool acked;                 /* its alarm was acknowledged */
    char acked_by[96];
};

struct latchfile {
    struct latchfile_hold *v;   /* owned */
    size_t n;
};

/* Encode the holds of l for rig, with their alarms' acknowledgements from a,
 * as JSON text (malloc'd). Returns 0 or -ENOMEM. */
int latchfile_encode(const struct latch *l, const struct alarms *a, const struct rig *rig,
                     char **text);

/* Decode and check text against rig: the version, the rig's name, every
 * channel known (the held ones writable), safe values within the channel's
 * limits, the limit's side bounded. 0, or -EINVAL (-ENOMEM) with the reason
 * in err. Free f with latchfile_free, also after an error. */
int latchfile_decode(const char *text, size_t len, const struct rig *rig, struct latchfile *f,
                     char *err, size_t errlen);
void latchfile_free(struct latchfile *f);


#endif
