/* SHA-256 of a buffer as lower-case hex, through nettle. */
#include "sha256.h"

#include <stdio.h>

#include <nettle/sha2.h>

/* Write the 64 hex digits of SHA-256(data) and a NUL to hex. */
void sha256_hex(const void *data, size_t len, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, sizeof digest, digest);
    for (size_t i = 0; i < sizeof digest; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}
