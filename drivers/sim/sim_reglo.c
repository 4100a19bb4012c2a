/*
 * The simulated Ismatec Reglo ICC peristaltic pump: one pump at address 1
 * with four channels, written from the manual's command list and sharing no
 * code with the driver.
 *
 * At power-on the pump is in legacy addressing: the address character is the
 * pump's (1), and channel commands act on the whole head. "~1" switches
 * channel addressing on; then addresses 1-4 are the channels and 0 the pump
 * as a whole. Other addresses get no answer.
 *
 * Model: each channel has a flow-rate setting, a rotation and a maximum
 * given by its tubing. While it runs, the volume it moves grows at its rate
 * (negative counter-clockwise), brought up to date at every command.
 */
#include "sim_reglo.h"
#include "sim_wire.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tubing of each channel allows this much, mL/min. */
static const double tubing_max[SIM_REGLO_CHANNELS] = { 2.0, 2.0, 3.5, 0.8 };

/* Power-on state: legacy addressing, stopped, clockwise, RPM mode, no rate. */
static void reglo_init(void *state)
{
    struct sim_reglo *p = state;
    memset(p, 0, sizeof *p);
    for (int i = 0; i < SIM_REGLO_CHANNELS; i++) {
        p->ch[i].rotation = 'J';
        p->ch[i].mode = 'L';
        p->ch[i].max_ml_min = tubing_max[i];
    }
}

/* Add the volume each running channel moved since the last command. */
static void advance(struct sim_reglo *p, int64_t now_ns)
{
    if (now_ns <= p->last_ns)
        return;
    double min = (double)(now_ns - p->last_ns) / 60e9;
    for (int i = 0; i < SIM_REGLO_CHANNELS; i++) {
        struct sim_reglo_channel *c = &p->ch[i];
        if (c->running)
            c->pumped_ml += (c->rotation == 'J' ? 1 : -1) * c->rate_ml_min * min;
    }
    p->last_ns = now_ns;
}

/* Write "m.mmm x 10^e" as the pump sends numbers: 4 digits, 'E', sign, digit. */
static size_t put_vol1(double v, char *out, size_t len)
{
    int e = 0;
    long m = 0;
    if (v > 0) {
        e = (int)floor(log10(v));
        m = lround(v * pow(10.0, 3 - e));
        if (m > 9999) {
            m /= 10;
            e++;
        }
    }
    int n = snprintf(out, len, "%04ldE%c%d\r\n", m, e < 0 ? '-' : '+', e < 0 ? -e : e);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* Read a "volume type 2" argument: exactly 4 digits, a sign, one digit. */
static bool get_vol2(const char *s, double *v)
{
    if (strlen(s) != 6)
        return false;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    if ((s[4] != '+' && s[4] != '-') || !isdigit((unsigned char)s[5]))
        return false;
    int e = (s[5] - '0') * (s[4] == '-' ? -1 : 1);
    *v = atoi((char[5]){ s[0], s[1], s[2], s[3], 0 }) * pow(10.0, e - 3);
    return true;
}

/* Copy a one-character status reply. */
static size_t status(char c, char *out, size_t len)
{
    if (len < 1)
        return 0;
    out[0] = c;
    return 1;
}

/* Copy a line of text and CR LF. */
static size_t line(const char *text, char *out, size_t len)
{
    int n = snprintf(out, len, "%s\r\n", text);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* Apply a channel command to channel c. */
static size_t channel_command(struct sim_reglo_channel *c, const char *cmd, char *out, size_t len)
{
    char buf[32];
    double v;
    if (strcmp(cmd, "H") == 0) {
        if (c->mode == 'M' && (c->rate_ml_min <= 0 || c->rate_ml_min > c->max_ml_min))
            return status('-', out, len);
        c->running = true;
        return status('*', out, len);
    }
    if (strcmp(cmd, "I") == 0) {
        c->running = false;
        return status('*', out, len);
    }
    if (strcmp(cmd, "J") == 0 || strcmp(cmd, "K") == 0) {
        c->rotation = cmd[0];
        return status('*', out, len);
    }
    if (strcmp(cmd, "E") == 0)
        return status(c->running ? '+' : '-', out, len);
    if (strcmp(cmd, "xD") == 0)
        return line(c->rotation == 'J' ? "J" : "K", out, len);
    if (strlen(cmd) == 1 && strchr("LMOGQNP", cmd[0]) != NULL) {
        c->mode = cmd[0];
        return status('*', out, len);
    }
    if (strcmp(cmd, "xM") == 0) {
        snprintf(buf, sizeof buf, "%c", c->mode);
        return line(buf, out, len);
    }
    if (strcmp(cmd, "?") == 0) {
        snprintf(buf, sizeof buf, "%.3f ml/min", c->max_ml_min);
        return line(buf, out, len);
    }
    if (strcmp(cmd, "f") == 0)
        return put_vol1(c->rate_ml_min, out, len);
    if (cmd[0] == 'f') {
        if (!get_vol2(cmd + 1, &v) || v > c->max_ml_min)
            return status('#', out, len);
        c->rate_ml_min = v;
        return put_vol1(v, out, len);
    }
    return status('#', out, len);
}

/* Answer one command at model time now_ns. */
static size_t reglo_handle(void *state, int64_t now_ns, const char *cmd, char *out, size_t len)
{
    struct sim_reglo *p = state;
    advance(p, now_ns);
    if (!isdigit((unsigned char)cmd[0]))
        return 0;                       /* no address: nobody answers */
    int addr = cmd[0] - '0';
    const char *c = cmd + 1;
    /* Pump-wide: channel addressing on or off, asked at any address the pump has. */
    bool ours = p->channel_addressing ? addr <= SIM_REGLO_CHANNELS : addr == SIM_REGLO_ADDRESS;
    if (!ours)
        return 0;
    if (strcmp(c, "~1") == 0 || strcmp(c, "~0") == 0) {
        p->channel_addressing = c[1] == '1';
        return status('*', out, len);
    }
    if (strcmp(c, "~") == 0)
        return line(p->channel_addressing ? "1" : "0", out, len);
    if (p->channel_addressing) {
        if (addr == 0)
            return status('#', out, len);   /* a channel command needs a channel */
        return channel_command(&p->ch[addr - 1], c, out, len);
    }
    /* Legacy: the command goes to every channel; queries answer for channel 1. */
    size_t n = 0;
    for (int i = SIM_REGLO_CHANNELS - 1; i >= 0; i--)
        n = channel_command(&p->ch[i], c, out, len);
    return n;
}

/* The pump's refusal: '#', not executed. */
static size_t reglo_refuse(void *state, const char *cmd, char *out, size_t len)
{
    (void)state;
    (void)cmd;
    return status('#', out, len);
}

const struct sim_line_ops sim_reglo_line = {
    .name = "reglo",
    .bus_yaml = "  - {name: reglo, type: serial, port: %s, baud: 9600}\n",
    .baud = 9600, .data_bits = 8, .parity = 'N',     /* the Reglo ICC manual: 9600 8N1 */
    .latency_ns = SIM_LATENCY_REGLO_NS,
    .devices_yaml =
        "  - {name: perist1, driver: reglo, bus: reglo, address: 1, channel: 1, max_flow: 1.5 mL/min}\n"
        "  - {name: perist2, driver: reglo, bus: reglo, address: 1, channel: 2, max_flow: 1.5 mL/min,\n"
        "     direction: ccw}\n",
    .state_size = sizeof(struct sim_reglo),
    .init = reglo_init,
    .handle = reglo_handle,
    .refuse = reglo_refuse,
};
