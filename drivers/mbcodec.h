/* Modbus register codecs: 16/32-bit integers and floats in all four word orders, and the RTU CRC. */
#ifndef PERFUSE_MBCODEC_H
#define PERFUSE_MBCODEC_H

#include <stddef.h>
#include <stdint.h>

enum mb_type { MB_U16, MB_I16, MB_U32, MB_I32, MB_F32, MB_BOOL };
/* abcd: high word first, big-endian bytes (the Modbus norm); cdab: low word first;
 * badc: bytes swapped in each word, high word first; dcba: fully little-endian. */
enum mb_order { MB_ABCD, MB_CDAB, MB_BADC, MB_DCBA };

/* Registers a type occupies (1 or 2). */
int mb_type_regs(enum mb_type t);
/* Parse "u16", "f32", ... / "abcd", ... Returns 0 or -EINVAL. */
int mb_type_parse(const char *s, enum mb_type *out);
int mb_order_parse(const char *s, enum mb_order *out);

/* Decode registers into a double. */
double mb_decode(const uint16_t *regs, enum mb_type t, enum mb_order o);
/* Encode a value into registers; integers are rounded. Returns 0 or -ERANGE. */
int mb_encode(double v, enum mb_type t, enum mb_order o, uint16_t *regs);

/* Modbus RTU CRC-16 (poly 0xA001, init 0xFFFF); sent low byte first. */
uint16_t mb_crc16(const uint8_t *buf, size_t len);

#endif
