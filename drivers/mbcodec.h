/*
 * Modbus register codecs: 16/32-bit integers and floats in all four word
 * orders, and the RTU CRC. Pure functions, no state, any thread.
 */
#ifndef PERFUSE_MBCODEC_H
#define PERFUSE_MBCODEC_H

#include <stddef.h>
#include <stdint.h>

enum mb_type { MB_U16, MB_I16, MB_U32, MB_I32, MB_F32, MB_BOOL };

/*
 * Where the bytes A (most significant) .. D of a 32-bit value go. Registers
 * are given as libmodbus hands them over: each uint16_t holds the two bytes
 * of one register in wire order, first byte in the high half.
 *   abcd: {AB, CD}  high word first, big-endian bytes (the Modbus norm)
 *   cdab: {CD, AB}  low word first
 *   badc: {BA, DC}  bytes swapped within each word, high word first
 *   dcba: {DC, BA}  low word first, bytes swapped (fully little-endian)
 */
enum mb_order { MB_ABCD, MB_CDAB, MB_BADC, MB_DCBA };

/* Registers a type occupies (1 or 2; bool is one bit, counted as 1). */
int mb_type_regs(enum mb_type t);
/* Parse "u16", "i16", "u32", "i32", "f32", "bool". Returns 0 or -EINVAL. */
int mb_type_parse(const char *s, enum mb_type *out);
/* Parse "abcd", "cdab", "badc", "dcba". Returns 0 or -EINVAL. */
int mb_order_parse(const char *s, enum mb_order *out);
/* The name of a type / order, as profiles write it. */
const char *mb_type_name(enum mb_type t);
const char *mb_order_name(enum mb_order o);

/* Decode the registers of a value (1 or 2 of them, per mb_type_regs) into a
 * double. Exact for every type (a double holds any 32-bit integer). A NaN
 * float decodes to NaN. */
double mb_decode(const uint16_t *regs, enum mb_type t, enum mb_order o);
/* Encode v into registers. Integers are rounded half away from zero; bool
 * takes 0 or 1. Returns 0, or -ERANGE if the rounded value does not fit the
 * type (NaN fits only f32), or -EINVAL for an unknown type. */
int mb_encode(double v, enum mb_type t, enum mb_order o, uint16_t *regs);

/* Modbus RTU CRC-16 (poly 0xA001 reflected, init 0xFFFF). The frame carries
 * it low byte first; a frame with its CRC appended has CRC 0. */
uint16_t mb_crc16(const uint8_t *buf, size_t len);

#endif
