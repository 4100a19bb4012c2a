/* A syringe's fill level from its pump's counter, and stalls from its read-backs. */
#include "syringe.h"

#include <math.h>
#include <stddef.h>

#define NS_PER_MIN 60e9

/* Where a fill level at the start came from, as a word. */
const char *syringe_source_name(enum fill_source s)
{
    switch (s) {
    case FILL_GIVEN: return "given";
    case FILL_ASSUMED_FULL: return "assumed full";
    default: return "unknown";
    }
}

/* Start tracking from a given level, or full. */
void syringe_init(struct syringe *s, double capacity_ul, double fill_ul, double low_frac)
{
    *s = (struct syringe){ .capacity_ul = capacity_ul > 0 ? capacity_ul : 0,
                           .low_frac = low_frac > 0 ? low_frac : SYRINGE_LOW_DEFAULT,
                           .fill0_ul = NAN, .counter0_ul = NAN, .counter_ul = NAN,
                           .last_flow = NAN, .fill_ul = NAN, .setpoint = NAN,
                           .still_since_ns = -1, .ref_counter_ul = NAN,
                           .carry_fill_ul = NAN, .carry_counter_ul = NAN };
    if (!isnan(fill_ul)) {
        s->fill0_ul = fill_ul;
        s->source = FILL_GIVEN;
    } else if (s->capacity_ul > 0) {
        s->fill0_ul = s->capacity_ul;
        s->source = FILL_ASSUMED_FULL;
    }
    s->fill_ul = s->fill0_ul;
}

/* Continue from a level carried over a restart, confirmed by the next counter reading. */
void syringe_carry(struct syringe *s, double capacity_ul, double low_frac, double fill0_ul,
                   enum fill_source source, double fill_ul, double counter_ul)
{
    syringe_init(s, capacity_ul, NAN, low_frac);
    s->fill_ul = NAN;
    /* A level below 0 is what an empty syringe's count says: it stays empty. */
    bool ok = isfinite(fill0_ul) && isfinite(fill_ul) && isfinite(counter_ul) && fill0_ul >= 0 &&
              (s->capacity_ul == 0 || (fill_ul <= s->capacity_ul && fill0_ul <= s->capacity_ul)) &&
              (source == FILL_GIVEN || source == FILL_ASSUMED_FULL);
    if (!ok) {
        s->fill0_ul = NAN;
        s->source = FILL_UNKNOWN;
        return;
    }
    s->fill0_ul = fill0_ul;
    s->source = source;
    s->carry_fill_ul = fill_ul;
    s->carry_counter_ul = counter_ul;
}

/* Whether a carried level awaits the counter's first reading. */
bool syringe_carry_pending(const struct syringe *s)
{
    return !isnan(s->carry_counter_ul) && isnan(s->counter_ul);
}

/* Hold the level against a reading taken just before the start. */
void syringe_seed_counter(struct syringe *s, double v)
{
    if (isnan(v) || isnan(s->fill0_ul) || !isnan(s->counter_ul) || syringe_carry_pending(s))
        return;
    s->counter0_ul = s->counter_ul = v;
    s->seeded = true;
}

/* The level at which the low warning comes. */
static double low_level(const struct syringe *s)
{
    return s->low_frac * (s->capacity_ul > 0 ? s->capacity_ul : s->fill0_ul);
}

/* A new fill level: report the thresholds it crossed. */
static int set_fill(struct syringe *s, double fill)
{
    if (s->capacity_ul > 0 && fill > s->capacity_ul)
        fill = s->capacity_ul;
    s->fill_ul = fill;
    int news = SYR_NONE;
    if (fill <= 0 && !s->empty) {
        s->empty = true;
        news |= SYR_EMPTY;
    }
    if (fill <= low_level(s) && !s->low) {
        s->low = true;
        news |= SYR_LOW;
    }
    if (fill > low_level(s) && (s->low || s->empty)) {
        s->low = s->empty = false;
        news |= SYR_REFILLED;
    }
    return news;
}

/* The stall condition ended. */
static int stall_over(struct syringe *s)
{
    if (!s->stalled)
        return SYR_NONE;
    s->stalled = false;
    return SYR_STALL_OVER;
}

/* The pump was commanded: stall checks start again from here. */
int syringe_on_setpoint(struct syringe *s, double v, int64_t t_ns)
{
    s->setpoint = v;
    s->setpoint_ns = t_ns;
    s->still_since_ns = -1;
    s->ref_counter_ul = s->counter_ul;
    s->ref_ns = t_ns;
    return isnan(v) || v <= 0 ? stall_over(s) : SYR_NONE;
}

/* A resumed run judges the pump's delivery afresh, from its setpoint. */
int syringe_on_resume(struct syringe *s, int64_t t_ns)
{
    return syringe_on_setpoint(s, s->setpoint, t_ns) | stall_over(s);
}

/* Whether the pump is told to infuse. */
static bool infusing(const struct syringe *s)
{
    return !isnan(s->setpoint) && s->setpoint > 0;
}

/* A flow read-back: withdrawals refill the syringe; near 0 while infusing is a stall. */
int syringe_on_flow(struct syringe *s, double v, int64_t t_ns)
{
    int news = SYR_NONE;
    /* What was pulled back since the last read-back, at the rate it showed. */
    if (!isnan(s->last_flow) && s->last_flow < 0 && t_ns > s->last_flow_ns) {
        s->withdrawn_ul += -s->last_flow * (double)(t_ns - s->last_flow_ns) / NS_PER_MIN;
        if (!isnan(s->fill_ul) && !isnan(s->counter0_ul))
            news |= set_fill(s, s->fill0_ul - (s->counter_ul - s->counter0_ul) + s->withdrawn_ul);
    }
    s->last_flow = v;
    s->last_flow_ns = t_ns;
    if (isnan(v) || !infusing(s))
        return news;        /* a failed read-back proves nothing either way */
    if (v >= 0.5 * s->setpoint) {
        s->still_since_ns = -1;
        /* A counter that does not move is not disproved by a read-back of the rate. */
        return news | (s->stall_by_counter ? SYR_NONE : stall_over(s));
    }
    if (v >= 0.1 * s->setpoint)
        return news;
    if (s->still_since_ns < 0)
        s->still_since_ns = t_ns;
    if (!s->stalled && t_ns - s->still_since_ns >= SYRINGE_STALL_NS) {
        s->stalled = true;
        s->stall_by_counter = false;
        news |= SYR_STALLED;
    }
    return news;
}

/* Whether the counter moved as the setpoint says it should have since the last progress. */
static int check_progress(struct syringe *s, double v, int64_t t_ns)
{
    if (!infusing(s))
        return SYR_NONE;
    if (isnan(s->ref_counter_ul)) {
        s->ref_counter_ul = v;
        s->ref_ns = t_ns;
        return SYR_NONE;
    }
    double expected = s->setpoint * (double)(t_ns - s->ref_ns) / NS_PER_MIN;
    double got = v - s->ref_counter_ul;
    if (got > 0 && got >= 0.5 * expected) {
        s->ref_counter_ul = v;
        s->ref_ns = t_ns;
        /* A read-back still near 0 keeps its own stall until it reads the rate. */
        return s->still_since_ns < 0 ? stall_over(s) : SYR_NONE;
    }
    /* A pump shows its counter with a few significant digits (the New Era
     * four): a large count moves in large steps, so wait for several of them. */
    double due = fmax(SYRINGE_STALL_UL, 3e-3 * fabs(v));
    if (!s->stalled && expected >= due && got < 0.2 * expected) {
        s->stalled = true;
        s->stall_by_counter = true;
        return SYR_STALLED;
    }
    return SYR_NONE;
}

/* A reading of the pump's infused counter: the fill level follows it. */
int syringe_on_counter(struct syringe *s, double v, int64_t t_ns)
{
    if (isnan(v))
        return SYR_NONE;
    int news = SYR_NONE;
    if (s->seeded) {
        /* The first reading in the run: the count starts here, as the file's
         * dispensed counter does; the seed only held the level until now. */
        s->seeded = false;
        s->counter0_ul = s->counter_ul = s->ref_counter_ul = NAN;
    }
    if (syringe_carry_pending(s)) {
        /* The first reading after a restart: the count since the carried
         * level, or a reset that leaves what was infused meanwhile unknown. */
        if (v >= s->carry_counter_ul) {
            s->counter0_ul = s->carry_counter_ul - (s->fill0_ul - s->carry_fill_ul);
        } else {
            s->fill0_ul = NAN;
            s->source = FILL_UNKNOWN;
            news |= SYR_LOST;
        }
    }
    if (isnan(s->counter0_ul))
        s->counter0_ul = v;
    if (!isnan(s->counter_ul) && v < s->counter_ul) {
        /* The pump's counter was reset: what it had counted is still infused. */
        s->counter0_ul = v - (s->counter_ul - s->counter0_ul);
        s->ref_counter_ul = v;
        s->ref_ns = t_ns;
    }
    s->counter_ul = v;
    news |= check_progress(s, v, t_ns);
    if (!isnan(s->fill0_ul))
        news |= set_fill(s, s->fill0_ul - (v - s->counter0_ul) + s->withdrawn_ul);
    return news;
}
