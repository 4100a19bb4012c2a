/* The operator's name a run is started with: what a run can keep whole. */
#include "run_operator.h"
#include "utf8.h"

#include <stdio.h>
#include <string.h>

/* Whether name can be an operator's name; if not, why in err. */
bool run_operator_ok(const char *name, char *err, size_t len)
{
    size_t n = strlen(name);
    if (!utf8_valid(name, n)) {
        snprintf(err, len, "the operator name is not valid UTF-8 text (byte %zu); "
                 "give it in UTF-8", utf8_valid_prefix(name, n) + 1);
        return false;
    }
    if (n > RUN_OPERATOR_MAX) {
        snprintf(err, len, "the operator name is %zu bytes long; at most %d bytes fit (%d letters "
                 "of plain ASCII, fewer with accents or other scripts): shorten it", n,
                 RUN_OPERATOR_MAX, RUN_OPERATOR_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
            snprintf(err, len, "the operator name contains a control character (byte %zu); "
                     "give a plain name", i + 1);
            return false;
        }
    return true;
}
