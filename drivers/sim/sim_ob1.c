/*
 * The simulated OB1 MK4-style pressure controller, written from the framing
 * described in drivers/ob1.c (documented parts and assumptions alike) and
 * sharing no code with the driver.
 *
 * Commands end with LF. Answers: FIRMV? a version line; PINGA? the four
 * regulators' pressures, each followed by a sensor value and type (0 0: no
 * sensor), then the two triggers; PRESS!:CH:VALUE sets a regulator and is
 * echoed; anything else, or a value outside -1000 .. 2000 mbar, gets an ERR
 * line.
 */
#include "sim_ob1.h"
#include "sim_wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OB1_MIN_MBAR -1000.0
#define OB1_MAX_MBAR 2000.0

/* Power-on: every regulator at 0 mbar. */
static void ob1_init(void *state)
{
    struct sim_ob1 *o = state;
    memset(o, 0, sizeof *o);
}

/* Channel 0 drives the physics' chip 0. */
static void ob1_attach(void *state, struct sim_physics *phys)
{
    struct sim_ob1 *o = state;
    o->phys = phys;
}

/* Write a reply line. */
static size_t reply(char *out, size_t len, const char *text)
{
    int n = snprintf(out, len, "%s\n", text);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* The pressure a regulator measures now. */
static double measured(const struct sim_ob1 *o, int ch)
{
    if (ch == 0 && o->phys != NULL)
        return sim_read_psource(o->phys, 0);
    return o->press[ch];
}

/* PRESS!:CH:VALUE */
static size_t set_pressure(struct sim_ob1 *o, const char *cmd, const char *args, char *out,
                           size_t len)
{
    char *end;
    if (args[0] != ':')
        return reply(out, len, "<PRESS!:ERR:ARGS");
    long ch = strtol(args + 1, &end, 10);
    if (end == args + 1 || *end != ':' || ch < 0 || ch >= SIM_OB1_CHANNELS)
        return reply(out, len, "<PRESS!:ERR:CHANNEL");
    const char *v = end + 1;
    double p = strtod(v, &end);
    if (end == v || (*end != '\0' && strcmp(end, ":") != 0) || !isfinite(p) || p < OB1_MIN_MBAR ||
        p > OB1_MAX_MBAR)
        return reply(out, len, "<PRESS!:ERR:VALUE");
    o->press[ch] = p;
    o->presses++;
    if (ch == 0 && o->phys != NULL)
        o->phys->pplant[0].p_cmd = p;
    return reply(out, len, cmd);
}

/* Answer one command. */
static size_t ob1_handle(void *state, int64_t now_ns, const char *cmd, char *out, size_t len)
{
    (void)now_ns;
    struct sim_ob1 *o = state;
    if (strcmp(cmd, "<FIRMV?") == 0)
        return reply(out, len, "<FIRMV?:SIM-OB1-MK4:1.0");
    if (strcmp(cmd, "<PINGA?") == 0) {
        char buf[200];
        int n = snprintf(buf, sizeof buf, "<PINGA?");
        for (int i = 0; i < SIM_OB1_CHANNELS; i++)
            n += snprintf(buf + n, sizeof buf - (size_t)n, ":%.2f:0:0", measured(o, i));
        snprintf(buf + n, sizeof buf - (size_t)n, ":0:0");
        return reply(out, len, buf);
    }
    if (strncmp(cmd, "<PRESS!", 7) == 0)
        return set_pressure(o, cmd, cmd + 7, out, len);
    if (strcmp(cmd, "<TRIGI?") == 0 || strcmp(cmd, "<TRIGO?") == 0) {
        char buf[32];
        snprintf(buf, sizeof buf, "%s:0", cmd);
        return reply(out, len, buf);
    }
    return reply(out, len, "<ERR:UNKNOWN");
}

/* The 'exception' fault: the controller says it cannot. */
static size_t ob1_refuse(void *state, const char *cmd, char *out, size_t len)
{
    (void)state;
    (void)cmd;
    return reply(out, len, "<ERR:BUSY");
}

const struct sim_line_ops sim_ob1_line = {
    .name = "ob1",
    .bus_yaml = "  - {name: ob1line, type: serial, port: %s, baud: 115200}\n",
    .baud = 115200, .data_bits = 8, .parity = 'N',   /* drivers/ob1.c: 115200 8N1 */
    .latency_ns = SIM_LATENCY_OB1_NS,
    .devices_yaml = "  - {name: ob1, driver: ob1, bus: ob1line, channels: 4}\n",
    .state_size = sizeof(struct sim_ob1),
    .init = ob1_init,
    .handle = ob1_handle,
    .refuse = ob1_refuse,
    .attach = ob1_attach,
    .eol = '\n',
    .in_rig = true,
};
