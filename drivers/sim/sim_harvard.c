/*
 * The simulated Harvard Apparatus Pump 11 Elite line: two pumps in a daisy
 * chain (addresses 0 and 1) on one pty, answering the Ultra command set as
 * the real pumps do: CR LF, text lines, then the prompt with the two-digit
 * address ("00:" idle, "00>" infusing, "00<" withdrawing, "00*" stalled).
 *
 * The model: each pump holds a syringe that empties while it infuses and
 * fills while it withdraws. A pump that infuses from an empty syringe (or
 * withdraws into a full one) stalls: it stops and its prompt is '*' until it
 * is told to stop or to run again. The syringe-empty fault empties both
 * syringes at once.
 *
 * Parsing and formatting are written here again rather than shared with
 * drivers/harvard.c on purpose: the simulator is an independent
 * implementation of the device, so a bug in the driver's framing cannot hide
 * behind the same bug in the simulator.
 */
#include "sim_harvard.h"
#include "sim_wire.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HV_MAX_RATE 10000.0     /* uL/min the model takes; more is "Out of range" */
#define HV_MIN_RATE 0.0001

/* Power-on state: half-full syringes (room to infuse and to withdraw), a
 * diameter the rig has to correct. */
static void hv_init(void *state)
{
    struct sim_harvard *h = state;
    memset(h, 0, sizeof *h);
    static const double capacity[SIM_HARVARD_PUMPS] = { 10000.0, 1000.0 };
    for (int i = 0; i < SIM_HARVARD_PUMPS; i++) {
        h->pump[i].diameter_mm = 10.0;
        h->pump[i].irate = h->pump[i].wrate = 1.0;
        h->pump[i].capacity_ul = capacity[i];
        h->pump[i].contents_ul = capacity[i] / 2;
    }
}

/* Move one pump's plunger for dt minutes; stall at the end of the syringe. */
static void advance_pump(struct sim_hv_pump *p, double dt_min)
{
    if (p->motion > 0) {
        double v = p->irate * dt_min;
        if (v >= p->contents_ul) {
            v = p->contents_ul;
            p->motion = 0;
            p->stalled = true;
        }
        p->contents_ul -= v;
        p->infused_ul += v;
    } else if (p->motion < 0) {
        double v = p->wrate * dt_min;
        double room = p->capacity_ul - p->contents_ul;
        if (v >= room) {
            v = room;
            p->motion = 0;
            p->stalled = true;
        }
        p->contents_ul += v;
        p->withdrawn_ul += v;
    }
}

/* Bring every pump to model time now. */
static void advance(struct sim_harvard *h, int64_t now_ns)
{
    if (now_ns <= h->t_ns)
        return;
    double dt_min = (double)(now_ns - h->t_ns) / 60e9;
    for (int i = 0; i < SIM_HARVARD_PUMPS; i++)
        advance_pump(&h->pump[i], dt_min);
    h->t_ns = now_ns;
}

/* The prompt of a pump at address a. */
static void prompt(const struct sim_hv_pump *p, int a, char *out, size_t len)
{
    const char *st = p->stalled ? "*" : p->motion > 0 ? ">" : p->motion < 0 ? "<" : ":";
    snprintf(out, len, "%02d%s", a, st);
}

/* Whether word is name or its abbreviation to four or more letters (the pump takes both). */
static bool is_cmd(const char *word, const char *name)
{
    size_t n = strlen(word);
    return n > 0 && (n >= 4 || n == strlen(name)) && n <= strlen(name) &&
           strncasecmp(word, name, n) == 0;
}

/* Write a number as the pump shows it: four decimals at most, no trailing zeros. */
static void show(double v, char *out, size_t len)
{
    char t[48];
    snprintf(t, sizeof t, "%.4f", v);
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == '0')
        t[--n] = '\0';
    if (n > 0 && t[n - 1] == '.')
        t[--n] = '\0';
    snprintf(out, len, "%s", t);
}

/* A rate argument "10 ul/min" (also ml, nl; min, hr, s) in uL/min; -1 if it is not one. */
static double rate_arg(const char *arg)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || !isdigit((unsigned char)arg[0]) || !isfinite(v))
        return -1;
    while (*end == ' ')
        end++;
    double f = 0;
    if (strncasecmp(end, "ml/", 3) == 0)
        f = 1000.0;
    else if (strncasecmp(end, "ul/", 3) == 0)
        f = 1.0;
    else if (strncasecmp(end, "nl/", 3) == 0)
        f = 0.001;
    else
        return -1;
    const char *t = end + 3;
    if (strcasecmp(t, "min") == 0)
        return v * f;
    if (strcasecmp(t, "hr") == 0)
        return v * f / 60.0;
    if (strcasecmp(t, "s") == 0)
        return v * f * 60.0;
    return -1;
}

/* Execute one command on pump p; the text reply goes to text, "" for none. */
static void execute(struct sim_hv_pump *p, const char *word, const char *arg, char *text,
                    size_t len)
{
    text[0] = '\0';
    if (is_cmd(word, "irun") || is_cmd(word, "wrun")) {
        int dir = tolower((unsigned char)word[0]) == 'i' ? 1 : -1;
        p->stalled = false;
        p->motion = dir;
        /* Nothing to push (or no room to pull): the motor stalls at once. */
        if ((dir > 0 && p->contents_ul <= 0) || (dir < 0 && p->contents_ul >= p->capacity_ul)) {
            p->motion = 0;
            p->stalled = true;
        }
    } else if (is_cmd(word, "stop") || strcasecmp(word, "stp") == 0) {
        p->motion = 0;
        p->stalled = false;
    } else if (is_cmd(word, "irate") || is_cmd(word, "wrate")) {
        double *r = tolower((unsigned char)word[0]) == 'i' ? &p->irate : &p->wrate;
        if (*arg == '\0') {
            char n[32];
            show(*r, n, sizeof n);
            snprintf(text, len, "%s ul/min", n);
            return;
        }
        double v = rate_arg(arg);
        if (v < 0)
            snprintf(text, len, "Argument error: %s", arg);
        else if (v < HV_MIN_RATE || v > HV_MAX_RATE)
            snprintf(text, len, "Out of range");
        else
            *r = v;
    } else if (is_cmd(word, "crate")) {
        char n[32];
        show(p->motion > 0 ? p->irate : p->motion < 0 ? p->wrate : 0.0, n, sizeof n);
        snprintf(text, len, "%s ul/min", n);
    } else if (is_cmd(word, "diameter")) {
        if (*arg == '\0') {
            char n[32];
            show(p->diameter_mm, n, sizeof n);
            snprintf(text, len, "%s mm", n);
            return;
        }
        char *end;
        double v = strtod(arg, &end);
        if (end == arg || *end != '\0')
            snprintf(text, len, "Argument error: %s", arg);
        else if (v < 0.1 || v > 50.0)
            snprintf(text, len, "Out of range");
        else if (p->motion != 0)
            snprintf(text, len, "Command error: pump is running");
        else
            p->diameter_mm = v;
    } else if (is_cmd(word, "ivolume") || is_cmd(word, "wvolume")) {
        char n[32];
        show(tolower((unsigned char)word[0]) == 'i' ? p->infused_ul : p->withdrawn_ul, n, sizeof n);
        snprintf(text, len, "%s ul", n);
    } else if (is_cmd(word, "civolume")) {
        p->infused_ul = 0;
    } else if (is_cmd(word, "cwvolume")) {
        p->withdrawn_ul = 0;
    } else if (is_cmd(word, "version") || strcasecmp(word, "ver") == 0) {
        snprintf(text, len, "ELITE I/W Single 3.0.7");
    } else {
        snprintf(text, len, "Unknown command");
    }
}

/* Split "[N:]word args" into the address, the word and its argument; -1 for a bad address. */
static int split(const char *cmd, char *word, size_t wlen, const char **arg)
{
    int addr = 0;
    const char *colon = strchr(cmd, ':');
    if (colon != NULL) {
        if (colon == cmd || colon - cmd > 2)
            return -1;
        for (const char *q = cmd; q < colon; q++) {
            if (!isdigit((unsigned char)*q))
                return -1;
            addr = addr * 10 + (*q - '0');
        }
        cmd = colon + 1;
    }
    while (*cmd == ' ')
        cmd++;
    size_t n = strcspn(cmd, " ");
    snprintf(word, wlen, "%.*s", (int)n, cmd);
    cmd += n;
    while (*cmd == ' ')
        cmd++;
    *arg = cmd;
    return addr;
}

/* Frame a reply: CR LF, the text line if any, the prompt. */
static size_t frame(const struct sim_hv_pump *p, int addr, const char *text, char *out, size_t len)
{
    char pr[8];
    prompt(p, addr, pr, sizeof pr);
    int n = text[0] ? snprintf(out, len, "\r\n%s\r\n%s", text, pr)
                    : snprintf(out, len, "\r\n%s", pr);
    return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

/* Answer one command line. */
static size_t hv_handle(void *state, int64_t now_ns, const char *cmd, char *out, size_t len)
{
    struct sim_harvard *h = state;
    advance(h, now_ns);
    char word[32];
    const char *arg;
    int addr = split(cmd, word, sizeof word, &arg);
    if (addr < 0 || addr >= SIM_HARVARD_PUMPS)
        return 0;               /* nobody in the chain has that address */
    struct sim_hv_pump *p = &h->pump[addr];
    char text[96];
    if (word[0] == '\0')
        text[0] = '\0';         /* an empty line: the pump shows its prompt */
    else
        execute(p, word, arg, text, sizeof text);
    return frame(p, addr, text, out, len);
}

/* The pump's refusal of any command, without executing it. */
static size_t hv_refuse(void *state, const char *cmd, char *out, size_t len)
{
    struct sim_harvard *h = state;
    char word[32];
    const char *arg;
    int addr = split(cmd, word, sizeof word, &arg);
    if (addr < 0 || addr >= SIM_HARVARD_PUMPS)
        return 0;
    return frame(&h->pump[addr], addr, "Command error", out, len);
}

/* Empty every syringe: an infusing pump stalls at once. */
static void hv_empty(void *state, int64_t now_ns)
{
    struct sim_harvard *h = state;
    advance(h, now_ns);
    for (int i = 0; i < SIM_HARVARD_PUMPS; i++) {
        struct sim_hv_pump *p = &h->pump[i];
        p->contents_ul = 0;
        if (p->motion > 0) {
            p->motion = 0;
            p->stalled = true;
        }
    }
}

const struct sim_line_ops sim_harvard_line = {
    .name = "harvard",
    .bus_yaml = "  - {name: syringes, type: serial, port: %s, baud: 115200}\n",
    .baud = 115200, .data_bits = 8, .parity = 'N',
    .latency_ns = SIM_LATENCY_HARVARD_NS,
    .devices_yaml =
        "  - {name: hpump1, driver: harvard, bus: syringes, address: 0,\n"
        "     syringe: {diameter: 14.57 mm, volume: 10 mL}, max_flow: 1000 uL/min}\n"
        "  - {name: hpump2, driver: harvard, bus: syringes, address: 1,\n"
        "     syringe: {diameter: 4.78 mm, volume: 1 mL}, max_flow: 100 uL/min}\n",
    .state_size = sizeof(struct sim_harvard),
    .init = hv_init,
    .handle = hv_handle,
    .refuse = hv_refuse,
    .empty = hv_empty,
};
