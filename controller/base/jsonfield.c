/* Strict reads of JSON members (see jsonfield.h). */
#include "jsonfield.h"

#include <string.h>

/* Copy a string member into a fixed buffer; false if missing, not a string or too long. */
bool jfield_str(json_t *o, const char *key, char *buf, size_t len)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL || strlen(s) >= len)
        return false;
    memcpy(buf, s, strlen(s) + 1);
    return true;
}
