/*
 * Modbus register codecs and the RTU CRC. libmodbus's modbus_get_float_* /
 * modbus_set_float_* are not used: Debian's libmodbus 3.1.6 gets some word
 * orders wrong. Floats go through memcpy between uint32_t and float, which
 * is the defined way to reinterpret the bits in C.
 */
#include "mbcodec.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

static const char *const type_names[] = {
    [MB_U16] = "u16", [MB_I16] = "i16", [MB_U32] = "u32",
    [MB_I32] = "i32", [MB_F32] = "f32", [MB_BOOL] = "bool",
};
static const char *const order_names[] = {
    [MB_ABCD] = "abcd", [MB_CDAB] = "cdab", [MB_BADC] = "badc", [MB_DCBA] = "dcba",
};
#define N_TYPES (sizeof type_names / sizeof type_names[0])
#define N_ORDERS (sizeof order_names / sizeof order_names[0])

/* Registers a type occupies. */
int mb_type_regs(enum mb_type t)
{
    return t == MB_U32 || t == MB_I32 || t == MB_F32 ? 2 : 1;
}

/* Parse a type name. */
int mb_type_parse(const char *s, enum mb_type *out)
{
    for (size_t i = 0; s != NULL && i < N_TYPES; i++)
        if (strcmp(s, type_names[i]) == 0) {
            *out = (enum mb_type)i;
            return 0;
        }
    return -EINVAL;
}

/* Parse a word order name. */
int mb_order_parse(const char *s, enum mb_order *out)
{
    for (size_t i = 0; s != NULL && i < N_ORDERS; i++)
        if (strcmp(s, order_names[i]) == 0) {
            *out = (enum mb_order)i;
            return 0;
        }
    return -EINVAL;
}

/* The name of a type. */
const char *mb_type_name(enum mb_type t)
{
    return (size_t)t < N_TYPES ? type_names[t] : "?";
}

/* The name of a word order. */
const char *mb_order_name(enum mb_order o)
{
    return (size_t)o < N_ORDERS ? order_names[o] : "?";
}

/* Swap the two bytes of a register. */
static uint16_t swap16(uint16_t v)
{
    return (uint16_t)((v << 8) | (v >> 8));
}

/* Two registers to the 32-bit value they carry in order o. */
static uint32_t join32(const uint16_t *r, enum mb_order o)
{
    uint16_t hi, lo;
    switch (o) {
    case MB_CDAB: hi = r[1]; lo = r[0]; break;
    case MB_BADC: hi = swap16(r[0]); lo = swap16(r[1]); break;
    case MB_DCBA: hi = swap16(r[1]); lo = swap16(r[0]); break;
    case MB_ABCD:
    default:      hi = r[0]; lo = r[1]; break;
    }
    return ((uint32_t)hi << 16) | lo;
}

/* A 32-bit value to two registers in order o. */
static void split32(uint32_t v, enum mb_order o, uint16_t *r)
{
    uint16_t hi = (uint16_t)(v >> 16), lo = (uint16_t)v;
    switch (o) {
    case MB_CDAB: r[0] = lo; r[1] = hi; break;
    case MB_BADC: r[0] = swap16(hi); r[1] = swap16(lo); break;
    case MB_DCBA: r[0] = swap16(lo); r[1] = swap16(hi); break;
    case MB_ABCD:
    default:      r[0] = hi; r[1] = lo; break;
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

/* Encode a float; values beyond the float range do not fit, NaN and infinities do. */
static int encode_f32(double v, enum mb_order o, uint16_t *regs)
{
    if (isfinite(v) && fabs(v) > FLT_MAX)
        return -ERANGE;
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    split32(u, o, regs);
    return 0;
}

/* Encode a value into registers. */
int mb_encode(double v, enum mb_type t, enum mb_order o, uint16_t *regs)
{
    double r = round(v);        /* NaN stays NaN and fails every range test below */
    switch (t) {
    case MB_BOOL:
        if (!(r == 0 || r == 1))
            return -ERANGE;
        regs[0] = (uint16_t)r;
        return 0;
    case MB_U16:
        if (!(r >= 0 && r <= UINT16_MAX))
            return -ERANGE;
        regs[0] = (uint16_t)r;
        return 0;
    case MB_I16:
        if (!(r >= INT16_MIN && r <= INT16_MAX))
            return -ERANGE;
        regs[0] = (uint16_t)(int16_t)r;
        return 0;
    case MB_U32:
        if (!(r >= 0 && r <= UINT32_MAX))
            return -ERANGE;
        split32((uint32_t)r, o, regs);
        return 0;
    case MB_I32:
        if (!(r >= INT32_MIN && r <= INT32_MAX))
            return -ERANGE;
        split32((uint32_t)(int32_t)r, o, regs);
        return 0;
    case MB_F32:
        return encode_f32(v, o, regs);
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
