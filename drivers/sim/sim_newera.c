/*
 * The simulated New Era NE-1000 pumps: commands in, replies out, as the real
 * pump's RS-232 basic mode does (STX, 2-digit address, status prompt or
 * alarm, data, ETX). The pump state lives in the physics model.
 *
 * Number formatting and parsing are written here again rather than shared
 * with drivers/newera.c on purpose: the simulator is an independent
 * implementation of the device, so a bug in the driver's framing cannot hide
 * behind the same bug in the simulator.
 */
#include "sim_newera.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RATE_UL_MIN 7000.0

/* The status prompt of a pump. */
static char prompt(const struct sim_pump *pu)
{
    if (!pu->running)
        return 'S';
    return pu->direction > 0 ? 'I' : 'W';
}

/* Write a reply frame. */
static size_t reply(char *out, size_t len, int addr, const char *status, const char *data)
{
    int n = snprintf(out, len, "\x02%02d%s%s\x03", addr, status, data ? data : "");
    return n < 0 ? 0 : (size_t)n;
}

/* Parse a pump float: at most 4 digits and one point, at most 3 decimals. */
static int parse_float(const char *s, double *out, const char **end)
{
    int digits = 0, decimals = 0, points = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p) || *p == '.'; p++) {
        if (*p == '.') {
            points++;
        } else {
            digits++;
            decimals += points;
        }
    }
    if (p == s || digits == 0 || digits > 4 || points > 1 || decimals > 3)
        return -1;
    *out = strtod(s, NULL);
    *end = p;
    return 0;
}

/* Format like the pump: 4 significant digits at most. */
static void fmt4(double v, char *buf, size_t len)
{
    for (int dec = 3; dec >= 0; dec--) {
        snprintf(buf, len, "%.*f", dec, v);
        int digits = 0;
        for (const char *p = buf; *p; p++)
            digits += isdigit((unsigned char)*p) != 0;
        if (digits <= 4)
            return;
    }
}

/* RAT: set or query the rate. */
static const char *cmd_rate(struct sim_pump *pu, const char *arg, char *data, size_t len)
{
    static const struct { const char *u; double f; } units[] = {
        { "UM", 1.0 }, { "MM", 1000.0 }, { "UH", 1.0 / 60.0 }, { "MH", 1000.0 / 60.0 },
    };
    if (*arg == '\0') {
        double f = 1.0;
        for (size_t i = 0; i < 4; i++)
            if (strcmp(pu->rate_units, units[i].u) == 0)
                f = units[i].f;
        char num[16];
        fmt4(pu->rate / f, num, sizeof num);
        snprintf(data, len, "%s%s", num, pu->rate_units);
        return NULL;
    }
    double v;
    const char *end;
    if (parse_float(arg, &v, &end) < 0)
        return "?";
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(end, units[i].u) != 0)
            continue;
        if (v * units[i].f > MAX_RATE_UL_MIN)
            return "?OOR";
        pu->rate = v * units[i].f;
        memcpy(pu->rate_units, units[i].u, 3);
        if (pu->rate == 0)
            pu->running = false;
        return NULL;
    }
    return "?";
}

/* Execute one command for one pump; returns an error string or NULL, data in data. */
static const char *execute(struct sim_pump *pu, const char *cmd, char *data, size_t len)
{
    data[0] = '\0';
    if (strncmp(cmd, "DIA", 3) == 0) {
        if (cmd[3] == '\0') {
            fmt4(pu->diameter_mm, data, len);
            return NULL;
        }
        double v;
        const char *end;
        if (parse_float(cmd + 3, &v, &end) < 0 || *end != '\0')
            return "?";
        if (v < 0.1 || v > 50.0)
            return "?OOR";
        if (pu->running)
            return "?NA";
        pu->diameter_mm = v;
        return NULL;
    }
    if (strncmp(cmd, "RAT", 3) == 0)
        return cmd_rate(pu, cmd + 3, data, len);
    if (strcmp(cmd, "DIR") == 0) {
        snprintf(data, len, "%s", pu->direction > 0 ? "INF" : "WDR");
        return NULL;
    }
    if (strcmp(cmd, "DIRINF") == 0 || strcmp(cmd, "DIRWDR") == 0 || strcmp(cmd, "DIRREV") == 0) {
        pu->direction = cmd[3] == 'I' ? 1 : cmd[3] == 'W' ? -1 : -pu->direction;
        return NULL;
    }
    if (strcmp(cmd, "RUN") == 0) {
        if (pu->rate <= 0)
            return "?NA";
        if (pu->direction > 0 && pu->remaining_ul <= 0) {
            pu->alarm = 'S';
            return NULL;
        }
        pu->running = true;
        return NULL;
    }
    if (strcmp(cmd, "STP") == 0) {
        pu->running = false;
        return NULL;
    }
    if (strcmp(cmd, "DIS") == 0) {
        bool ul = pu->diameter_mm <= 14.0;
        double f = ul ? 1.0 : 1000.0;
        char a[16], b[16];
        fmt4(pu->infused_ul / f, a, sizeof a);
        fmt4(pu->withdrawn_ul / f, b, sizeof b);
        snprintf(data, len, "I%sW%s%s", a, b, ul ? "UL" : "ML");
        return NULL;
    }
    if (strcmp(cmd, "CLDINF") == 0 || strcmp(cmd, "CLDWDR") == 0) {
        if (cmd[3] == 'I')
            pu->infused_ul = 0;
        else
            pu->withdrawn_ul = 0;
        return NULL;
    }
    if (strncmp(cmd, "SAF", 3) == 0) {
        char *end;
        long v = strtol(cmd + 3, &end, 10);
        if (cmd[3] == '\0') {
            snprintf(data, len, "%d", pu->safe_s);
            return NULL;
        }
        if (*end != '\0' || v < 0 || v > 255)
            return "?OOR";
        pu->safe_s = (int)v;
        pu->safe_armed = false;
        return NULL;
    }
    if (strcmp(cmd, "VER") == 0) {
        snprintf(data, len, "NE1000V3.928");
        return NULL;
    }
    return "?";
}

/* Answer one command line. */
size_t sim_newera_handle(struct sim_physics *p, const char *line, char *out, size_t len)
{
    char cmd[64];
    size_t n = 0;
    for (const char *s = line; *s && n + 1 < sizeof cmd; s++)
        if (isgraph((unsigned char)*s))
            cmd[n++] = (char)toupper((unsigned char)*s);
    cmd[n] = '\0';
    int addr = 0;
    const char *c = cmd;
    if (isdigit((unsigned char)c[0])) {
        addr = c[0] - '0';
        c++;
        if (isdigit((unsigned char)c[0])) {
            addr = addr * 10 + (c[0] - '0');
            c++;
        }
    }
    if (addr >= SIM_PUMPS)
        return 0;
    struct sim_pump *pu = &p->pump[addr];
    if (pu->alarm) {
        /* The real pump answers the command after an alarm with the alarm, not executing it. */
        char status[4] = { 'A', '?', pu->alarm, '\0' };
        pu->alarm = 0;
        return reply(out, len, addr, status, NULL);
    }
    char data[48];
    const char *err = execute(pu, c, data, sizeof data);
    char status[2] = { prompt(pu), '\0' };
    if (pu->alarm) {
        char st[4] = { 'A', '?', pu->alarm, '\0' };
        pu->alarm = 0;
        return reply(out, len, addr, st, NULL);
    }
    return reply(out, len, addr, status, err ? err : data);
}
