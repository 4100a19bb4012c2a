/*
 * libFuzzer target for the latch file's decoder: any bytes as the latch.json a
 * restarted daemon reads, against a small rig (pump1.flow, pump2.flow,
 * valve1.position writable; chip1.pressure measured). It must never crash,
 * leak or read out of bounds, must explain every refusal, and the holds it
 * accepts must encode and decode again to the same holds (what the daemon
 * writes, it can read).
 *
 *   make fuzz                      (FUZZ_SECONDS=N to choose how long)
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run/alarms.h"
#include "run/latch.h"
#include "daemon/latchfile.h"
#include "../unit/support/small_rig.h"


/* Whether two decoded holds say the same. */
static int same_hold(const struct latchfile_hold *a, const struct latchfile_hold *b)
{
    for (size_t c = 0; c < 4; c++)
        if (a->held[c] != b->held[c] || (a->held[c] && !(a->safe[c] == b->safe[c] ||
                                                          (isnan(a->safe[c]) && isnan(b->safe[c])))))
            return 0;
    return strcmp(a->cause, b->cause) == 0 && strcmp(a->channel, b->channel) == 0 &&
           a->origin.lim.channel == b->origin.lim.channel && a->origin.side == b->origin.side &&
           a->origin.tripped_wall_ns == b->origin.tripped_wall_ns && a->acked == b->acked;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rig_device devs[4];
    struct rig_channel chans[4];
    struct rig rig = small_rig(devs, chans);
    struct latchfile f;
    char err[512] = "";
    if (latchfile_decode((const char *)data, size, &rig, &f, err, sizeof err) < 0) {
        latchfile_free(&f);
        if (err[0] == '\0')
            abort();
        return 0;
    }
    /* Hold what it kept, each under an alarm acknowledged as the file says, and write it again. */
    struct alarms a;
    alarms_init(&a, NULL, NULL);
    struct latch l;
    latch_init(&l, 4);
    for (size_t i = 0; i < f.n; i++) {
        const struct latchfile_hold *h = &f.v[i];
        char tag[16];
        snprintf(tag, sizeof tag, "%zu", i);
        uint32_t id = alarms_raise(&a, 0, "alarm", "x", "limit_max", tag, "m");
        if (h->acked)
            alarms_ack(&a, 0, id, h->acked_by);
        struct plan_target safe[4];
        size_t n = 0;
        for (size_t c = 0; c < 4; c++)
            if (h->held[c] && !isnan(h->safe[c]))
                safe[n++] = (struct plan_target){ .channel = (int)c, .v0 = h->safe[c] };
        if (latch_add_origin(&l, id, h->cause, h->channel, h->held, safe, n, &h->origin) < 0)
            abort();
    }
    char *text = NULL;
    if (latchfile_encode(&l, &a, &rig, &text) < 0)
        abort();
    struct latchfile again;
    if (latchfile_decode(text, strlen(text), &rig, &again, err, sizeof err) != 0 || again.n != f.n)
        abort();
    for (size_t i = 0; i < f.n; i++)
        if (!same_hold(&f.v[i], &again.v[i]))
            abort();
    latchfile_free(&again);
    free(text);
    latch_free(&l);
    alarms_free(&a);
    latchfile_free(&f);
    return 0;
}
