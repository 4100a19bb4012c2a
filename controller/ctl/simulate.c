/*
 * perfusectl simulate: the runner on the virtual clock, driving the simulated
 * rig's physics in-process, recorded by the recorder in the real layout.
 *
 * Each readable channel is sampled by its own virtual timer at its rig rate,
 * its value taken when the read's frames would have crossed the line at the
 * rig's baud rate (line-rate emulation, as perfuse-sim's; off with
 * line_rate_off);
 * setpoints act on the model at their deadlines; the model advances to every
 * event's time. Wire faults (timeout, garbage, crc, exception, disconnect)
 * make the device's readings missing (NaN, never a number); physical faults
 * (clog, bubble, stuck, nan, syringe-empty) act on the model.
 */
#include "simulate.h"
#include "run/alarms.h"
#include "run/interlock.h"
#include "run/clock.h"
#include "run/delivery.h"
#include "run/regloop.h"
#include "drivers/sim/physics.h"
#include "plan/claims.h"
#include "plan/plan.h"
#include "record/recorder.h"
#include "plan/rig.h"
#include "record/runfile.h"
#include "run/runner.h"
#include "run/trip.h"
#include "drivers/sim/sim_faults.h"
#include "drivers/sim/sim_wire.h"
#include "base/timeutil.h"
#include "base/yamldoc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define THROTTLE_SAMPLES (1u << 20)

/* What a rig channel is in the model. */
enum sim_quantity { SQ_NONE, SQ_PUMP_FLOW, SQ_PUMP_DISPENSED, SQ_PRESSURE, SQ_FLOW, SQ_O2,
                    SQ_VALVE_POS, SQ_VALVE_BUSY, SQ_TEMP, SQ_TEMP_SP,
                    SQ_PSOURCE, SQ_PFLOW, SQ_PCOMMAND };

struct sim_chan {
    enum sim_quantity what;
    int index;                  /* pump or chip number */
    enum sim_device dev;
    struct ptimer timer;
    int64_t period_ns;
    int64_t txn_ns;             /* a read's time on the line: the value is taken at its end */
    int64_t grid_ns;            /* the read's scheduled start */
    struct simulation *sim;
    int channel;
};

/* One protocol of the simulation, with its runner and its file. */
struct sim_lane {
    struct simulation *sim;
    struct plan *plan;
    struct claims claims;
    struct runner *runner;
    struct recorder *rec;
    struct runfile_series series;
    struct ptimer prompt_timer;
    struct ptimer resume_timer;     /* the simulated operator resuming after a pause limit */
    struct ptimer held_timer;       /* the simulated operator finding a delivery fault */
    bool finished;
    enum run_state final;
    uint64_t samples;
};

struct simulation {
    struct pclock clk;
    struct sim_physics phys;
    struct sim_faults_table faults;
    struct rig *rig;
    struct sim_lane *lanes;         /* one per protocol, all on the one model */
    size_t n_lanes;
    struct sim_chan *chans;
    int64_t prompt_delay_ns;
    struct interlocks il;
    struct alarms alarms;
    struct delivery dl;             /* syringes and flow monitors, as in perfused */
    struct regloop rl;              /* the rig's regulators, as in perfused */
    struct sim_lane *ending;        /* a lane its own alarm has just ended: it records that alarm */
    double press[SIM_PPLANTS + 3];  /* ob1.p2 .. p4 hold what they were told (no chip) */
};

/* Map a rig channel name to the model. */
static int map_channel(const char *name, struct sim_chan *c)
{
    static const struct { const char *name; enum sim_quantity w; int idx; enum sim_device dev; } map[] = {
        { "pump1.flow", SQ_PUMP_FLOW, 0, SD_PUMP1 }, { "pump2.flow", SQ_PUMP_FLOW, 1, SD_PUMP2 },
        { "pump1.dispensed", SQ_PUMP_DISPENSED, 0, SD_PUMP1 },
        { "pump2.dispensed", SQ_PUMP_DISPENSED, 1, SD_PUMP2 },
        { "chip1.pressure", SQ_PRESSURE, 0, SD_CHIP1 }, { "chip2.pressure", SQ_PRESSURE, 1, SD_CHIP2 },
        { "chip1.flow", SQ_FLOW, 0, SD_CHIP1 }, { "chip2.flow", SQ_FLOW, 1, SD_CHIP2 },
        { "chip1.o2", SQ_O2, 0, SD_CHIP1 }, { "valve1.position", SQ_VALVE_POS, 0, SD_VALVE1 },
        { "valve1.busy", SQ_VALVE_BUSY, 0, SD_VALVE1 }, { "incubator.temp", SQ_TEMP, 0, SD_INCUBATOR },
        { "incubator.setpoint", SQ_TEMP_SP, 0, SD_INCUBATOR },
        { "chip3.pressure", SQ_PSOURCE, 0, SD_CHIP3 }, { "chip3.flow", SQ_PFLOW, 0, SD_CHIP3 },
        { "ob1.p1", SQ_PCOMMAND, 0, SD_OB1 }, { "ob1.p2", SQ_PCOMMAND, 2, SD_OB1 },
        { "ob1.p3", SQ_PCOMMAND, 3, SD_OB1 }, { "ob1.p4", SQ_PCOMMAND, 4, SD_OB1 },
        { "pc1.p1", SQ_PCOMMAND, 1, SD_PC1 }, { "pc1.p1_actual", SQ_PSOURCE, 1, SD_PC1 },
        { "pc1.flow", SQ_PFLOW, 1, SD_PC1 },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, name) == 0) {
            c->what = map[i].w;
            c->index = map[i].idx;
            c->dev = map[i].dev;
            return 0;
        }
    return -ENOENT;
}

/* Bring the model to the clock's time, with the faults of that moment. */
static void sync_model(struct simulation *s)
{
    sim_physics_advance_to(&s->phys, pclock_now(&s->clk));
    sim_fault_apply(&s->faults, &s->phys, s->phys.now_ns);
}

/* Whether a wire fault keeps this device from answering now. */
static bool unreachable(struct simulation *s, enum sim_device d)
{
    static const enum sim_fault_kind wire[] = { SF_TIMEOUT, SF_GARBAGE, SF_CRC, SF_EXCEPTION, SF_DISCONNECT };
    for (size_t i = 0; i < sizeof wire / sizeof wire[0]; i++)
        if (sim_fault_active(&s->faults, d, wire[i], s->phys.now_ns))
            return true;
    return false;
}

/* Read a channel from the model. */
static double model_read(struct simulation *s, const struct sim_chan *c)
{
    struct sim_physics *p = &s->phys;
    switch (c->what) {
    case SQ_PUMP_FLOW: return sim_pump_flow(&p->pump[c->index]);
    case SQ_PUMP_DISPENSED: return p->pump[c->index].infused_ul;
    case SQ_PRESSURE: return sim_read_pressure(p, c->index);
    case SQ_FLOW: return sim_read_flow(p, c->index);
    case SQ_O2: return sim_read_o2(p);
    case SQ_VALVE_POS: return sim_valve_position(p);
    case SQ_VALVE_BUSY: return sim_valve_busy(p);
    case SQ_TEMP: return sim_read_temp(p);
    case SQ_TEMP_SP: return p->temp_setpoint;
    case SQ_PSOURCE: return sim_read_psource(p, c->index);
    case SQ_PFLOW: return sim_read_pflow(p, c->index);
    case SQ_PCOMMAND: return c->index == 0 ? sim_read_psource(p, 0)
                           : c->index == 1 ? p->pplant[1].p_cmd : s->press[c->index];
    default: return NAN;
    }
}

/* Seconds since the start (the virtual clock starts at 0). */
static double rel(int64_t t)
{
    return (double)t / 1e9;
}

/* Whether every protocol's run has ended. */
static bool all_finished(const struct simulation *s)
{
    for (size_t i = 0; i < s->n_lanes; i++)
        if (!s->lanes[i].finished)
            return false;
    return true;
}

/* The lane of the run that holds rig channel ch (NULL: none). */
static struct sim_lane *holder_of(struct simulation *s, int ch)
{
    for (size_t i = 0; ch >= 0 && i < s->n_lanes; i++)
        if ((size_t)ch < s->lanes[i].claims.n && s->lanes[i].claims.writes[ch])
            return &s->lanes[i];
    return NULL;
}

/* The lane whose run writes regulator k's regulated channel (alone: the only
 * one; NULL: no run holds it). */
static struct sim_lane *reg_lane(struct simulation *s, size_t k)
{
    if (s->n_lanes == 1)
        return &s->lanes[0];
    const struct rig_regulator *g = &s->rig->regulators[k];
    struct sim_lane *l = holder_of(s, g->measure);
    return l != NULL ? l : holder_of(s, g->actuator);
}

/* A channel's sampling timer fired: the sample goes into every file, and to every runner. */
static void sample_fired(struct ptimer *t)
{
    struct sim_chan *c = t->data;
    struct simulation *s = c->sim;
    if (all_finished(s))
        return;
    sync_model(s);
    double v = unreachable(s, c->dev) ? NAN : model_read(s, c);
    int64_t now = pclock_now(&s->clk);
    interlocks_on_sample(&s->il, c->channel, v, now);
    delivery_on_sample(&s->dl, c->channel, v, now);
    for (size_t k = 0; k < s->n_lanes; k++) {
        struct sim_lane *l = &s->lanes[k];
        if (l->finished)
            continue;
        int idx = l->series.rec_chan[c->channel];
        if (idx >= 0) {
            recorder_sample(l->rec, (uint32_t)idx, rel(now), v);
            l->samples++;
        }
        for (size_t i = 0; s->dl.tracking && idx >= 0 && i < s->dl.n_pumps; i++) {
            const struct delivery_pump *p = &s->dl.pumps[i];
            if (p->counter == c->channel && p->tracking && !isnan(p->s.fill_ul) &&
                (s->n_lanes == 1 || holder_of(s, p->flow) == l))
                recorder_sample(l->rec, (uint32_t)p->rec_fill, rel(now), p->s.fill_ul);
        }
        if (!isnan(v))
            runner_on_sample(l->runner, c->channel, v, now);
    }
    regloop_on_sample(&s->rl, c->channel, v, now);
    c->grid_ns += c->period_ns;
    ptimer_start(t, c->grid_ns + c->txn_ns);
}

/* A setpoint acts on the model, recorded in lane l's file. */
static void lane_write(struct sim_lane *l, int channel, double v, int64_t planned)
{
    struct simulation *s = l->sim;
    sync_model(s);
    if (regloop_setpoint(&s->rl, channel, v, pclock_now(&s->clk)))
        return;     /* a regulated channel: its regulator drives the actuator */
    regloop_on_output(&s->rl, channel, v);
    struct sim_chan *c = &s->chans[channel];
    if (l->series.rec_sp[channel] >= 0) {
        recorder_setpoint(l->rec, (uint32_t)l->series.rec_sp[channel], rel(planned), v);
        /* The model's devices take a setpoint at once, unless out of reach. */
        recorder_confirmed(l->rec, (uint32_t)l->series.rec_sp[channel], rel(planned),
                           unreachable(s, c->dev) ? NAN : v);
    }
    if (unreachable(s, c->dev))
        return;
    delivery_on_setpoint(&s->dl, channel, v, pclock_now(&s->clk));
    struct sim_pump *pu = &s->phys.pump[c->what == SQ_PUMP_FLOW ? c->index : 0];
    switch (c->what) {
    case SQ_PCOMMAND:
        if (c->index < SIM_PPLANTS)
            s->phys.pplant[c->index].p_cmd = v;
        s->press[c->index] = v;
        break;
    case SQ_PUMP_FLOW:
        pu->rate = fabs(v);
        pu->direction = v < 0 ? -1 : 1;
        pu->running = v != 0 && !(v > 0 && pu->remaining_ul <= 0);
        break;
    case SQ_VALVE_POS: sim_valve_move(&s->phys, (int)lround(v)); break;
    case SQ_TEMP_SP: s->phys.temp_setpoint = v; break;
    default: break;
    }
}

/* Runner hook: a setpoint acts on the model. */
static void hook_write(void *ctx, int channel, double v, int64_t planned)
{
    lane_write(ctx, channel, v, planned);
}

/* Runner hook: the plan's safe values are set and pumps stop: alone on the
 * rig every pump, beside other protocols only the pumps it claims. */
static void hook_safe_state(void *ctx)
{
    struct sim_lane *l = ctx;
    struct simulation *s = l->sim;
    int64_t now = pclock_now(&s->clk);
    for (size_t k = 0; k < s->rl.n; k++)
        if (reg_lane(s, k) == l)
            regloop_stop_one(&s->rl, k, true);
    for (size_t i = 0; i < s->dl.n_pumps; i++)
        if (s->n_lanes == 1 || holder_of(s, s->dl.pumps[i].flow) == l)
            delivery_on_setpoint(&s->dl, s->dl.pumps[i].flow, NAN, now);
    for (size_t i = 0; i < l->plan->n_safe; i++)
        lane_write(l, l->plan->safe_state[i].channel, l->plan->safe_state[i].v0, now);
    for (size_t ch = 0; ch < s->rig->n_channels; ch++) {
        const struct sim_chan *c = &s->chans[ch];
        if (c->what == SQ_PUMP_FLOW && (s->n_lanes == 1 || holder_of(s, (int)ch) == l))
            s->phys.pump[c->index].running = false;
    }
}

/* The alarm scope of a protocol's limit: its lane's number; NULL for the rig's. */
static const char *lane_scope(const struct simulation *s, const struct limit_rule *rule, char *buf,
                              size_t len)
{
    for (size_t i = 0; !rule->from_rig && i < s->n_lanes; i++)
        if (rule->owner == &s->lanes[i]) {
            snprintf(buf, len, "%zu", i);
            return buf;
        }
    return NULL;
}

/* An alarm changed state: into its lane's file (a protocol's limit), or into
 * every file still open (the rig's). */
static void sim_alarm_event(void *ctx, int64_t t, const char *sev, const char *src, const char *code,
                            const char *msg, const char *run)
{
    struct simulation *s = ctx;
    for (size_t i = 0; i < s->n_lanes; i++) {
        char scope[24];
        snprintf(scope, sizeof scope, "%zu", i);
        if (run[0] != '\0' && strcmp(run, scope) != 0)
            continue;
        if (!s->lanes[i].finished || &s->lanes[i] == s->ending)
            recorder_event(s->lanes[i].rec, rel(t), sev, src, code, msg);
    }
}

/* The simulated operator resumes a run an interlock paused. */
static void resume_fired(struct ptimer *t)
{
    struct sim_lane *l = t->data;
    runner_resume(l->runner, "the simulation (a simulated operator resumes after --prompt-delay)");
}

/* The lanes a limit acts on: its protocol's, or every one for a rig limit. */
static bool limit_applies(const struct limit_rule *rule, const struct sim_lane *l)
{
    return rule->from_rig || rule->owner == NULL || rule->owner == l;
}

/* Trip hook: a safe-stop limit ends its run (a rig limit: every run), faulted, in its safe state. */
static void sim_limit_safe_stop(void *ctx, const struct limit_rule *rule, const char *why, int64_t t)
{
    struct simulation *s = ctx;
    (void)t;
    for (size_t i = 0; i < s->n_lanes; i++)
        if (!s->lanes[i].finished && limit_applies(rule, &s->lanes[i]))
            runner_fault(s->lanes[i].runner, why);
}

/* Trip hook: a pause limit pauses its run; a simulated operator resumes it later. */
static void sim_limit_pause(void *ctx, const struct limit_rule *rule, const char *why, int64_t t)
{
    struct simulation *s = ctx;
    for (size_t i = 0; i < s->n_lanes; i++) {
        struct sim_lane *l = &s->lanes[i];
        if (l->finished || !limit_applies(rule, l) || runner_pause(l->runner, why) != 0)
            continue;
        recorder_event(l->rec, rel(t), "info", "simulation", "pause_simulated",
                       "simulated operator: the run resumes after --prompt-delay");
        ptimer_start(&l->resume_timer, t + s->prompt_delay_ns);
    }
}

/* A limit tripped: the policy perfused follows (trip.h). */
static void sim_limit_tripped(void *ctx, const struct limit_rule *rule, double v, int64_t t)
{
    struct simulation *s = ctx;
    const struct rig_channel *c = &s->rig->channels[rule->lim.channel];
    char scope[24];
    struct trip_hooks h = { .ctx = s, .safe_stop = sim_limit_safe_stop, .pause = sim_limit_pause,
                            .run = lane_scope(s, rule, scope, sizeof scope) };
    trip_limit(&s->alarms, rule, c->name, c->unit, v, t, &h);
}

/* A tripped limit's channel is inside again. */
static void sim_limit_cleared(void *ctx, const struct limit_rule *rule, double v, int64_t t)
{
    struct simulation *s = ctx;
    (void)v;
    char scope[24];
    trip_clear(&s->alarms, rule, lane_scope(s, rule, scope, sizeof scope),
               s->rig->channels[rule->lim.channel].name, t);
}

/* The auto-confirm delay of a prompt is over. */
static void prompt_fired(struct ptimer *t)
{
    struct sim_lane *l = t->data;
    runner_confirm(l->runner, "the simulation (prompts are confirmed automatically)");
}

/* Runner hook: an event; a prompt schedules its automatic confirmation. */
static void hook_event(void *ctx, int64_t now, const char *sev, const char *code, const char *msg)
{
    struct sim_lane *l = ctx;
    struct simulation *s = l->sim;
    recorder_event(l->rec, rel(now), sev, "runner", code, msg);
    if (strcmp(code, "resumed") == 0) {
        delivery_on_resume(&s->dl, now);
        for (size_t k = 0; k < s->rl.n; k++)
            if (reg_lane(s, k) == l)
                regloop_resume_one(&s->rl, k, now);
    }
    if (strcmp(code, "paused") == 0)
        for (size_t k = 0; k < s->rl.n; k++)
            if (reg_lane(s, k) == l)
                regloop_pause_one(&s->rl, k);
    if (strcmp(code, "prompt") == 0) {
        char d[64], m[160];
        unit_format_duration(s->prompt_delay_ns, d, sizeof d);
        snprintf(m, sizeof m, "simulated operator: this prompt will be confirmed after %s", d);
        recorder_event(l->rec, rel(now), "info", "simulation", "prompt_simulated", m);
        ptimer_start(&l->prompt_timer, now + s->prompt_delay_ns);
    }
}

/* The simulated operator came and found the run paused on a delivery fault:
 * nobody refills a syringe in a simulation, so it ends here, paused. */
static void held_fired(struct ptimer *t)
{
    struct sim_lane *l = t->data;
    struct runner_status st;
    runner_get_status(l->runner, &st);
    if (st.state != RUN_PAUSED)
        return;
    recorder_event(l->rec, rel(pclock_now(&l->sim->clk)), "warning", "simulation", "simulation_held",
                   "the run is paused on a delivery fault that a simulated operator cannot clear "
                   "(refill, unblock or replace); the simulation ends here, paused");
    l->finished = true;
    l->final = RUN_PAUSED;
}

/* Pause for a delivery fault; the simulation ends after --prompt-delay if it stays paused. */
static void delivery_pause(struct sim_lane *l, const char *why, int64_t t)
{
    if (runner_pause(l->runner, why) == 0)
        ptimer_start(&l->held_timer, t + l->sim->prompt_delay_ns);
}

/* The lane a delivery condition concerns: the one driving its pump (source:
 * the pump or its monitor); alone, the only one. */
static struct sim_lane *delivery_lane(struct simulation *s, const char *src)
{
    if (s->n_lanes == 1)
        return &s->lanes[0];
    int dev = rig_find_device(s->rig, src);
    for (size_t i = 0; dev < 0 && i < s->rig->n_monitors; i++)
        if (strcmp(s->rig->monitors[i].name, src) == 0)
            dev = (int)s->rig->channels[s->rig->monitors[i].pump].device;
    for (size_t ch = 0; dev >= 0 && ch < s->rig->n_channels; ch++)
        if (s->rig->channels[ch].device == (size_t)dev && holder_of(s, (int)ch) != NULL)
            return holder_of(s, (int)ch);
    return NULL;
}

/* A condition began: act as perfused does in lane l's run (NULL: none), then raise the alarm. */
static void lane_raise(struct simulation *s, struct sim_lane *l, int64_t t, const char *sev, const char *src,
                       const char *code, enum delivery_action act, const char *msg)
{
    bool open = l != NULL && !l->finished;
    if (open) {
        if (act == DELIVERY_ON_FAULT) {
            if (l->plan->on_fault == ON_FAULT_PAUSE)
                delivery_pause(l, msg, t);
            else if (l->plan->on_fault == ON_FAULT_ABORT)
                runner_fault(l->runner, msg);
            else
                recorder_event(l->rec, rel(t), "warning", src, "fault_ignored",
                               "on_fault: continue; the run goes on");
        } else if (act == DELIVERY_PAUSE) {
            delivery_pause(l, msg, t);
        } else if (act == DELIVERY_SAFE_STOP) {
            runner_fault(l->runner, msg);
        }
    }
    /* An alarm that ended its run (on_fault: abort) is still that run's last word. */
    s->ending = open && l->finished ? l : NULL;
    if (!all_finished(s) || s->ending != NULL)
        alarms_raise(&s->alarms, t, sev, src, code, NULL, "%s", msg);
    s->ending = NULL;
}

/* A delivery condition began: act as perfused does in the run of its pump, then raise the alarm. */
static void sim_delivery_raise(void *ctx, int64_t t, const char *sev, const char *src,
                               const char *code, enum delivery_action act, const char *msg)
{
    struct simulation *s = ctx;
    lane_raise(s, delivery_lane(s, src), t, sev, src, code, act, msg);
}

/* A delivery condition ended. */
static void sim_delivery_clear(void *ctx, int64_t t, const char *src, const char *code)
{
    struct simulation *s = ctx;
    alarms_clear(&s->alarms, t, src, code, NULL);
}

/* Regulator hook: its output goes to the actuator as any setpoint does, recorded
 * in the file of the run that holds the regulated channel. */
static void sim_reg_write(void *ctx, int ch, double out, int64_t t)
{
    struct simulation *s = ctx;
    for (size_t k = 0; k < s->rig->n_regulators; k++) {
        if (s->rig->regulators[k].actuator != ch)
            continue;
        struct sim_lane *l = reg_lane(s, k);
        if (l != NULL) {
            lane_write(l, ch, out, t);
            return;
        }
    }
    lane_write(&s->lanes[0], ch, out, t);
}

/* Regulator hook: a tick's figures into /regulators of the file of the run its
 * setpoint belongs to, as perfused does (alone on the rig: the one run). */
static void sim_reg_terms(void *ctx, size_t k, const struct reg_terms *r, int64_t t)
{
    struct simulation *s = ctx;
    struct sim_lane *l = reg_lane(s, k);
    if (l == NULL || l->finished)
        return;
    const double v[RUNFILE_REG_SERIES] = { r->sp, r->y, r->out, r->p, r->i, r->d, r->ff };
    for (int j = 0; j < RUNFILE_REG_SERIES; j++)
        recorder_regulated(l->rec, (uint32_t)(k * RUNFILE_REG_SERIES + (size_t)j), rel(t), v[j]);
}

/* Regulator hook: a fault is an alarm and, except a measurement problem, the
 * on_fault of the protocol that holds the regulated channel. */
static void sim_reg_fault(void *ctx, size_t k, enum reg_fault f, bool active, const char *msg, int64_t t)
{
    struct simulation *s = ctx;
    const char *src = s->rig->regulators[k].name;
    if (active)
        lane_raise(s, reg_lane(s, k), t, f == RF_MEASUREMENT ? "alarm" : "fault", src, regulator_fault_code(f),
                   f == RF_MEASUREMENT ? DELIVERY_WARN : DELIVERY_ON_FAULT, msg);
    else
        sim_delivery_clear(s, t, src, regulator_fault_code(f));
}

/* The runs start: the syringes' levels at the start (each run's own pumps). */
static int start_delivery(struct simulation *s, const struct simulate_options *o, struct diag *d)
{
    struct delivery_hooks h = { .ctx = s, .raise = sim_delivery_raise, .clear = sim_delivery_clear };
    int rc = delivery_init(&s->dl, s->rig, &h);
    if (rc < 0)
        return rc;
    double fills[DELIVERY_MAX_FILLS + 1];
    char err[300];
    if (s->dl.n_pumps > DELIVERY_MAX_FILLS)
        return -E2BIG;
    size_t bad;
    if (delivery_parse_fills(&s->dl, o->fills, o->n_fills, fills, &bad, err, sizeof err) < 0) {
        delivery_fill_error(d, o->fills[bad], err);
        return -EINVAL;
    }
    if (s->n_lanes == 1) {
        delivery_start(&s->dl, fills, 0);
        return 0;
    }
    for (size_t i = 0; i < s->n_lanes; i++)
        delivery_start_some(&s->dl, fills, s->lanes[i].claims.writes, 0);
    return 0;
}

static void hook_step(void *ctx, const struct rec_step *row)
{
    recorder_step(((struct sim_lane *)ctx)->rec, row);
}

static void hook_finished(void *ctx, enum run_state final)
{
    struct sim_lane *l = ctx;
    l->finished = true;
    l->final = final;
    /* Its limits end with it; its pumps are no longer followed. */
    interlocks_set_owner(&l->sim->il, l, NULL, 0, pclock_now(&l->sim->clk));
    if (l->sim->n_lanes > 1)
        delivery_stop_some(&l->sim->dl, l->claims.writes);
}

/* Set up the channels' model mapping and sampling timers. */
/* A read's time on its line at the rig's rate and framing: the simulated rig's
 * frames (New Era RAT: 5 characters out, 13 back; DIS: 5 and 20; a Modbus RTU
 * read of one f32: 8 and 9, with the 3.5-character silence) and the devices'
 * assumed turnaround (sim_wire.h). Modbus TCP on loopback: none. */
static int64_t read_txn_ns(const struct rig *rig, const struct rig_channel *rc, enum sim_quantity w)
{
    const struct link_config *l = &rig->buses[rig->devices[rc->device].bus].link;
    int bits = sim_wire_char_bits(l->data_bits, l->parity, l->stop_bits);
    int64_t ch = sim_wire_char_ns(l->baud, bits);
    if (l->type == LINK_MODBUS_TCP || ch == 0)
        return 0;
    if (w == SQ_PUMP_FLOW || w == SQ_PUMP_DISPENSED)
        return (5 + (w == SQ_PUMP_FLOW ? 13 : 20)) * ch + SIM_LATENCY_NEWERA_NS;
    return (8 + 9) * ch + sim_wire_rtu_gap_ns(l->baud, bits) + SIM_LATENCY_MODBUS_NS;
}

static int setup_channels(struct simulation *s, struct diag *d, bool line_rate)
{
    s->chans = calloc(s->rig->n_channels + 1, sizeof *s->chans);
    if (s->chans == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->rig->n_channels; i++) {
        struct sim_chan *c = &s->chans[i];
        const struct rig_channel *rc = &s->rig->channels[i];
        c->sim = s;
        c->channel = (int)i;
        if (map_channel(rc->name, c) < 0) {
            diag_error(d, s->rig->path, 0, 0, "channel '%s' is not one of the simulated rig's; "
                       "simulate runs on the simulated rig only", rc->name);
            return -EINVAL;
        }
        if (rc->readable && rc->sample_hz > 0) {
            c->period_ns = (int64_t)llround(1e9 / rc->sample_hz);
            c->txn_ns = line_rate ? read_txn_ns(s->rig, rc, c->what) : 0;
            ptimer_init(&s->clk, &c->timer, sample_fired, c);
            /* The first reading is the one a daemon sampling all along holds
             * when the run starts; the later ones end their time on the line. */
            ptimer_start(&c->timer, 0);
        }
    }
    return 0;
}

/* Load the rig and the protocols; protocols that claim one actuator cannot
 * run together: each overlap is an error naming the channel and its holder. */
static int load_inputs(struct simulation *s, const struct simulate_options *o, struct diag *d)
{
    int rc = rig_load(o->rig_path, &s->rig, d);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < s->n_lanes && rc == 0; i++) {
        char *text;
        size_t len;
        const char *path = o->protocol_paths[i];
        rc = read_file_text(path, 4 << 20, &text, &len);
        if (rc < 0) {
            diag_error(d, path, 0, 0, "cannot read protocol: %s", strerror(-rc));
            return rc;
        }
        rc = plan_load(path, text, len, s->rig, &s->lanes[i].plan, d);
        free(text);
        if (rc == 0)
            rc = claims_of_plan(s->lanes[i].plan, s->rig, &s->lanes[i].claims);
    }
    for (size_t i = 1; rc >= 0 && i < s->n_lanes; i++)
        for (size_t k = 0; k < i; k++) {
            int ch = claims_overlap(&s->lanes[i].claims, &s->lanes[k].claims);
            if (ch < 0)
                continue;
            char holder[CLAIMS_MAX_NAME + 1], msg[256];
            claims_default_name(s->lanes[k].plan->name, holder, sizeof holder);
            claims_conflict_message(s->rig, ch, holder, NULL, msg, sizeof msg);
            diag_error(d, o->protocol_paths[i], 0, 0, "cannot run alongside %s: %s",
                       o->protocol_paths[k], msg);
            rc = -EINVAL;
        }
    return rc;
}

/* Start the recorder of lane l on its output file. */
static int open_recorder(struct simulation *s, struct sim_lane *l, const char *protocol_path,
                         const char *out_path, struct simulate_result *res)
{
    struct rec_run_info info;
    char id[33], host[64] = "";
    runfile_make_id(id);
    gethostname(host, sizeof host - 1);
    int64_t wall = time_wall_ns();
    if (out_path) {
        snprintf(res->path, sizeof res->path, "%s", out_path);
    } else {
        if (mkdir("runs", 0750) < 0 && errno != EEXIST)
            return -errno;
        runfile_path(res->path, sizeof res->path, "runs", wall, l->plan->name, "sim", id);
    }
    int rc = runfile_series_build(s->rig, &l->series);
    if (rc < 0)
        return rc;
    char claimed[2048], sensors[2048];
    struct claims reads = { .n = l->claims.n, .writes = l->claims.reads };
    claims_list(&l->claims, s->rig, claimed, sizeof claimed);
    claims_list(&reads, s->rig, sensors, sizeof sensors);
    info = (struct rec_run_info){
        .path = res->path, .run_id = id, .protocol_name = l->plan->name,
        .protocol_path = protocol_path, .protocol_text = l->plan->text, .rig_name = s->rig->name,
        .rig_text = s->rig->text, .operator_name = "simulation", .host = host,
        .software_version = PERFUSE_VERSION " (" PERFUSE_GIT_REV ")", .start_wall_ns = wall,
        .channels = l->series.chans, .n_channels = l->series.n_chans,
        .setpoints = l->series.sps, .n_setpoints = l->series.n_sps,
        .confirmed = l->series.confs, .n_confirmed = l->series.n_sps,
        .regulators = l->series.regs, .n_regulators = l->series.n_regs,
        .regulated = l->series.reg_series, .n_regulated = l->series.n_reg_series,
        .compression = s->rig->rec.compression, .flush_interval_s = s->rig->rec.flush_s,
        .fsync_interval_s = s->rig->rec.checkpoint_s, .claims = claimed, .sensors = sensors,
        .simulated = 1,
    };
    /* The protocol's description goes with a simulation's file as with a run's. */
    struct rec_field desc = { .group = "", .key = "description", .value = l->plan->description };
    if (l->plan->description != NULL) {
        info.fields = &desc;
        info.n_fields = 1;
    }
    if ((rc = delivery_add_to_file(&s->dl, &l->series, &info)) < 0)
        return rc;
    info.channels = l->series.chans;
    info.n_channels = l->series.n_chans;
    return recorder_start(&l->rec, &info, NULL, NULL);
}

/* Step the virtual clock to the end, pacing it if a speed is given. */
static void run_clock(struct simulation *s, double speed)
{
    uint64_t wall0 = time_mono_ns();
    uint64_t steps = 0;
    while (!all_finished(s) && pclock_virtual_step(&s->clk)) {
        if (speed > 0) {
            uint64_t due = wall0 + (uint64_t)((double)pclock_now(&s->clk) / speed);
            struct timespec ts = { .tv_sec = (time_t)(due / NS_PER_SEC), .tv_nsec = (long)(due % NS_PER_SEC) };
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        if ((++steps & 4095) == 0)
            for (size_t i = 0; i < s->n_lanes; i++)
                recorder_throttle(s->lanes[i].rec, THROTTLE_SAMPLES);
    }
}

/* Release everything. */
static void simulation_free(struct simulation *s)
{
    for (size_t i = 0; s->lanes && i < s->n_lanes; i++) {
        struct sim_lane *l = &s->lanes[i];
        runner_free(l->runner);
        if (l->prompt_timer.clk != NULL) {
            ptimer_close(&l->prompt_timer, NULL);
            ptimer_close(&l->resume_timer, NULL);
            ptimer_close(&l->held_timer, NULL);
        }
        runfile_series_free(&l->series);
        claims_free(&l->claims);
        plan_free(l->plan);
    }
    for (size_t i = 0; s->chans && i < s->rig->n_channels; i++)
        if (s->chans[i].period_ns)
            ptimer_close(&s->chans[i].timer, NULL);
    interlocks_free(&s->il);
    delivery_free(&s->dl);
    regloop_free(&s->rl);
    alarms_free(&s->alarms);
    free(s->chans);
    free(s->lanes);
    rig_free(s->rig);
    pclock_free(&s->clk);
}

/* Start lane l: its timers, its limits and its runner. */
static int start_lane(struct simulation *s, struct sim_lane *l)
{
    struct runner_hooks hooks = { .ctx = l, .write = hook_write, .safe_state = hook_safe_state,
                                  .event = hook_event, .step = hook_step, .finished = hook_finished };
    int rc = ptimer_init(&s->clk, &l->prompt_timer, prompt_fired, l);
    if (rc == 0)
        rc = ptimer_init(&s->clk, &l->resume_timer, resume_fired, l);
    if (rc == 0)
        rc = ptimer_init(&s->clk, &l->held_timer, held_fired, l);
    if (rc == 0)
        rc = interlocks_set_owner(&s->il, s->n_lanes == 1 ? NULL : l, l->plan->limits,
                                  l->plan->n_limits, 0);
    if (rc == 0)
        rc = runner_create(&l->runner, l->plan, s->rig, &s->clk, &hooks);
    return rc;
}

/* Run the simulation. */
int simulate_run(const struct simulate_options *o, struct diag *d, struct simulate_result *res)
{
    static struct simulation s;
    memset(&s, 0, sizeof s);
    size_t n = o->n_protocols > 0 ? o->n_protocols : 1;
    const char *one[1] = { o->protocol_path };
    struct simulate_options opt = *o;
    if (o->n_protocols == 0)
        opt.protocol_paths = one;
    o = &opt;
    memset(res, 0, n * sizeof *res);
    pclock_init_virtual(&s.clk, 0);
    sim_physics_init(&s.phys, o->seed);
    s.prompt_delay_ns = o->prompt_delay_ns;
    s.lanes = calloc(n, sizeof *s.lanes);
    s.n_lanes = s.lanes ? n : 0;
    char err[256];
    int rc = s.lanes ? 0 : -ENOMEM;
    for (size_t i = 0; i < s.n_lanes; i++)
        s.lanes[i].sim = &s;
    for (size_t i = 0; i < o->n_faults && rc == 0; i++)
        if ((rc = sim_fault_add(&s.faults, o->faults[i], 0, err, sizeof err)) < 0)
            diag_error(d, "--fault", 0, 0, "%s: %s", o->faults[i], err);
    if (rc == 0)
        rc = load_inputs(&s, o, d);
    if (rc == 0)
        rc = start_delivery(&s, o, d);
    for (size_t i = 0; i < s.n_lanes && rc == 0; i++)
        rc = open_recorder(&s, &s.lanes[i], o->protocol_paths[i], n == 1 ? o->out_path : NULL, &res[i]);
    struct regloop_hooks rh = { .ctx = &s, .write = sim_reg_write, .terms = sim_reg_terms,
                                .fault = sim_reg_fault };
    if (rc == 0)
        rc = regloop_init(&s.rl, s.rig, &s.clk, &rh);
    if (rc == 0)
        rc = setup_channels(&s, d, !o->line_rate_off);
    struct interlock_hooks ih = { .ctx = &s, .trip = sim_limit_tripped, .clear = sim_limit_cleared };
    alarms_init(&s.alarms, sim_alarm_event, &s);
    if (rc == 0)
        rc = interlocks_init(&s.il, s.rig->limits, s.rig->n_limits, &ih);
    for (size_t i = 0; i < s.n_lanes && rc == 0; i++)
        rc = start_lane(&s, &s.lanes[i]);
    if (rc < 0) {
        for (size_t i = 0; i < s.n_lanes; i++)
            if (s.lanes[i].rec) {
                recorder_finish(s.lanes[i].rec, "aborted");
                recorder_free(s.lanes[i].rec);
            }
        simulation_free(&s);
        return rc;
    }
    char m[400];
    for (size_t k = 0; k < s.n_lanes; k++) {
        struct sim_lane *l = &s.lanes[k];
        if (s.n_lanes > 1)
            snprintf(m, sizeof m, "simulated run in virtual time (seed %llu, %zu faults injected), "
                     "one of %zu protocols on the one simulated rig", (unsigned long long)o->seed,
                     o->n_faults, s.n_lanes);
        else
            snprintf(m, sizeof m, "simulated run in virtual time (seed %llu, %zu faults injected)",
                     (unsigned long long)o->seed, o->n_faults);
        recorder_event(l->rec, 0, "info", "simulation", "simulated", m);
        for (size_t i = 0; i < s.dl.n_pumps; i++) {
            if (!s.dl.pumps[i].tracking || (s.n_lanes > 1 && holder_of(&s, s.dl.pumps[i].flow) != l))
                continue;
            delivery_describe_start(&s.dl, i, m, sizeof m);
            recorder_event(l->rec, 0, s.dl.pumps[i].s.source == FILL_GIVEN ? "info" : "warning",
                           s.dl.pumps[i].name, "syringe_fill", m);
        }
    }
    uint64_t w0 = time_mono_ns();
    for (size_t i = 0; i < s.n_lanes; i++)
        runner_start(s.lanes[i].runner, 0);
    run_clock(&s, o->speed);
    int64_t vend = pclock_now(&s.clk);
    double wall = (double)(time_mono_ns() - w0) / 1e9;
    /* completed, aborted or faulted (a safe-stop limit, on_fault: abort), as a daemon's run file
     * says; or paused, on a delivery fault no simulated operator can clear. */
    for (size_t i = 0; i < s.n_lanes; i++) {
        struct sim_lane *l = &s.lanes[i];
        const char *final = run_outcome_name(l->final);
        recorder_finish(l->rec, final);
        recorder_free(l->rec);
        res[i].virtual_ns = vend;
        res[i].wall_s = wall;
        res[i].samples = l->samples;
        snprintf(res[i].state, sizeof res[i].state, "%s", final);
    }
    simulation_free(&s);
    return 0;
}
