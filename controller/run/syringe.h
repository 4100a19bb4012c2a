/*
 * A syringe's fill level, and whether its pump delivers: a pure model fed
 * with the pump's setpoints and its own readings, no clock and no I/O, so
 * that the daemon and `perfusectl simulate` judge a syringe the same way.
 *
 * Fill level: the level at the run's start (given by the operator, or taken
 * to be the syringe's volume) minus what the pump's counter says it infused
 * since then, plus what it withdrew (the integral of its negative flow
 * read-backs). It is a bookkeeping figure: a syringe filled less than
 * assumed runs empty earlier, and the pump's stall says so.
 *
 * Stall: a pump told to infuse that does not. Either its flow read-back
 * stays near 0, or its infused-volume counter does not move by what the
 * setpoint should have pushed (judged once enough was due for the counter's
 * resolution: a pump shows it with a few significant digits). A read-back that failed (NaN) is unknown: it
 * is neither a stall nor a proof of delivery.
 *
 * Loop thread only (or the simulation's thread).
 */
#ifndef PERFUSE_SYRINGE_H
#define PERFUSE_SYRINGE_H

#include <stdbool.h>
#include <stdint.h>

#define SYRINGE_LOW_DEFAULT 0.10        /* fraction of the capacity */
#define SYRINGE_STALL_NS 3000000000LL   /* read-back near 0 this long while infusing */
#define SYRINGE_STALL_UL 10.0           /* or this much (at least 0.3 % of the count) expected
                                         * and under a fifth of it infused */

enum fill_source { FILL_UNKNOWN, FILL_GIVEN, FILL_ASSUMED_FULL };

/* What changed with one input; several may at once. */
enum syringe_news {
    SYR_NONE = 0,
    SYR_LOW = 1,                /* the fill level fell to the low threshold */
    SYR_EMPTY = 2,              /* the fill level reached 0 */
    SYR_STALLED = 4,            /* the pump stopped delivering its setpoint */
    SYR_STALL_OVER = 8,         /* a stalled pump delivers again, or is told to stop */
    SYR_REFILLED = 16,          /* a low or empty level is above the threshold again */
    SYR_LOST = 32,              /* a level carried over a restart cannot be confirmed: unknown */
};

struct syringe {
    /* configuration */
    double capacity_ul;         /* the syringe's volume; 0: unknown */
    double low_frac;            /* warn at this fraction of the capacity (or of the start level) */
    /* the run's start */
    double fill0_ul;            /* NaN: unknown */
    enum fill_source source;
    double counter0_ul;         /* the pump's infused counter at the start; NaN until read */
    bool seeded;                /* counter0_ul is the reading from just before the start, held until the first in the run */
    /* state */
    double counter_ul;          /* its latest reading (NaN: none yet) */
    double withdrawn_ul;        /* pulled back into the syringe since the start */
    double last_flow;           /* latest flow read-back (NaN: unknown) */
    int64_t last_flow_ns;
    double fill_ul;             /* NaN: unknown */
    bool low, empty, stalled;
    bool stall_by_counter;      /* the stall was seen in the counter, not the read-back */
    double setpoint;            /* uL/min; NaN: none */
    int64_t setpoint_ns;        /* when it was commanded */
    int64_t still_since_ns;     /* read-back near 0 while infusing since; -1: not */
    double ref_counter_ul;      /* the counter when progress was last seen (NaN: none) */
    int64_t ref_ns;
    /* a level carried over a restart, until the counter's first reading confirms it */
    double carry_fill_ul;       /* the level */
    double carry_counter_ul;    /* the counter reading it was computed at (NaN: none) */
};

/* Start tracking: capacity_ul 0 if unknown; fill_ul the level given, or NaN
 * to take it as full (unknown if the capacity is too); low_frac 0 for the
 * default. */
void syringe_init(struct syringe *s, double capacity_ul, double fill_ul, double low_frac);
/* After a restart: follow the syringe from fill_ul, its level when the
 * pump's counter read counter_ul (fill0_ul and source as at the run's start,
 * so that the low threshold and messages stay the same). The level is
 * unknown (NaN) until the counter's first reading: at or above counter_ul it
 * is fill_ul minus what was counted since; below it (the pump reset its
 * count) it cannot be known, and stays unknown (SYR_LOST). A NaN or
 * impossible input leaves the level unknown from the start. */
void syringe_carry(struct syringe *s, double capacity_ul, double low_frac, double fill0_ul,
                   enum fill_source source, double fill_ul, double counter_ul);
/* Whether a carried level still awaits the counter's first reading. */
bool syringe_carry_pending(const struct syringe *s);
/* At the start: hold the level against v, the counter's reading taken just
 * before it, until the first reading in the run, which the count then starts
 * from (as the run file's dispensed counter does). The level and its counter
 * reading are thus known (and can be journaled) from the first moment, so
 * that a restart before that reading can carry them over. Nothing is done for
 * a NaN v, an unknown level, or a syringe already counting. */
void syringe_seed_counter(struct syringe *s, double v);
/* The pump was commanded to v uL/min (NaN: its own safe state, no setpoint).
 * Each of these returns what changed, as a mask of enum syringe_news. */
int syringe_on_setpoint(struct syringe *s, double v, int64_t t_ns);
/* The run resumed after a pause: a stall is judged afresh (it ends, and
 * comes back if the pump still does not deliver). */
int syringe_on_resume(struct syringe *s, int64_t t_ns);
/* A flow read-back of the pump (NaN: failed). */
int syringe_on_flow(struct syringe *s, double v, int64_t t_ns);
/* A reading of the pump's infused-volume counter, uL (NaN: failed). */
int syringe_on_counter(struct syringe *s, double v, int64_t t_ns);
/* "given", "assumed full" or "unknown". */
const char *syringe_source_name(enum fill_source s);

#endif
