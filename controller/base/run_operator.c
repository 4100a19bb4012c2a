/* The operator's name a run is started with: what a run can keep whole. */
#include "run_operator.h"
#include "utf8.h"

#include <ctype.h>
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

/* Whether kv is a sample field KEY=VALUE; if not, why in err. */
bool run_sample_ok(const char *kv, char *err, size_t len)
{
    const char *eq = strchr(kv, '=');
    size_t klen = eq ? (size_t)(eq - kv) : 0;
    if (eq == NULL || klen == 0) {
        snprintf(err, len, "a sample field is KEY=VALUE (e.g. cell_line=Caco-2), found '%.80s'", kv);
        return false;
    }
    if (klen > RUN_SAMPLE_KEY_MAX || !isalpha((unsigned char)kv[0])) {
        snprintf(err, len, "sample key '%.*s': a key starts with a letter and has at most %d bytes",
                 (int)(klen < 80 ? klen : 80), kv, RUN_SAMPLE_KEY_MAX);
        return false;
    }
    for (size_t i = 0; i < klen; i++)
        if (!isalnum((unsigned char)kv[i]) && kv[i] != '_') {
            snprintf(err, len, "sample key '%.*s': use letters, digits and '_' only (e.g. chip_id)",
                     (int)(klen < 80 ? klen : 80), kv);
            return false;
        }
    const char *v = eq + 1;
    size_t n = strlen(v);
    if (!utf8_valid(v, n)) {
        snprintf(err, len, "sample %.*s: the value is not UTF-8 text", (int)klen, kv);
        return false;
    }
    if (n > RUN_SAMPLE_VALUE_MAX) {
        snprintf(err, len, "sample %.*s: the value is %zu bytes long; at most %d fit", (int)klen, kv, n,
                 RUN_SAMPLE_VALUE_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
            snprintf(err, len, "sample %.*s: the value contains a control character (byte %zu)",
                     (int)klen, kv, i + 1);
            return false;
        }
    return true;
}

/* Whether text can be a run's notes; if not, why in err. */
bool run_notes_ok(const char *text, char *err, size_t len)
{
    size_t n = strlen(text);
    if (!utf8_valid(text, n)) {
        snprintf(err, len, "the notes are not UTF-8 text (byte %zu)", utf8_valid_prefix(text, n) + 1);
        return false;
    }
    if (n > RUN_NOTES_MAX) {
        snprintf(err, len, "the notes are %zu bytes long; at most %d fit", n, RUN_NOTES_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)text[i] < 0x20 && text[i] != '\n' && text[i] != '\t') || text[i] == 0x7f) {
            snprintf(err, len, "the notes contain a control character (byte %zu)", i + 1);
            return false;
        }
    return true;
}
