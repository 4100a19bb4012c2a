/*
 * The long options perfusectl's commands share (--reason, --operator, --wait,
 * --rig, --json, --force, --keep-overrides, --fill, --yes, --sample, --notes), parsed wherever they
 * stand among a command's arguments.
 */
#ifndef PERFUSE_SUBOPTS_H
#define PERFUSE_SUBOPTS_H

#include <stdbool.h>
#include <stddef.h>

/* The options found; the strings point into argv. */
struct subopts {
    const char *reason, *operator_name, *rig;
    const char *fills[32];      /* run --fill PUMP=VOLUME, repeatable */
    size_t n_fills;
    const char *samples[32];    /* run --sample KEY=VALUE, repeatable */
    size_t n_samples;
    const char *notes;          /* run --notes TEXT */
    bool wait, json, force, keep_overrides, yes;
};

/* Parse the long options of a command (argv[0]) wherever they stand; the
 * other arguments are moved, in order, behind them. Returns the index of the
 * first of those, or -1 after a message on stderr. A number with a leading
 * minus ("set valve1.offset -5") is a value, not an option. */
int subopts_parse(int argc, char **argv, struct subopts *o);

#endif
