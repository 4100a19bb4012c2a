/* Modbus register codecs and the RTU CRC. libmodbus 3.1.6's float helpers are
 * not used: Debian's build gets some word orders wrong. */
#include "mbcodec.h"

#include <errno.h>
#include <math.h>
#include <string.h>

int mb_type_regs(enum mb_type t)
{
    return t == MB_U32 || t == MB_I32 || t == MB_F32 ? 2 : 1;
}

/* Parse a type name. */
int mb_type_parse(const char *s, enum mb_type *out)
{
    static const char *const names[] = { "u16", "i16", "u32", "i32", "f32", "bool" };
    for (int i = 0; i < 6; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum mb_type)i;
            return 0;
        }
    return -EINVAL;
}

/* Parse a word order name. */
int mb_order_parse(const char *s, enum mb_order *out)
{
    static const char *const names[] = { "abcd", "cdab", "badc", "dcba" };
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum mb_order)i;
            return 0;
        }
    return -EINVAL;
}

static uint16_t swap16(uint16_t v)
{
    return (uint16_t)((v << 8) | (v >> 8));
}

/* Two registers to the 32-bit value they carry in order o. */
static uint32_t join32(const uint16_t *r, enum mb_order o)
{
    uint16_t hi, lo;
    switch (o) {
    case MB_ABCD: hi = r[0]; lo = r[1]; break;
    case MB_CDAB: hi = r[1]; lo = r[0]; break;
    case MB_BADC: hi = swap16(r[0]); lo = swap16(r[1]); break;
    default:      hi = swap16(r[1]); lo = swap16(r[0]); break;
    }
    return ((uint32_t)hi << 16) | lo;
}

/* A 32-bit value to two registers in order o. */
static void split32(uint32_t v, enum mb_order o, uint16_t *r)
{
    uint16_t hi = (uint16_t)(v >> 16), lo = (uint16_t)v;
    switch (o) {
    case MB_ABCD: r[0] = hi; r[1] = lo; break;
    case MB_CDAB: r[0] = lo; r[1] = hi; break;
    case MB_BADC: r[0] = swap16(hi); r[1] = swap16(lo); break;
    default:      r[0] = swap16(lo); r[1] = swap16(hi); break;
    }
}

/* Decode registers into a double. */
double mb_decode(const uint16_t *regs, enum mb_type t, enum mb_order o)
{
    uint32_t u;
    float f;
    switch (t) {
    case MB_U16: return regs[0];
    case MB_I16: return (int16_t)regs[0];
    case MB_BOOL: return regs[0] ? 1.0 : 0.0;
    case MB_U32: return join32(regs, o);
    case MB_I32: return (int32_t)join32(regs, o);
    case MB_F32:
        u = join32(regs, o);
        memcpy(&f, &u, sizeof f);
        return f;
    }
    return NAN;
}

/* Encode a value into registers. */
int mb_encode(double v, enum mb_type t, enum mb_order o, uint16_t *regs)
{
    double r = nearbyint(v);
    float f;
    uint32_t u;
    switch (t) {
    case MB_U16:
    case MB_BOOL:
        if (!(r >= 0 && r <= 65535))
            return -ERANGE;
        regs[0] = (uint16_t)r;
        return 0;
    case MB_I16:
        if (!(r >= -32768 && r <= 32767))
            return -ERANGE;
        regs[0] = (uint16_t)(int16_t)r;
        return 0;
    case MB_U32:
        if (!(r >= 0 && r <= 4294967295.0))
            return -ERANGE;
        split32((uint32_t)r, o, regs);
        return 0;
    case MB_I32:
        if (!(r >= -2147483648.0 && r <= 2147483647.0))
            return -ERANGE;
        split32((uint32_t)(int32_t)r, o, regs);
        return 0;
    case MB_F32:
        if (isfinite(v) && fabs(v) > 3.4028234e38)
            return -ERANGE;
        f = (float)v;
        memcpy(&u, &f, sizeof u);
        split32(u, o, regs);
        return 0;
    }
    return -EINVAL;
}

/* Modbus RTU CRC-16. */
uint16_t mb_crc16(const uint8_t *buf, size_t len)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc ^= buf[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}
