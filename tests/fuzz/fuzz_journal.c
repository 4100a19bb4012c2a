/*
 * libFuzzer target for the run journal's decoder: any bytes as the journal a
 * restarted daemon reads. It must never crash, leak or read out of bounds,
 * must explain every refusal, and what it accepts must encode and decode
 * again (what the daemon writes, it can read).
 *
 *   make fuzz                      (FUZZ_SECONDS=N to choose how long)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct journal_rec j;
    char err[512] = "";
    int rc = journal_decode((const char *)data, size, &j, err, sizeof err);
    if (rc < 0) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    char *text = NULL;
    if (journal_encode(&j, &text) == 0) {
        struct journal_rec again;
        if (journal_decode(text, strlen(text), &again, err, sizeof err) != 0)
            abort();
        if (strcmp(again.run_id, j.run_id) != 0 || strcmp(again.file, j.file) != 0 ||
            again.pos.depth != j.pos.depth || again.n_setpoints != j.n_setpoints)
            abort();
        journal_rec_free(&again);
        free(text);
    }
    journal_rec_free(&j);
    return 0;
}
