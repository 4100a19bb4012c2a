/*
 * libFuzzer target for the rig loader: any bytes as a rig file, named as if
 * it sat in protocols/rigs/ (so that profile paths resolve as sim.yaml's do),
 * then the lookups the daemon makes in a loaded rig. Nothing may crash, hang,
 * leak or read out of bounds, and a refused rig must say why.
 *
 *   make fuzz                      (FUZZ_SECONDS=N to choose how long)
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/rig.h"

/* No input may make the loader wait on the terminal. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (freopen("/dev/null", "r", stdin) == NULL)
        abort();
    return 0;
}

/* One input: load it as a rig, look up what it declares, free it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As read_file_text gives it: NUL-terminated. */
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct diag d;
    struct rig *rig = NULL;
    diag_init(&d);
    int rc = rig_load_text("protocols/rigs/fuzz.yaml", text, size, &rig, &d);
    if (rc == 0) {
        if (rig == NULL || rig->name == NULL)
            abort();
        for (size_t i = 0; i < rig->n_channels; i++)
            if (rig_find_channel(rig, rig->channels[i].name) < 0)
                abort();
        for (size_t i = 0; i < rig->n_devices; i++)
            if (rig_find_device(rig, rig->devices[i].name) < 0)
                abort();
        rig_suggest_channel(rig, "chip1.presure");
    } else if (d.errors == 0 && rc == -EINVAL) {
        abort();                    /* refused without a word */
    }
    rig_free(rig);
    diag_free(&d);
    free(text);
    return 0;
}
