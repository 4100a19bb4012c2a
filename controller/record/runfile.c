/* What goes into a run file for a rig: its series, and the file's name. */
#include "runfile.h"
#include "base/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Build the series tables from the rig. */
int runfile_series_build(const struct rig *rig, struct runfile_series *s)
{
    memset(s, 0, sizeof *s);
    size_t n = rig->n_channels ? rig->n_channels : 1;
    s->rec_chan = calloc(n, sizeof *s->rec_chan);
    s->rec_sp = calloc(n, sizeof *s->rec_sp);
    s->chans = calloc(n, sizeof *s->chans);
    s->sps = calloc(n, sizeof *s->sps);
    s->confs = calloc(n, sizeof *s->confs);
    if (!s->rec_chan || !s->rec_sp || !s->chans || !s->sps || !s->confs) {
        runfile_series_free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < rig->n_channels; i++) {
        const struct rig_channel *c = &rig->channels[i];
        const struct rig_device *dev = &rig->devices[c->device];
        struct rec_channel info = { .name = c->name, .units = c->unit, .device = dev->name,
                                    .driver = dev->drv->name,
                                    .kind = c->writable ? "readback" : "measured",
                                    .counter = c->q == Q_VOLUME && !c->writable,
                                    .rate_hz = c->sample_hz };
        s->rec_chan[i] = s->rec_sp[i] = -1;
        if (c->readable) {
            s->rec_chan[i] = (int)s->n_chans;
            s->chans[s->n_chans++] = info;
        }
        if (c->writable) {
            s->rec_sp[i] = (int)s->n_sps;
            s->confs[s->n_sps] = info;
            s->confs[s->n_sps].kind = "confirmed";
            s->sps[s->n_sps++] = info;
        }
    }
    return 0;
}

/* Append a derived /channels series. */
int runfile_series_add(struct runfile_series *s, const struct rec_channel *c)
{
    struct rec_channel *v = realloc(s->chans, (s->n_chans + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    s->chans = v;
    s->chans[s->n_chans] = *c;
    return (int)s->n_chans++;
}

void runfile_series_free(struct runfile_series *s)
{
    free(s->rec_chan);
    free(s->rec_sp);
    free(s->chans);
    free(s->sps);
    free(s->confs);
    memset(s, 0, sizeof *s);
}

/* Lower-case, dash-separated file name part from the protocol name. */
static void slugify(const char *name, char *out, size_t len)
{
    size_t n = 0;
    bool dash = false;
    for (const char *p = name; *p && n + 2 < len && n < 40; p++) {
        if (isalnum((unsigned char)*p)) {
            if (dash && n > 0)
                out[n++] = '-';
            out[n++] = (char)tolower((unsigned char)*p);
            dash = false;
        } else {
            dash = true;
        }
    }
    if (n == 0)
        n = (size_t)snprintf(out, len, "protocol");
    out[n] = '\0';
}

/* DIR/<stamp>-<slug>[-TAG]-<id8>.h5 */
void runfile_path(char *buf, size_t len, const char *dir, int64_t wall_ns, const char *protocol,
                  const char *tag, const char *run_id)
{
    char stamp[32], slug[48];
    time_stamp_compact(wall_ns, stamp, sizeof stamp);
    slugify(protocol, slug, sizeof slug);
    snprintf(buf, len, "%s/%s-%s%s%s-%.8s.h5", dir, stamp, slug, tag ? "-" : "", tag ? tag : "", run_id);
}

/* A random 128-bit run id in hex. */
void runfile_make_id(char out[33])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        uint64_t t = time_mono_ns() ^ (uint64_t)time_wall_ns();
        memcpy(b, &t, 8);
        memcpy(b + 8, &t, 8);
    }
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}
