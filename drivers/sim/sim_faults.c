/* Injected faults of the simulated rig: parsing, windows, and the physical ones. */
#include "sim_faults.h"
#include "base/units.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[SF_KINDS] = {
    "timeout", "garbage", "crc", "disconnect", "exception", "stuck", "nan", "clog", "bubble",
    "syringe-empty", "range", "reservoir-empty", "inverted", "low-resistance",
};
static const char *const device_names[SD_DEVICES] = {
    "pump1", "pump2", "chip1", "chip2", "valve1", "incubator", "reglo", "harvard", "hamilton",
    "ob1", "chip3", "pc1",
};

const char *sim_device_name(enum sim_device d)
{
    return device_names[d];
}

/* Whether kind makes sense for device. */
static bool applies(enum sim_fault_kind k, enum sim_device d)
{
    bool pump = d == SD_PUMP1 || d == SD_PUMP2, chip = d == SD_CHIP1 || d == SD_CHIP2;
    bool plant = d == SD_CHIP3 || d == SD_PC1;
    switch (k) {
    case SF_TIMEOUT: case SF_GARBAGE: case SF_DISCONNECT: case SF_EXCEPTION: return true;
    case SF_CRC: return chip || d == SD_CHIP3;
    case SF_STUCK: case SF_NAN: case SF_CLOG: case SF_BUBBLE: return chip || plant;
    case SF_RANGE: return chip;
    case SF_RESERVOIR_EMPTY: case SF_INVERTED: case SF_LOW_RESISTANCE: return plant;
    case SF_SYRINGE_EMPTY: return pump || d == SD_HARVARD;
    default: return false;
    }
}

/* Parse "key=DURATION". */
static int parse_opt(const char *opt, int64_t *at, int64_t *dur, char *err, size_t errlen)
{
    int64_t *dst = strncmp(opt, "at=", 3) == 0 ? at : strncmp(opt, "for=", 4) == 0 ? dur : NULL;
    if (dst == NULL) {
        snprintf(err, errlen, "unknown fault option '%s' (expected at=DURATION or for=DURATION)", opt);
        return -EINVAL;
    }
    char e[200];
    int col;
    if (unit_parse_duration(strchr(opt, '=') + 1, dst, e, sizeof e, &col) < 0) {
        snprintf(err, errlen, "%s: %s", opt, e);
        return -EINVAL;
    }
    return 0;
}

/* Parse a spec. */
int sim_fault_parse(const char *spec, enum sim_fault_kind *kind, enum sim_device *dev,
                    int64_t *at_ns, int64_t *for_ns, char *err, size_t errlen)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", spec);
    *at_ns = 0;
    *for_ns = -1;
    char *save = NULL;
    char *head = strtok_r(buf, ",", &save);
    char *colon = head ? strchr(head, ':') : NULL;
    if (colon == NULL) {
        snprintf(err, errlen, "fault '%s' must be KIND:DEVICE[,at=DURATION][,for=DURATION]", spec);
        return -EINVAL;
    }
    *colon = '\0';
    int k = -1, d = -1;
    for (int i = 0; i < SF_KINDS; i++)
        if (strcmp(head, kind_names[i]) == 0)
            k = i;
    for (int i = 0; i < SD_DEVICES; i++)
        if (strcmp(colon + 1, device_names[i]) == 0)
            d = i;
    if (k < 0 || d < 0) {
        snprintf(err, errlen, k < 0 ? "unknown fault kind '%s' (timeout, garbage, crc, disconnect, "
                 "exception, stuck, nan, clog, bubble, syringe-empty)" :
                 "unknown device '%s' (pump1, pump2, chip1, chip2, valve1, incubator, "
                 "reglo, harvard, hamilton)",
                 k < 0 ? head : colon + 1);
        return -EINVAL;
    }
    if (!applies((enum sim_fault_kind)k, (enum sim_device)d)) {
        snprintf(err, errlen, "fault '%s' does not apply to %s", head, colon + 1);
        return -EINVAL;
    }
    for (char *opt; (opt = strtok_r(NULL, ",", &save)) != NULL;)
        if (parse_opt(opt, at_ns, for_ns, err, errlen) < 0)
            return -EINVAL;
    *kind = (enum sim_fault_kind)k;
    *dev = (enum sim_device)d;
    return 0;
}

/* Parse and add a fault. */
int sim_fault_add(struct sim_faults_table *t, const char *spec, int64_t now_ns, char *err,
                  size_t errlen)
{
    enum sim_fault_kind k;
    enum sim_device d;
    int64_t at, dur;
    if (sim_fault_parse(spec, &k, &d, &at, &dur, err, errlen) < 0)
        return -EINVAL;
    struct sim_fault *f = &t->f[d][k];
    f->set = true;
    f->applied = false;
    f->start_ns = now_ns + at;
    f->end_ns = dur < 0 ? INT64_MAX : f->start_ns + dur;
    return 0;
}

/* Clear the faults of one device or of all. */
int sim_fault_clear(struct sim_faults_table *t, const char *device)
{
    for (int d = 0; d < SD_DEVICES; d++) {
        if (strcmp(device, "all") != 0 && strcmp(device, device_names[d]) != 0)
            continue;
        for (int k = 0; k < SF_KINDS; k++)
            t->f[d][k].end_ns = t->f[d][k].set ? 0 : t->f[d][k].end_ns;
        if (strcmp(device, "all") != 0)
            return 0;
    }
    return strcmp(device, "all") == 0 ? 0 : -EINVAL;
}

/* Whether a fault is active at now. */
bool sim_fault_active(const struct sim_faults_table *t, enum sim_device d, enum sim_fault_kind k,
                      int64_t now_ns)
{
    const struct sim_fault *f = &t->f[d][k];
    return f->set && now_ns >= f->start_ns && now_ns < f->end_ns;
}

/* Push the physical faults into the model. */
void sim_fault_apply(struct sim_faults_table *t, struct sim_physics *p, int64_t now_ns)
{
    for (int c = 0; c < SIM_CHIPS; c++) {
        enum sim_device d = (enum sim_device)(SD_CHIP1 + c);
        p->faults.clog[c] = sim_fault_active(t, d, SF_CLOG, now_ns) ? 5.0 : 1.0;
        p->faults.bubble[c] = sim_fault_active(t, d, SF_BUBBLE, now_ns);
        p->faults.nan_pressure[c] = sim_fault_active(t, d, SF_NAN, now_ns);
        p->faults.range_pressure[c] = sim_fault_active(t, d, SF_RANGE, now_ns);
        bool stuck = sim_fault_active(t, d, SF_STUCK, now_ns);
        if (stuck && !p->faults.stuck[c])
            p->stuck_value[c] = sim_read_pressure(p, c);
        p->faults.stuck[c] = stuck;
    }
    for (int i = 0; i < SIM_PPLANTS; i++) {
        enum sim_device d = i == 0 ? SD_CHIP3 : SD_PC1;
        struct sim_pplant *pl = &p->pplant[i];
        pl->r_factor = sim_fault_active(t, d, SF_CLOG, now_ns) ? 5.0
                     : sim_fault_active(t, d, SF_LOW_RESISTANCE, now_ns) ? 0.1 : 1.0;
        pl->sign = sim_fault_active(t, d, SF_INVERTED, now_ns) ? -1 : 1;
        pl->empty = sim_fault_active(t, d, SF_RESERVOIR_EMPTY, now_ns);
        bool bubble = sim_fault_active(t, d, SF_BUBBLE, now_ns);
        if (bubble && !pl->bubble)
            pl->bubble_ns = now_ns;
        pl->bubble = bubble;
        p->faults.pflow_nan[i] = sim_fault_active(t, d, SF_NAN, now_ns);
        bool stuck = sim_fault_active(t, d, SF_STUCK, now_ns);
        if (stuck && !p->faults.pflow_stuck[i])
            p->pflow_stuck_value[i] = sim_read_pflow(p, i);
        p->faults.pflow_stuck[i] = stuck;
    }
    for (int i = 0; i < SIM_PUMPS; i++) {
        struct sim_fault *f = &t->f[SD_PUMP1 + i][SF_SYRINGE_EMPTY];
        if (!f->applied && sim_fault_active(t, (enum sim_device)(SD_PUMP1 + i), SF_SYRINGE_EMPTY, now_ns)) {
            p->pump[i].remaining_ul = 0;
            if (p->pump[i].running && p->pump[i].direction > 0) {
                p->pump[i].running = false;
                p->pump[i].alarm = 'S';
            }
            f->applied = true;
        }
    }
}

/* One line per set fault. */
void sim_fault_describe(const struct sim_faults_table *t, int64_t now_ns, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < SD_DEVICES; d++)
        for (int k = 0; k < SF_KINDS; k++) {
            const struct sim_fault *f = &t->f[d][k];
            if (!f->set || f->end_ns <= now_ns || n >= len)
                continue;
            n += (size_t)snprintf(buf + n, len - n, "%s:%s %s\n", kind_names[k], device_names[d],
                                  now_ns >= f->start_ns ? "active" : "pending");
        }
}
