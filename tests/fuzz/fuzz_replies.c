/*
 * libFuzzer target for the serial drivers' reply parsers (New Era, Hamilton,
 * Reglo ICC, Harvard): any bytes as what
 * came down the line. The first byte picks the parser. Each must never crash
 * or read out of bounds, must say "incomplete", "garbled" or "this many bytes
 * make one reply" and nothing else, and a reply it accepts must be one a
 * driver can use (in-range address, terminated text).
 *
 *   make fuzz                      (FUZZ_SECONDS=N to choose how long)
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/hamilton.h"
#include "drivers/harvard.h"
#include "drivers/newera.h"
#include "drivers/reglo.h"

/* Abort unless rc is a valid parse result for len bytes. */
static void check_rc(int rc, size_t len)
{
    if (rc != 0 && rc != -EBADMSG && (rc < 0 || (size_t)rc > len))
        abort();
}

/* Abort unless s is a NUL-terminated string within n bytes. */
static void check_text(const char *s, size_t n)
{
    if (memchr(s, '\0', n) == NULL)
        abort();
}

/* New Era: a Basic reply, a Safe-mode packet, and the data parsers on its text. */
static void fuzz_newera(const char *buf, size_t len, int safe)
{
    struct newera_reply r;
    int rc = safe ? newera_parse_safe_reply(buf, len, &r) : newera_parse_reply(buf, len, &r);
    check_rc(rc, len);
    if (rc <= 0)
        return;
    check_text(r.data, sizeof r.data);
    if (r.address < 0 || r.address > 99 || strchr("IWSPTUXA", r.status) == NULL || r.status == '\0')
        abort();
    double a, b;
    (void)newera_parse_rate(r.data, &a);
    (void)newera_parse_dispensed(r.data, &a, &b);
}

/* Hamilton: an exchange, and the data parsers on its text. */
static void fuzz_hamilton(const char *buf, size_t len)
{
    struct hamilton_reply r;
    int rc = hamilton_parse_reply(buf, len, &r);
    check_rc(rc, len);
    if (rc <= 0)
        return;
    check_text(r.data, sizeof r.data);
    check_text(r.echo, sizeof r.echo);
    if (r.address != 0 && (r.address < 'a' || r.address > 'z'))
        abort();
    char st;
    int port;
    unsigned bits;
    if (hamilton_parse_done(r.data, &st) == 0 && (st == '\0' || strchr("Y*N", st) == NULL))
        abort();
    if (hamilton_parse_position(r.data, &port) == 0 && port < 1)
        abort();
    if (hamilton_parse_valve_errors(r.data, &bits) == 0 && (bits & ~7u) != 0)
        abort();
}

/* Reglo ICC: a status or a data reply, and the number parser on its text. */
static void fuzz_reglo(const char *buf, size_t len, enum reglo_expect expect)
{
    struct reglo_reply r;
    int rc = reglo_parse_reply(buf, len, expect, &r);
    check_rc(rc, len);
    if (rc <= 0)
        return;
    check_text(r.data, sizeof r.data);
    if (r.status != 0 && strchr("*#+-", r.status) == NULL)
        abort();
    double v;
    if (reglo_parse_number(r.data, &v) == 0 && v != v)
        abort();
}

/* Harvard: text lines and a prompt, and the number parsers on each line. */
static void fuzz_harvard(const char *buf, size_t len)
{
    struct harvard_reply r;
    int rc = harvard_parse_reply(buf, len, &r);
    check_rc(rc, len);
    if (rc <= 0)
        return;
    if (r.address < 0 || r.address > 99 || r.n_lines < 0 || r.n_lines > HARVARD_MAX_LINES ||
        r.prompt == '\0' || strchr(":<>*T", r.prompt) == NULL)
        abort();
    char err[160];
    (void)harvard_reply_error(&r, "fuzz", "cmd", err, sizeof err);
    for (int i = 0; i < r.n_lines; i++) {
        check_text(r.line[i], sizeof r.line[i]);
        double v;
        (void)harvard_parse_rate(r.line[i], &v);
        (void)harvard_parse_volume(r.line[i], &v);
        (void)harvard_parse_diameter(r.line[i], &v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* The rest is copied so that reading past it is caught by ASan. */
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, len);
    switch (data[0] % 6) {
    case 0: fuzz_newera(buf, len, 0); break;
    case 1: fuzz_newera(buf, len, 1); break;
    case 2: fuzz_hamilton(buf, len); break;
    case 3: fuzz_reglo(buf, len, REGLO_STATUS); break;
    case 4: fuzz_reglo(buf, len, REGLO_DATA); break;
    case 5: fuzz_harvard(buf, len); break;
    }
    free(buf);
    return 0;
}
