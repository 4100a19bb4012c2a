/* UTF-8 text in fixed-size fields: validation and cuts on character boundaries. */
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Length of the character starting at s (at most len bytes), or 0 if the
 * bytes there are not a valid, complete UTF-8 character. */
static size_t char_len(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2; cp = c & 0x1f; min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3; cp = c & 0x0f; min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4; cp = c & 0x07; min = 0x10000;
    } else {
        return 0;       /* a continuation byte, or 0xc0, 0xc1, 0xf5..0xff */
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

size_t utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = char_len(u + i, len - i);
        if (n == 0)
            return i;
        i += n;
    }
    return i;
}

bool utf8_valid(const char *s, size_t len)
{
    return utf8_valid_prefix(s, len) == len;
}

size_t utf8_cut(const char *s, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strnlen(s, max);
    if (len < max)
        return len;             /* the whole string fits */
    /* Back up over the continuation bytes before the cut to the byte that
     * starts their character; keep it only if it ends before the cut. */
    size_t i = max;
    while (i > 0 && max - i < 4 && (u[i - 1] & 0xc0) == 0x80)
        i--;
    if (i == 0)
        return 0;
    unsigned lead = u[i - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    return max - (i - 1) >= need ? max : i - 1;
}

size_t utf8_copy(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(src);
    size_t n = len < cap ? len : utf8_cut(src, cap - 1);
    memmove(dst, src, n);
    dst[n] = '\0';
    return len;
}

int utf8_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(dst, cap, fmt, ap);
    if (n >= 0 && (size_t)n >= cap)
        dst[utf8_cut(dst, cap - 1)] = '\0';
    return n;
}

int utf8_format(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = utf8_vformat(dst, cap, fmt, ap);
    va_end(ap);
    return n;
}

void utf8_line_col(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i] != '\0'; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            ++*col;
        }
    }
}

/* Replace each byte of s that is not part of valid UTF-8 with '?'. */
void utf8_scrub(char *s)
{
    size_t len = strlen(s), i = 0;
    while (i < len) {
        i += utf8_valid_prefix(s + i, len - i);
        if (i < len)
            s[i++] = '?';
    }
}
