/*
 * What a plan will do, worked out before it runs: how much each pump
 * delivers, and when a syringe runs empty. For `perfusectl check`.
 */
#ifndef PERFUSE_TIMELINE_H
#define PERFUSE_TIMELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "plan.h"

/* A syringe starts full. Pushing empties it and withdrawing refills it, up to
 * full: a withdraw/refill cycle moves no volume out of it in the end. */
struct timeline_pump {
    int channel;                /* a flow actuator */
    double delivered_ul;        /* volume pushed over the fixed part of the plan */
    double withdrawn_ul;        /* volume pulled back (negative flows) */
    double net_ul;              /* out of the syringe at the end: pushed - pulled back, never
                                 * below 0 for a syringe (it cannot hold more than full) */
    double need_ul;             /* the most ever out of it at once: what the syringe must hold */
    double capacity_ul;         /* 0 = unknown */
    int64_t empty_at_ns;        /* when more is out than the syringe holds; -1 if never */
    const struct plan_step *empty_step;  /* the step running then */
    bool open_ended_flow;       /* flowing during a wait or prompt: more than counted */
};

struct timeline {
    struct timeline_pump *pumps;
    size_t n_pumps;
};

/* Work out volumes for every flow actuator of rig. Returns 0 or -ENOMEM. */
int timeline_compute(const struct plan *plan, const struct rig *rig, struct timeline *out);
void timeline_free(struct timeline *t);

#endif
