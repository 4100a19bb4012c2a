/* The long options of perfusectl's commands, wherever they stand among the arguments. */
#include "subopts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True if arg is a number with a leading minus ("-5", "-0.25"): a value, not an option. */
static bool is_negative_number(const char *arg)
{
    char *end;
    if (arg[0] != '-' || !(isdigit((unsigned char)arg[1]) || arg[1] == '.'))
        return false;
    strtod(arg, &end);
    return *end == '\0';
}

/* Parse the long options of a sub-command wherever they stand; the other
 * arguments are moved, in order, behind them. Returns the index of the first
 * of those, or -1 after a message. getopt is not used because it would take a
 * negative value ("set valve1.offset -5") for an option. */
int subopts_parse(int argc, char **argv, struct subopts *o)
{
    static const struct {
        const char *name;
        bool has_arg;
        char key;
    } opts[] = { { "reason", true, 'r' }, { "operator", true, 'o' }, { "wait", false, 'w' },
                 { "rig", true, 'g' },    { "json", false, 'j' }, { "force", false, 'f' },
                 { "keep-overrides", false, 'k' }, { "fill", true, 'F' }, { "yes", false, 'y' },
                 { "sample", true, 'S' }, { "notes", true, 'n' } };
    memset(o, 0, sizeof *o);
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (pos == NULL)
        return -1;
    int n_pos = 0, n_opt = 1;
    bool only_args = false;
    for (int k = 1; k < argc; k++) {
        char *a = argv[k];
        if (only_args || a[0] != '-' || a[1] == '\0' || is_negative_number(a)) {
            pos[n_pos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = true;
            continue;
        }
        /* Only long options exist: "-x" is as unknown as "--nonsense". */
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        size_t i = 0;
        while (i < sizeof opts / sizeof opts[0] &&
               !(a[1] == '-' && strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0))
            i++;
        if (i == sizeof opts / sizeof opts[0]) {
            fprintf(stderr, "%s: unknown option '%s'\n", argv[0], a);
            free(pos);
            return -1;
        }
        const char *val = NULL;
        if (opts[i].has_arg && eq != NULL) {
            val = eq + 1;
        } else if (opts[i].has_arg && k + 1 < argc) {
            argv[n_opt++] = a;      /* the option, then its value: both stay in front */
            a = argv[++k];
            val = a;
        } else if (opts[i].has_arg) {
            fprintf(stderr, "%s: option '--%s' needs a value\n", argv[0], opts[i].name);
            free(pos);
            return -1;
        } else if (eq) {
            fprintf(stderr, "%s: option '--%s' takes no value\n", argv[0], opts[i].name);
            free(pos);
            return -1;
        }
        argv[n_opt++] = a;
        switch (opts[i].key) {
        case 'r': o->reason = val; break;
        case 'o': o->operator_name = val; break;
        case 'w': o->wait = true; break;
        case 'g': o->rig = val; break;
        case 'j': o->json = true; break;
        case 'f': o->force = true; break;
        case 'k': o->keep_overrides = true; break;
        case 'F':
            if (o->n_fills < sizeof o->fills / sizeof o->fills[0])
                o->fills[o->n_fills++] = val;
            break;
        case 'y': o->yes = true; break;
        case 'n': o->notes = val; break;
        case 'S':
            if (o->n_samples == sizeof o->samples / sizeof o->samples[0]) {
                fprintf(stderr, "%s: at most %zu --sample fields\n", argv[0], sizeof o->samples / sizeof o->samples[0]);
                free(pos);
                return -1;
            }
            o->samples[o->n_samples++] = val;
            break;
        }
    }
    memcpy(argv + n_opt, pos, (size_t)n_pos * sizeof *pos);
    free(pos);
    return n_opt;
}
