/* Desired and confirmed state of every actuator channel, and their reconciliation. */
#include "actuators.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set up n channels, all off. */
int actuators_init(struct actuators *a, size_t n, int64_t tol_ns, int64_t safe_tol_ns,
                   const struct act_hooks *hooks)
{
    memset(a, 0, sizeof *a);
    a->c = calloc(n ? n : 1, sizeof *a->c);
    if (a->c == NULL)
        return -ENOMEM;
    a->n = n;
    a->tol_ns = tol_ns;
    a->safe_tol_ns = safe_tol_ns;
    if (hooks != NULL)
        a->hooks = *hooks;
    for (size_t i = 0; i < n; i++)
        a->c[i].value = a->c[i].desired = NAN;
    return 0;
}

/* Free the channels. */
void actuators_free(struct actuators *a)
{
    free(a->c);
    a->c = NULL;
    a->n = 0;
}

/* The channel ch if it is writable, else NULL. */
static struct act_chan *chan(struct actuators *a, int ch)
{
    if (a->c == NULL || ch < 0 || (size_t)ch >= a->n || !a->c[ch].on)
        return NULL;
    return &a->c[ch];
}

/* Declare ch writable with its driver's rules. */
void actuators_config(struct actuators *a, int ch, bool readback, bool reassert,
                      bool has_safe_action, double safe_value, double tol)
{
    if (a->c == NULL || ch < 0 || (size_t)ch >= a->n)
        return;
    struct act_chan *c = &a->c[ch];
    c->on = true;
    c->readback = readback;
    c->reassert = reassert;
    c->has_safe_action = has_safe_action;
    c->safe_value = has_safe_action ? safe_value : NAN;
    c->tol = tol;
    c->reachable = true;
}

const struct act_chan *actuators_get(const struct actuators *a, int ch)
{
    return chan((struct actuators *)a, ch);
}

const char *act_origin_name(enum act_origin o)
{
    switch (o) {
    case ACT_PROTOCOL: return "protocol";
    case ACT_MANUAL: return "manual";
    case ACT_SAFE: return "safe";
    default: return "none";
    }
}

/* The value desired, as a number (the device's safe action: its safe value, maybe NaN). */
static double desired_value(const struct act_chan *c)
{
    return c->device_safe ? c->safe_value : c->desired;
}

/* Whether sending desired again can only make the device safer (a stop): allowed
 * after a reconnect even where the driver forbids re-sending setpoints. */
static bool desired_is_safe(const struct act_chan *c)
{
    if (c->device_safe)
        return true;
    return c->has_safe_action && !isnan(c->safe_value) && c->desired == c->safe_value;
}

/* Whether a finished write (value, or the safe action) is of the value desired now. */
static bool write_matches(const struct act_chan *c, double value, bool device_safe)
{
    if (device_safe && c->device_safe)
        return true;
    double v = device_safe ? c->safe_value : value, want = desired_value(c);
    return !isnan(v) && !isnan(want) && v == want;
}

/* Report a change of ch. */
static void changed(struct actuators *a, int ch, int64_t now)
{
    if (a->hooks.changed)
        a->hooks.changed(a->hooks.ctx, ch, &a->c[ch], now);
}

/* ch's desired value is confirmed now. */
static void confirm(struct actuators *a, int ch, int64_t now)
{
    struct act_chan *c = &a->c[ch];
    c->confirmed = true;
    c->contradictions = 0;
    c->unconfirmed_ns = 0;
    c->why[0] = '\0';
    c->held = false;
    c->next_try_ns = 0;
    c->backoff_ns = ACT_BACKOFF_MIN_NS;
    c->overdue = false;
    if (c->reported) {
        c->reported = false;
        if (a->hooks.overdue)
            a->hooks.overdue(a->hooks.ctx, ch, c, false, now);
    }
}

/* ch's desired value is not (or no longer) confirmed, since now unless earlier. */
static void unconfirm(struct act_chan *c, int64_t now)
{
    if (c->confirmed)
        c->unconfirmed_ns = now;
    c->confirmed = false;
}

/* Schedule the next retry of ch after its back-off, and double the back-off
 * (a safe state's only up to ACT_SAFE_BACKOFF_MAX_NS: it must land soon after
 * the device is back). */
static void schedule_retry(struct act_chan *c, int64_t now)
{
    int64_t max = c->origin == ACT_SAFE ? ACT_SAFE_BACKOFF_MAX_NS : ACT_BACKOFF_MAX_NS;
    if (c->backoff_ns < ACT_BACKOFF_MIN_NS)
        c->backoff_ns = ACT_BACKOFF_MIN_NS;
    if (c->backoff_ns > max)
        c->backoff_ns = max;
    c->next_try_ns = now + c->backoff_ns;
    c->backoff_ns = c->backoff_ns * 2 > max ? max : c->backoff_ns * 2;
}

/* Send ch's desired value; a send that cannot be queued is retried later. */
static int send(struct actuators *a, int ch, int64_t now)
{
    struct act_chan *c = &a->c[ch];
    int rc = a->hooks.send ? a->hooks.send(a->hooks.ctx, ch, c->desired, c->device_safe,
                                           c->origin == ACT_SAFE) : -ENOSYS;
    c->next_try_ns = 0;
    c->in_flight = rc == 0;
    if (rc < 0) {
        snprintf(c->why, sizeof c->why, "cannot queue the write: %s", strerror(-rc));
        schedule_retry(c, now);
    }
    return rc;
}

/* Make value (or the device's safe action) the desired state of c and send it. */
static int want(struct actuators *a, int ch, double value, bool device_safe, enum act_origin origin,
                int64_t now)
{
    struct act_chan *c = &a->c[ch];
    if (c->origin == ACT_NONE)
        c->unconfirmed_ns = now;    /* the first value wanted */
    if (origin == ACT_SAFE && c->origin != ACT_SAFE) {
        /* The safe state has its own, shorter tolerance and its own alarm, even
         * if the setpoint it replaces was already reported overdue. */
        c->safe_since_ns = now;
        c->overdue = false;
    }
    c->origin = origin;
    c->desired = device_safe ? c->safe_value : value;
    c->device_safe = device_safe;
    c->desired_ns = now;
    c->held = false;
    c->give_up = false;
    c->backoff_ns = ACT_BACKOFF_MIN_NS;
    unconfirm(c, now);
    int rc = send(a, ch, now);
    changed(a, ch, now);
    return rc;
}

/* Want ch at value. */
int actuators_set_desired(struct actuators *a, int ch, double value, enum act_origin origin,
                          int64_t now)
{
    struct act_chan *c = chan(a, ch);
    if (c == NULL || isnan(value) || origin == ACT_NONE || origin == ACT_SAFE)
        return -EINVAL;
    if (c->latched)
        return -EPERM;
    return want(a, ch, value, false, origin, now);
}

/* Latch ch's safe state and send it. */
int actuators_latch_safe(struct actuators *a, int ch, double value, bool device_safe, int64_t now)
{
    struct act_chan *c = chan(a, ch);
    if (c == NULL || (!device_safe && isnan(value)) || (device_safe && !c->has_safe_action))
        return -EINVAL;
    c->latched = true;
    return want(a, ch, value, device_safe, ACT_SAFE, now);
}

/* Release ch's latch. */
void actuators_release(struct actuators *a, int ch)
{
    struct act_chan *c = chan(a, ch);
    if (c != NULL)
        c->latched = false;
}

/* A write of ch finished. */
void actuators_on_write(struct actuators *a, int ch, double value, bool device_safe, int err,
                        const char *msg, int64_t now)
{
    struct act_chan *c = chan(a, ch);
    if (c == NULL)
        return;
    bool current = c->origin != ACT_NONE && write_matches(c, value, device_safe);
    if (current)
        c->in_flight = false;
    if (err == -ECANCELED) {
        /* Never sent (a safety action superseded it): the device is as it was.
         * The current value, if this was it, is sent again as after any loss. */
        if (current && !c->confirmed && !c->held)
            schedule_retry(c, now);
        return;
    }
    if (err == 0) {
        c->value = device_safe ? c->safe_value : value;
        c->confirmed_ns = now;
        c->how = "write";
        if (current) {
            confirm(a, ch, now);
        } else if (c->confirmed) {
            /* An older value reached the device after the desired one was
             * confirmed: the device no longer holds what is wanted. */
            unconfirm(c, now);
            snprintf(c->why, sizeof c->why, "an older value (%g) was written after it", value);
            c->held = false;
            c->next_try_ns = now;
        } else if (!c->confirmed && c->unconfirmed_ns < c->desired_ns) {
            /* An older value went through: the device keeps up, the newest is on its way. */
            c->unconfirmed_ns = c->desired_ns;
        }
        changed(a, ch, now);
        return;
    }
    /* The device may or may not have taken it: what it does is unknown now. */
    c->value = NAN;
    snprintf(c->why, sizeof c->why, "%s", msg && *msg ? msg : strerror(-err));
    if (current) {
        unconfirm(c, now);
        /* Refused as invalid: sending it again changes nothing. A safe state is
         * still retried: it is all there is to fall back on. */
        if ((err == -EINVAL || err == -ERANGE) && c->origin != ACT_SAFE)
            c->give_up = true;
        else if (!c->held)
            schedule_retry(c, now);
    }
    changed(a, ch, now);
}

/* A good read of ch: a read-back that agrees with the desired value confirms
 * it; ACT_READBACK_CONTRADICTS in a row that do not take the confirmation back. */
void actuators_on_sample(struct actuators *a, int ch, double value, int64_t now)
{
    struct act_chan *c = chan(a, ch);
    if (c == NULL || !c->readback || c->origin == ACT_NONE || isnan(value))
        return;
    double want_v = desired_value(c);
    if (isnan(want_v))
        return;
    double tol = c->tol > 0 ? c->tol : fmax(0.01 * fabs(want_v), 1e-3);
    if (fabs(value - want_v) > tol) {
        if (!c->confirmed || ++c->contradictions < ACT_READBACK_CONTRADICTS)
            return;
        /* The device no longer does what it confirmed (it lost power, someone
         * pressed its stop key): unconfirmed, and sent again as a reconnect would be. */
        c->contradictions = 0;
        unconfirm(c, now);
        c->value = value;
        c->confirmed_ns = now;
        c->how = "read-back";
        snprintf(c->why, sizeof c->why, "the device reads back %g instead", value);
        /* A device that keeps dropping what it confirmed (an empty syringe that
         * stalls each time it is started) is told again less and less often. */
        if (c->contra_ns == 0 || now - c->contra_ns > ACT_CONTRA_RESET_NS)
            c->contra_backoff_ns = ACT_BACKOFF_MIN_NS;
        else
            c->contra_backoff_ns = c->contra_backoff_ns * 2 > ACT_CONTRA_MAX_NS ? ACT_CONTRA_MAX_NS
                                                                             : c->contra_backoff_ns * 2;
        c->contra_ns = now;
        if (c->reassert || desired_is_safe(c)) {
            c->held = false;
            c->next_try_ns = now + c->contra_backoff_ns;
            c->backoff_ns = c->contra_backoff_ns;
        } else {
            c->held = true;
            c->next_try_ns = 0;
        }
        changed(a, ch, now);
        return;
    }
    c->contradictions = 0;
    if (c->confirmed)
        return;
    c->value = value;
    c->confirmed_ns = now;
    c->how = "read-back";
    confirm(a, ch, now);
    changed(a, ch, now);
}

/* ch's device cannot be reached. */
void actuators_device_lost(struct actuators *a, int ch, bool probed, const char *why, int64_t now)
{
    struct act_chan *c = chan(a, ch);
    if (c == NULL)
        return;
    c->reachable = false;
    c->probed = probed;
    c->value = NAN;
    snprintf(c->why, sizeof c->why, "%s", why && *why ? why : "the device cannot be reached");
    if (c->origin != ACT_NONE)
        unconfirm(c, now);
    /* A retry that reached the device the moment it is back would be a
     * reconnect moving the rotor: such a channel waits for device_back. */
    if (!c->reassert && !desired_is_safe(c)) {
        c->held = true;
        c->next_try_ns = 0;
    }
    changed(a, ch, now);
}

/* ch's device answers again. */
void actuators_device_back(struct actuators *a, int ch, int64_t now)
{
    struct act_chan *c = chan(a, ch);
    if (c == NULL)
        return;
    c->reachable = true;
    c->backoff_ns = ACT_BACKOFF_MIN_NS;
    if (c->origin == ACT_NONE || c->confirmed || c->give_up)
        return;
    if (c->reassert || desired_is_safe(c)) {
        c->held = false;
        send(a, ch, now);
    } else {
        c->held = true;
        c->next_try_ns = 0;
        snprintf(c->why, sizeof c->why, "not sent again after the reconnect (this device is never "
                 "moved by a reconnect): waiting for its read-back or a new command");
        changed(a, ch, now);
    }
}

/* Send due retries, report channels past their tolerance; the next time to act. */
int64_t actuators_tick(struct actuators *a, int64_t now)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < a->n; i++) {
        struct act_chan *c = &a->c[i];
        if (!c->on || c->origin == ACT_NONE || c->confirmed)
            continue;
        /* A faulted device that the bus probes anyway (it has a read-back to
         * sample) is sent its value when it answers again (device_back): retries
         * would only cost its bus time-outs meanwhile. On a link that is down a
         * retry costs nothing and reopens the link sooner than the bus would. */
        bool wait_back = !c->reachable && c->probed && c->readback;
        if (c->next_try_ns != 0 && !c->held && !c->give_up && !c->in_flight && !wait_back) {
            if (now >= c->next_try_ns)
                send(a, (int)i, now);
            if (c->next_try_ns != 0 && c->next_try_ns < next)
                next = c->next_try_ns;
        }
        bool safe = c->origin == ACT_SAFE;
        int64_t tol = safe ? a->safe_tol_ns : a->tol_ns;
        int64_t since = safe && c->safe_since_ns > c->unconfirmed_ns ? c->safe_since_ns : c->unconfirmed_ns;
        if (!c->overdue) {
            if (now - since >= tol) {
                c->overdue = c->reported = true;
                if (a->hooks.overdue)
                    a->hooks.overdue(a->hooks.ctx, (int)i, c, true, now);
            } else if (since + tol < next) {
                next = since + tol;
            }
        }
    }
    return next;
}

/* Whether any channel holds a latched safe state. */
bool actuators_any_latched(const struct actuators *a)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->c[i].on && a->c[i].latched)
            return true;
    return false;
}

/* Whether every latched safe state is confirmed. */
bool actuators_safe_confirmed(const struct actuators *a)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->c[i].on && a->c[i].latched && !a->c[i].confirmed)
            return false;
    return true;
}
