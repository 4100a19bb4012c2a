/* The run journal: encoding, atomic durable writes, and the background writer. */
#include "plan/claims.h"
#include "journal.h"
#include "base/jsonfield.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Add the overrides, {"CHANNEL": {"value", "protocol" (null: none), "by", "since_wall_ns"}}, to o. */
static int encode_overrides(const struct journal_rec *j, json_t *o)
{
    json_t *ov = json_object();
    for (size_t i = 0; ov != NULL && i < j->n_overrides; i++) {
        const struct journal_override *x = &j->overrides[i];
        json_object_set_new(ov, x->channel, json_pack("{s:f,s:o,s:s,s:I}", "value", x->value, "protocol",
                            isnan(x->protocol) ? json_null() : json_real(x->protocol), "by", x->by,
                            "since_wall_ns", (json_int_t)x->since_wall_ns));
    }
    return ov != NULL && json_object_set_new(o, "overrides", ov) == 0 ? 0 : -ENOMEM;
}

/* Read the overrides, if any (an older journal has none); a malformed one is skipped. */
static void decode_overrides(json_t *o, struct journal_rec *j)
{
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(o, "overrides"), key, v) {
        json_t *val = json_object_get(v, "value"), *proto = json_object_get(v, "protocol");
        const char *by = json_string_value(json_object_get(v, "by"));
        if (j->n_overrides >= JOURNAL_MAX_SETPOINTS || strlen(key) >= 72 || !json_is_number(val) ||
            !(json_is_number(proto) || json_is_null(proto))) {
            j->overrides_skipped++;     /* said in the run's events when it continues */
            continue;
        }
        struct journal_override *x = &j->overrides[j->n_overrides++];
        snprintf(x->channel, sizeof x->channel, "%s", key);
        x->value = json_number_value(val);
        x->protocol = json_is_number(proto) ? json_number_value(proto) : NAN;
        snprintf(x->by, sizeof x->by, "%s", by ? by : "?");
        x->since_wall_ns = json_integer_value(json_object_get(v, "since_wall_ns"));
    }
}

/* A number, or null for NaN. */
static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Add the syringes' levels, {"PUMP": {"fill_ul", "counter_ul", "fill_at_start_ul" (null:
 * unknown), "fill_source"}}, to o. */
static int encode_fills(const struct journal_rec *j, json_t *o)
{
    json_t *sy = json_object();
    for (size_t i = 0; sy != NULL && i < j->n_fills; i++) {
        const struct journal_fill *f = &j->fills[i];
        json_object_set_new(sy, f->pump, json_pack("{s:o,s:o,s:o,s:s}", "fill_ul", real_or_null(f->fill_ul),
                            "counter_ul", real_or_null(f->counter_ul), "fill_at_start_ul",
                            real_or_null(f->fill0_ul), "fill_source", f->source));
    }
    return sy != NULL && json_object_set_new(o, "syringes", sy) == 0 ? 0 : -ENOMEM;
}

/* A number member, NaN if null or missing; false if something else. */
static bool get_real(json_t *o, const char *key, double *v)
{
    json_t *x = json_object_get(o, key);
    *v = json_is_number(x) ? json_number_value(x) : NAN;
    return x == NULL || json_is_null(x) || json_is_number(x);
}

/* Read the syringes' levels, if any (an older journal has none); a malformed one is skipped. */
static void decode_fills(json_t *o, struct journal_rec *j)
{
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(o, "syringes"), key, v) {
        struct journal_fill f = { 0 };
        const char *src = json_string_value(json_object_get(v, "fill_source"));
        if (j->n_fills >= JOURNAL_MAX_FILLS || strlen(key) >= sizeof f.pump || src == NULL ||
            strlen(src) >= sizeof f.source || !get_real(v, "fill_ul", &f.fill_ul) ||
            !get_real(v, "counter_ul", &f.counter_ul) || !get_real(v, "fill_at_start_ul", &f.fill0_ul)) {
            j->fills_skipped++;         /* said in the run's events when it continues */
            continue;
        }
        snprintf(f.pump, sizeof f.pump, "%s", key);
        snprintf(f.source, sizeof f.source, "%s", src);
        j->fills[j->n_fills++] = f;
    }
}

int journal_encode(const struct journal_rec *j, char **text)
{
    const struct runner_pos *p = &j->pos;
    json_t *idx = json_array(), *iter = json_array(), *sp = json_object();
    for (int i = 0; i <= p->depth; i++) {
        json_array_append_new(idx, json_integer(p->idx[i]));
        json_array_append_new(iter, json_integer(p->iter[i]));
    }
    for (size_t i = 0; i < j->n_setpoints; i++)
        json_object_set_new(sp, j->setpoints[i].channel, json_real(j->setpoints[i].value));
    json_t *o = json_pack(
        "{s:i,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:{s:o,s:o,s:I,s:I,s:I,s:i,s:f,s:f,s:b,s:I},s:o}",
        "journal", JOURNAL_VERSION, "run_id", j->run_id, "file", j->file, "start_wall_ns", (json_int_t)j->start_wall_ns,
        "rig", j->rig_name, "operator", j->operator_name,
        "protocol_path", j->protocol_path ? j->protocol_path : "",
        "protocol_text", j->protocol_text ? j->protocol_text : "",
        "position", "index", idx, "repeat_pass", iter, "shift_ns", (json_int_t)p->shift_ns,
        "plan_pos_ns", (json_int_t)p->plan_pos_ns, "step_start_ns", (json_int_t)p->step_start_ns,
        "step_row", p->step_index, "row_planned_start", p->row_planned_start, "row_start", p->row_start,
        "paused", p->paused, "pause_ns", (json_int_t)p->pause_ns,
        "setpoints", sp);
    if (o == NULL)
        return -ENOMEM;
    /* Only when there is one: a journal without it reads as no extension. */
    if (p->extend_ns != 0 &&
        json_object_set_new(json_object_get(o, "position"), "extend_ns", json_integer(p->extend_ns)) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    if (encode_overrides(j, o) < 0 || encode_fills(j, o) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    if (j->run_name[0] != '\0' && json_object_set_new(o, "run_name", json_string(j->run_name)) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    if (j->written_wall_ns != 0 &&
        json_object_set_new(o, "written_wall_ns", json_integer(j->written_wall_ns)) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    /* What the run was started with: a restart checks them before using the journal. */
    if (json_object_set_new(o, "rig_sha256", json_string(j->rig_sha256)) < 0 ||
        json_object_set_new(o, "rig_digest", json_string(j->rig_digest)) < 0 ||
        json_object_set_new(o, "protocol_sha256", json_string(j->protocol_sha256)) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    *text = json_dumps(o, JSON_INDENT(1));
    json_decref(o);
    return *text ? 0 : -ENOMEM;
}

/* A whole-number member within [min, max]; false if missing, not an integer
 * (a real such as 1e300 would otherwise read as 0) or out of range. */
static bool get_int(json_t *o, const char *key, json_int_t min, json_int_t max, json_int_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* Whether s is n lower-case hex digits. */
static bool is_hex(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* Give up decoding: say why in err, release o. Returns -EINVAL. */
static int decode_fail(json_t *o, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int decode_fail(json_t *o, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    json_decref(o);
    return -EINVAL;
}

/* The position: where in the plan, and the run's times (in ns since t = 0). */
static int decode_pos(json_t *o, json_t *pos, struct runner_pos *p, char *err, size_t errlen)
{
    json_t *idx = json_object_get(pos, "index"), *iter = json_object_get(pos, "repeat_pass");
    if (!json_is_array(idx) || !json_is_array(iter) || json_array_size(idx) != json_array_size(iter) ||
        json_array_size(idx) == 0 || json_array_size(idx) > PLAN_MAX_DEPTH + 1)
        return decode_fail(o, err, errlen, "position: 'index' and 'repeat_pass' must be lists of "
                           "1 to %d whole numbers, as long as each other", PLAN_MAX_DEPTH + 1);
    p->depth = (int)json_array_size(idx) - 1;
    for (int i = 0; i <= p->depth; i++) {
        json_t *a = json_array_get(idx, (size_t)i), *b = json_array_get(iter, (size_t)i);
        if (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 ||
            json_integer_value(b) < 0 || json_integer_value(a) > UINT32_MAX ||
            json_integer_value(b) > UINT32_MAX)
            return decode_fail(o, err, errlen, "position: level %d's index or repeat pass is not a "
                               "whole number from 0 to %u", i + 1, UINT32_MAX);
        p->idx[i] = (uint32_t)json_integer_value(a);
        p->iter[i] = (uint32_t)json_integer_value(b);
    }
    static const char *const keys[] = { "shift_ns", "plan_pos_ns", "step_start_ns", "pause_ns" };
    int64_t *dst[] = { &p->shift_ns, &p->plan_pos_ns, &p->step_start_ns, &p->pause_ns };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_int_t v;
        if (!get_int(pos, keys[i], INT64_MIN, INT64_MAX, &v))
            return decode_fail(o, err, errlen, "position: '%s' is missing or not a whole number of ns",
                               keys[i]);
        *dst[i] = v;
    }
    json_int_t ext = 0;
    if (json_object_get(pos, "extend_ns") != NULL && !get_int(pos, "extend_ns", 0, INT64_MAX / 4, &ext))
        return decode_fail(o, err, errlen, "position: 'extend_ns' is not a whole number of ns from 0");
    p->extend_ns = ext;
    json_int_t row;
    if (!get_int(pos, "step_row", 0, INT32_MAX - 1, &row))
        return decode_fail(o, err, errlen, "position: 'step_row' is missing or not a whole number "
                           "from 0 to %d", INT32_MAX - 1);
    p->step_index = (int)row;
    json_t *planned = json_object_get(pos, "row_planned_start"), *start = json_object_get(pos, "row_start");
    json_t *paused = json_object_get(pos, "paused");
    if (!json_is_number(planned) || !json_is_number(start) || !json_is_boolean(paused))
        return decode_fail(o, err, errlen, "position: 'row_planned_start', 'row_start' (seconds) or "
                           "'paused' (true or false) is missing or mistyped");
    p->row_planned_start = json_number_value(planned);
    p->row_start = json_number_value(start);
    p->paused = json_is_true(paused);
    return 0;
}

/* The setpoints held when the journal was written, by channel name. */
static int decode_setpoints(json_t *o, struct journal_rec *j, char *err, size_t errlen)
{
    json_t *sp = json_object_get(o, "setpoints");
    if (!json_is_object(sp))
        return decode_fail(o, err, errlen, "'setpoints' is missing or not an object");
    if (json_object_size(sp) > JOURNAL_MAX_SETPOINTS)
        return decode_fail(o, err, errlen, "%zu setpoints: at most %d fit a journal",
                           json_object_size(sp), JOURNAL_MAX_SETPOINTS);
    const char *key;
    json_t *v;
    json_object_foreach(sp, key, v) {
        if (strlen(key) >= sizeof j->setpoints[0].channel || !json_is_number(v))
            return decode_fail(o, err, errlen, "setpoint '%.80s' is not a channel name with a number",
                               key);
        snprintf(j->setpoints[j->n_setpoints].channel, sizeof j->setpoints[0].channel, "%s", key);
        j->setpoints[j->n_setpoints++].value = json_number_value(v);
    }
    return 0;
}

int journal_decode(const char *text, size_t len, struct journal_rec *j, char *err, size_t errlen)
{
    memset(j, 0, sizeof *j);
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL)
        return decode_fail(NULL, err, errlen, "not JSON (line %d: %s): the file is truncated or corrupt",
                           je.line, je.text);
    json_t *ver = json_object_get(o, "journal");
    if (!json_is_object(o) || !json_is_integer(ver))
        return decode_fail(o, err, errlen, "not a perfuse run journal (no 'journal' version)");
    if (json_integer_value(ver) != JOURNAL_VERSION)
        return decode_fail(o, err, errlen, "journal version %" JSON_INTEGER_FORMAT " is not the one this "
                           "perfused reads (%d)%s", json_integer_value(ver), JOURNAL_VERSION,
                           json_integer_value(ver) < JOURNAL_VERSION
                               ? ": it was written by an older perfused, without the rig's and the "
                                 "protocol's hashes" : "");
    static const struct { const char *key; size_t off, len; } strs[] = {
        { "run_id", offsetof(struct journal_rec, run_id), sizeof j->run_id },
        { "file", offsetof(struct journal_rec, file), sizeof j->file },
        { "rig", offsetof(struct journal_rec, rig_name), sizeof j->rig_name },
        { "operator", offsetof(struct journal_rec, operator_name), sizeof j->operator_name },
        { "rig_sha256", offsetof(struct journal_rec, rig_sha256), sizeof j->rig_sha256 },
        { "rig_digest", offsetof(struct journal_rec, rig_digest), sizeof j->rig_digest },
        { "protocol_sha256", offsetof(struct journal_rec, protocol_sha256), sizeof j->protocol_sha256 },
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!jfield_str(o, strs[i].key, (char *)j + strs[i].off, strs[i].len))
            return decode_fail(o, err, errlen, "'%s' is missing, not text, or longer than %zu bytes",
                               strs[i].key, strs[i].len - 1);
    if (!is_hex(j->rig_sha256, 64) || !is_hex(j->rig_digest, 64) || !is_hex(j->protocol_sha256, 64))
        return decode_fail(o, err, errlen, "'rig_sha256', 'rig_digest' and 'protocol_sha256' must "
                           "be 64 hex digits");
    /* It names the run in alarms, alerts and the file: never anything but an id. */
    if (!is_hex(j->run_id, 32))
        return decode_fail(o, err, errlen, "'run_id' must be 32 hex digits");
    const char *ptext = json_string_value(json_object_get(o, "protocol_text"));
    json_t *ppath = json_object_get(o, "protocol_path");
    if (ptext == NULL || (ppath != NULL && !json_is_string(ppath)))
        return decode_fail(o, err, errlen, "'protocol_text' is missing, or it or 'protocol_path' is "
                           "not text");
    json_int_t start;
    if (!get_int(o, "start_wall_ns", INT64_MIN, INT64_MAX, &start))
        return decode_fail(o, err, errlen, "'start_wall_ns' is missing or not a whole number of ns");
    j->start_wall_ns = start;
    /* When it was written: optional (older journals); journal_validate bounds it. */
    json_int_t written = 0;
    if (json_object_get(o, "written_wall_ns") != NULL && !get_int(o, "written_wall_ns", 1, INT64_MAX, &written))
        return decode_fail(o, err, errlen, "'written_wall_ns' is not a whole positive number of ns");
    j->written_wall_ns = written;
    json_t *pos = json_object_get(o, "position");
    if (!json_is_object(pos))
        return decode_fail(o, err, errlen, "'position' is missing or not an object");
    int rc = decode_pos(o, pos, &j->pos, err, errlen);
    if (rc == 0)
        rc = decode_setpoints(o, j, err, errlen);
    if (rc < 0)
        return rc;              /* o is released */
    decode_overrides(o, j);
    decode_fills(o, j);
    /* The run's name: optional; one that is not a valid name is dropped (a new one is derived). */
    char nerr[8];
    if (!jfield_str(o, "run_name", j->run_name, sizeof j->run_name) ||
        !claims_name_valid(j->run_name, nerr, sizeof nerr))
        j->run_name[0] = '\0';
    j->protocol_path = strdup(json_string_value(ppath) ?: "");
    j->protocol_text = strdup(ptext);
    json_decref(o);
    if (j->protocol_path == NULL || j->protocol_text == NULL) {
        journal_rec_free(j);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

void journal_rec_free(struct journal_rec *j)
{
    free(j->protocol_path);
    free(j->protocol_text);
    j->protocol_path = j->protocol_text = NULL;
}

/* Replace name's content in the directory dir_fd atomically and durably. */
int journal_write_at(int dir_fd, const char *name, const char *text)
{
    char tmp[300];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", name) >= sizeof tmp)
        return -ENAMETOOLONG;
    /* Whatever sits at the temporary name (a file left by a crash, or a link
     * planted there) is removed, not followed; O_EXCL | O_NOFOLLOW then
     * refuse anything that appears between the two calls. */
    if (unlinkat(dir_fd, tmp, 0) < 0 && errno != ENOENT)
        return -errno;
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    /* 0640 whatever the umask: researchers read through the group. */
    int rc = fchmod(fd, 0640) < 0 ? -errno : 0;
    size_t len = strlen(text), off = 0;
    while (rc == 0 && off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)n;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
        rc = -errno;
    if (rc < 0) {
        unlinkat(dir_fd, tmp, 0);
        return rc;
    }
    /* The rename is durable only once the directory is. */
    return fsync(dir_fd) < 0 ? -errno : 0;
}

int journal_write_sync(const char *path, const char *text)
{
    char dir[4200], base[4200];
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(base, sizeof base, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int rc = journal_write_at(dfd, basename(base), text);
    close(dfd);
    return rc;
}

/* ------------------------------------------------------------- writer */

static void start_next(struct journal_writer *w);

/* Thread pool: write or remove. */
static void work_cb(struct workpool_req *req)
{
    struct journal_writer *w = req->data;
    if (w->dir_fd < 0)
        w->last_error = w->dir_error;
    else if (w->writing != NULL)
        w->last_error = journal_write_at(w->dir_fd, w->name, w->writing);
    else
        w->last_error = unlinkat(w->dir_fd, w->name, 0) < 0 && errno != ENOENT ? -errno : 0;
}

/* Loop thread: the write is done; start the next one. */
static void after_cb(struct workpool_req *req, int status)
{
    struct journal_writer *w = req->data;
    (void)status;
    if (w->last_error < 0)
        log_error("journal", "%s: %s (%s)", w->path, strerror(-w->last_error), w->loss);
    free(w->writing);
    w->writing = NULL;
    w->busy = false;
    if (w->result != NULL)
        w->result(w->result_ctx, w->path, w->last_error);
    start_next(w);
}

/* Hand the next queued operation to the thread pool. */
static void start_next(struct journal_writer *w)
{
    if (w->busy || (w->pending == NULL && !w->remove_pending))
        return;
    w->writing = w->pending;        /* NULL means remove */
    w->pending = NULL;
    w->remove_pending = false;
    w->busy = true;
    w->work.data = w;
    int rc = workpool_queue(w->loop, &w->work, work_cb, after_cb);
    if (rc < 0) {
        w->busy = false;
        free(w->writing);
        w->writing = NULL;
        w->last_error = rc;
        log_error("journal", "%s: cannot queue the write: %s", w->path, strerror(-rc));
        if (w->result != NULL)
            w->result(w->result_ctx, w->path, rc);
    }
}

void journal_writer_init(struct journal_writer *w, uv_loop_t *loop, const char *dir)
{
    journal_writer_init_file(w, loop, dir, JOURNAL_NAME, "a restart could not continue the run from here");
}

/* The journal file of the k-th run slot. */
void journal_slot_name(size_t k, char *buf, size_t len)
{
    if (k == 0)
        snprintf(buf, len, "%s", JOURNAL_NAME);
    else
        snprintf(buf, len, "run-%zu.journal", k);
}

void journal_writer_init_file(struct journal_writer *w, uv_loop_t *loop, const char *dir,
                              const char *name, const char *loss)
{
    memset(w, 0, sizeof *w);
    w->loop = loop;
    snprintf(w->name, sizeof w->name, "%s", name);
    w->loss = loss;
    snprintf(w->path, sizeof w->path, "%s/%s", dir, name);
    /* Every write goes through this descriptor: a directory renamed or
     * replaced by a link later cannot redirect the journal. */
    w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    w->dir_error = w->dir_fd < 0 ? -errno : 0;
    if (w->dir_fd < 0)
        log_error("journal", "cannot open the data directory %s: %s (%s)", dir, strerror(errno), loss);
}

void journal_writer_put(struct journal_writer *w, char *text)
{
    free(w->pending);
    w->pending = text;
    w->remove_pending = false;
    start_next(w);
}

void journal_writer_remove(struct journal_writer *w)
{
    free(w->pending);
    w->pending = NULL;
    w->remove_pending = true;
    start_next(w);
}

void journal_writer_free(struct journal_writer *w)
{
    free(w->pending);
    w->pending = NULL;
    if (w->loop != NULL && w->dir_fd >= 0)
        close(w->dir_fd);
    w->dir_fd = -1;
}

/* Read name in the directory dir_fd, never through a link, a fifo or past max bytes. */
int journal_read_at(int dir_fd, const char *name, size_t max, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    /* O_NONBLOCK: a fifo planted at the name must not stall the start. */
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL
           : (size_t)st.st_size > max ? -EFBIG : 0;
    char *buf = rc == 0 ? malloc((size_t)st.st_size + 1) : NULL;
    if (rc == 0 && buf == NULL)
        rc = -ENOMEM;
    size_t off = 0;
    while (rc == 0 && off < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;     /* shrunk while read: not a file to trust */
            break;
        }
        off += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[off] = '\0';
    *text = buf;
    *len = off;
    return 0;
}
