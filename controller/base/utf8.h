/*
 * UTF-8 text in fixed-size fields. Every string perfuse stores or sends is
 * UTF-8 (JSON replies, HDF5 strings typed H5T_CSET_UTF8, the journal), so a
 * string cut to fit a field must be cut between characters, never inside
 * one: a cut character makes the whole string invalid, and json_pack or a
 * reader then drops it. Input from outside (a client's operator name, a
 * protocol's step names) is checked with utf8_valid where it enters.
 *
 * Pure functions; any thread.
 */
#ifndef PERFUSE_UTF8_H
#define PERFUSE_UTF8_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Length of the longest prefix of s[0..len) that is valid UTF-8 (no
 * overlong forms, surrogates or code points above U+10FFFF): len itself
 * when all of it is valid, else the offset of the first bad byte. */
size_t utf8_valid_prefix(const char *s, size_t len);
/* Whether s[0..len) is valid UTF-8. */
bool utf8_valid(const char *s, size_t len);
/* The largest n <= max such that s[0..n) does not end inside a character
 * (s holds at least max bytes, or its NUL comes first). */
size_t utf8_cut(const char *s, size_t max);
/* Copy src into dst[cap] (cap > 0): at most cap - 1 bytes, ending on a
 * character boundary, NUL-terminated. Returns strlen(src), so a result
 * >= cap means src was cut (as snprintf does). */
size_t utf8_copy(char *dst, size_t cap, const char *src);
/* snprintf into dst[cap] (cap > 0), cut on a character boundary when the
 * text does not fit. Returns what vsnprintf returns. */
int utf8_format(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int utf8_vformat(char *dst, size_t cap, const char *fmt, va_list ap);
/* Replace each byte of s that is not part of valid UTF-8 with '?', in
 * place (text from a device, which may be anything). */
void utf8_scrub(char *s);
/* Line and column (1-based, in characters) of byte offset off in text. */
void utf8_line_col(const char *text, size_t off, int *line, int *col);

#endif
