/*
 * The simulated Hamilton MVP valves: commands in, replies out, as the real
 * valves' protocol 1 does. Each answered command line is repeated, then ACK
 * (0x06) and any data, or NAK (0x15), each ended by CR. Valve a has 6 ports,
 * valve b 8. After power-up a valve is not initialised: it refuses moves
 * (NAK) and E2 says so until LXR has run; LXR takes 0.5 s and ends at port 1.
 * A move takes 40 ms plus 60 ms per port passed in the direction asked for;
 * meanwhile F answers '*' and LQP still the port it left.
 *
 * Written apart from drivers/hamilton.c on purpose: the simulator is an
 * independent implementation of the device, so a bug in the driver's framing
 * cannot hide behind the same bug here.
 */
#include "sim_hamilton.h"
#include "sim_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Put both valves in their power-on state: not initialised, rotor at port 1. */
static void hm_init(void *state)
{
    struct sim_hamilton *h = state;
    memset(h, 0, sizeof *h);
    static const int ports[SIM_HM_VALVES] = { 6, 8 };
    for (int i = 0; i < SIM_HM_VALVES; i++) {
        h->valve[i].ports = ports[i];
        h->valve[i].port = 1;
    }
}

/* Finish a move whose time is up. */
static void settle(struct sim_valve *v, int64_t now_ns)
{
    if (!v->moving || now_ns < v->end_ns)
        return;
    v->moving = false;
    v->port = v->target;
    if (v->homing)
        v->initialised = true;
    v->homing = false;
}

/* The valve type code LQT reports for a number of ports. */
static int type_code(int ports)
{
    switch (ports) {
    case 8: return 2;
    case 6: return 3;
    case 3: return 4;
    case 4: return 7;
    default: return 5;
    }
}

/* Start a move: "LP" direction digit, port digits, "R". Returns false to refuse it. */
static bool start_move(struct sim_valve *v, const char *arg, int64_t now_ns)
{
    if ((arg[0] != '0' && arg[0] != '1') || !v->initialised || v->moving)
        return false;
    int port = 0, digits = 0;
    const char *p = arg + 1;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        port = port * 10 + (*p - '0');
    if (digits < 1 || digits > 2 || strcmp(p, "R") != 0 || port < 1 || port > v->ports)
        return false;
    int steps = arg[0] == '0' ? (port - v->port + v->ports) % v->ports
                              : (v->port - port + v->ports) % v->ports;
    v->moving = true;
    v->homing = false;
    v->target = port;
    v->end_ns = now_ns + SIM_HM_MOVE_BASE_NS + steps * SIM_HM_MOVE_STEP_NS;
    return true;
}

/* Execute one command for one valve. Returns true for ACK with data in data. */
static bool execute(struct sim_valve *v, const char *c, int64_t now_ns, char *data, size_t len)
{
    data[0] = '\0';
    if (strcmp(c, "F") == 0) {
        snprintf(data, len, "%c", v->moving ? '*' : 'Y');
        return true;
    }
    if (strcmp(c, "LQP") == 0) {
        snprintf(data, len, "%d", v->port);
        return true;
    }
    if (strcmp(c, "LQT") == 0) {
        snprintf(data, len, "%d", type_code(v->ports));
        return true;
    }
    if (strcmp(c, "E2") == 0) {
        snprintf(data, len, "P%cPP", 0x40 | (v->initialised ? 0 : 1));
        return true;
    }
    if (strcmp(c, "LXR") == 0) {
        if (v->moving)
            return false;
        v->moving = true;
        v->homing = true;
        v->target = 1;
        v->end_ns = now_ns + SIM_HM_INIT_NS;
        return true;
    }
    if (strncmp(c, "LP", 2) == 0)
        return start_move(v, c + 2, now_ns);
    return false;
}

/* The valve a command line is for, or NULL (nobody at that address). */
static struct sim_valve *addressed(struct sim_hamilton *h, const char *cmd)
{
    int i = cmd[0] - 'a';
    return i >= 0 && i < SIM_HM_VALVES ? &h->valve[i] : NULL;
}

/* Answer one command line. */
static size_t hm_handle(void *state, int64_t now_ns, const char *cmd, char *out, size_t len)
{
    struct sim_hamilton *h = state;
    struct sim_valve *v = addressed(h, cmd);
    if (v == NULL)
        return 0;
    settle(v, now_ns);
    char data[16];
    bool ack = execute(v, cmd + 1, now_ns, data, sizeof data);
    int n = ack ? snprintf(out, len, "%s\r\x06%s\r", cmd, data) : snprintf(out, len, "%s\r\x15\r", cmd);
    return n < 0 ? 0 : (size_t)n;
}

/* The valve's own refusal: the line repeated, then NAK. */
static size_t hm_refuse(void *state, const char *cmd, char *out, size_t len)
{
    if (addressed(state, cmd) == NULL)
        return 0;
    int n = snprintf(out, len, "%s\r\x15\r", cmd);
    return n < 0 ? 0 : (size_t)n;
}

const struct sim_line_ops sim_hamilton_line = {
    .name = "hamilton",
    .bus_yaml = "  - {name: valves, type: serial, port: %s, baud: 9600, parity: O, data_bits: 7}\n",
    .baud = 9600, .data_bits = 7, .parity = 'O',     /* the MVP manual: 9600 7O1 */
    .latency_ns = SIM_LATENCY_HAMILTON_NS,
    .devices_yaml = "  - {name: selector1, driver: hamilton, bus: valves, address: a, ports: 6}\n"
                    "  - {name: selector2, driver: hamilton, bus: valves, address: b, ports: 8}\n",
    .state_size = sizeof(struct sim_hamilton),
    .init = hm_init,
    .handle = hm_handle,
    .refuse = hm_refuse,
};
