/* SHA-256 of a buffer as lower-case hex, through nettle. */
#ifndef PERFUSE_SHA256_H
#define PERFUSE_SHA256_H

#include <stddef.h>

/* Write the 64 hex digits and a NUL to hex. */
void sha256_hex(const void *data, size_t len, char hex[65]);

#endif
