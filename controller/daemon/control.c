/* The control server: JSON lines on the daemon's Unix socket. */
#include "control.h"
#include "base/sockpath.h"
#include "base/workpool.h"
#include "base/control_proto.h"
#include "base/log.h"
#include "plan/planwork.h"
#include "base/timeutil.h"
#include "base/utf8.h"

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Where one page of events stands, streamed or made as one reply. */
struct events_cursor {
    uint64_t seq, end;          /* next event to look at; one past the last one */
    double since;               /* run time: earlier events are skipped */
    size_t limit, sent, bytes;  /* at most limit events and about CONTROL_EVENTS_BYTES */
};

struct client {
    struct ctl_client pub;
    uv_pipe_t pipe;
    char *buf;                  /* received bytes not yet handled (CONTROL_MAX_LINE + 1) */
    size_t len;
    bool reading;               /* uv_read_start is in effect */
    bool queued;                /* in the control's list of clients with a request to handle */
    bool eof;                   /* the client has shut down its side */
    int64_t full_since_ns;      /* its replies have been piling up since (0: they do not) */
    int64_t dropping_since_ns;  /* being disconnected since (0: not) */
    uv_shutdown_t shutdown;
    struct plan_work *parsing;  /* a run's protocol loading on the thread pool */
    struct offloop *making;     /* a reply being prepared or made off the loop */
    json_t *parse_req;          /* the run request waiting for it */
    const struct ctl_command *parse_cmd;    /* and its command */
    const struct ctl_command *executing;    /* the command whose handler runs now */
    bool closing;
    bool closed;                /* the pipe is closed (the struct waits for parsing or making) */
    json_t *wait_id;            /* set while waiting for the run to end */
    json_t *retry_req;          /* a request to run again once the run's file closes */
    const struct ctl_command *retry_cmd;
    bool watching;
    int64_t watch_every_ns, watch_next_ns;
    uint64_t watch_seq;         /* the next event of watch_run_id this watcher gets */
    char watch_run_id[33];
    struct client *next;
    struct client *next_ready;
    struct {                    /* an events reply being streamed */
        bool active;
        char run_id[33];
        struct events_cursor k;
    } stream;
    json_t *held;               /* messages for after the stream (a wait's reply) */
    control_reply_fn remote;    /* a remote request's replies go here (it has no pipe) */
    control_reply_text_fn remote_text;  /* ... and those made off the loop, as text */
    void *remote_ctx;
};

/* A reply prepared on the loop a piece at a time, then made on the thread
 * pool (control_reply_off_loop). */
struct offloop {
    struct workpool_req work;
    struct offloop *next;       /* in the control's list of replies being prepared */
    struct client *cl;
    control_step_fn step;       /* NULL once prepared */
    json_t *id;                 /* the request's id */
    char *head;                 /* {"id":ID,"ok":true,"result": */
    bool newline;               /* a line for the socket (a remote reply is one message) */
    control_write_fn write;
    void (*free_arg)(void *arg);
    void *arg;
    char *text;                 /* the whole reply, made on the thread pool */
    size_t len;
    int rc;
};

struct control {
    uv_loop_t *loop;
    const struct ctl_table *table;  /* the commands served */
    struct control_hooks hooks;
    uv_pipe_t server;
    uv_pipe_t ro_server;        /* the read-only socket */
    bool ro_open;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char ro_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct client *clients;
    struct client *remotes;     /* remote requests still running (a protocol loading, a retry) */
    int n_clients[2];           /* connected, on the control [0] and read-only [1] socket */
    int max_clients;            /* per socket: viewers can never take an operator's place */
    struct client *ready, *ready_tail;  /* clients with a whole request line to handle */
    uv_idle_t work_idle;        /* handles requests, a time budget per loop turn */
    uv_timer_t watch_timer;     /* ticks while anyone watches */
    uv_timer_t retry_timer;     /* runs deferred requests, outside the run's callbacks */
    uv_timer_t stall_timer;     /* drops clients that stopped reading long ago */
    int watchers;
    int making;                 /* replies being prepared or made off the loop */
    int in_pool;                /* ... of them on the thread pool */
    struct offloop *preparing, *preparing_tail;     /* replies prepared a piece per turn */
    int open_handles;
    bool closing;
    struct log_ratelimit rl;
};

const char *control_path(const struct control *c)
{
    return c->path;
}

void *control_context(struct control *c)
{
    return c->hooks.ctx;
}

/* Free the control struct once its last handle is closed. */
static void handle_released(struct control *c)
{
    if (--c->open_handles == 0 && c->closing)
        free(c);
}

/* Free a client whose pipe is closed and whose protocol load has finished. */
static void client_free(struct client *cl)
{
    struct control *c = cl->pub.ctl;
    free(cl->buf);
    json_decref(cl->wait_id);
    json_decref(cl->retry_req);
    json_decref(cl->parse_req);
    json_decref(cl->held);
    plan_work_free(cl->pub.parsed);
    free(cl);
    handle_released(c);
}

/* A client's pipe is closed: free it (after its protocol load, if one is running). */
static void client_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    cl->closed = true;
    if (cl->parsing == NULL && cl->making == NULL)
        client_free(cl);
}

/* Take cl out of the list of clients with a request to handle. */
static void unready(struct client *cl)
{
    struct control *c = cl->pub.ctl;
    if (!cl->queued)
        return;
    cl->queued = false;
    struct client *prev = NULL;
    for (struct client *p = c->ready; p; prev = p, p = p->next_ready)
        if (p == cl) {
            if (prev)
                prev->next_ready = p->next_ready;
            else
                c->ready = p->next_ready;
            if (c->ready_tail == p)
                c->ready_tail = prev;
            break;
        }
    cl->next_ready = NULL;
}

/* Unlink a client and close its pipe. */
static void client_close(struct client *cl)
{
    if (cl->closing)
        return;
    cl->closing = true;
    struct control *c = cl->pub.ctl;
    if (cl->watching && --c->watchers == 0)
        uv_timer_stop(&c->watch_timer);
    unready(cl);
    for (struct client **p = &c->clients; *p; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            c->n_clients[cl->pub.read_only]--;
            break;
        }
    uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

/* Unsent reply bytes queued for cl. */
static size_t queued_bytes(struct client *cl)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&cl->pipe);
}

static void pump(struct client *cl);
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void connection_cb(uv_stream_t *server, int status);

/* A reply was written (or failed): free its buffer; resume a client whose
 * replies have drained. */
static void write_done(uv_write_t *w, int status)
{
    struct client *cl = w->handle->data;
    free(w->data);
    free(w);
    if (status < 0 || cl->closing)
        return;
    if (cl->full_since_ns != 0 && queued_bytes(cl) <= CONTROL_QUEUE_LOW) {
        cl->full_since_ns = 0;
        pump(cl);
    }
}

/* Queue n bytes of text (stolen) for cl. */
static void queue_raw(struct client *cl, char *line, size_t n)
{
    uv_write_t *w = malloc(sizeof *w);
    if (w == NULL) {
        free(line);
        return;
    }
    w->data = line;
    uv_buf_t b = uv_buf_init(line, (unsigned)n);
    if (uv_write(w, (uv_stream_t *)&cl->pipe, &b, 1, write_done) < 0) {
        free(line);
        free(w);
        client_close(cl);
        return;
    }
    if (cl->full_since_ns == 0 && queued_bytes(cl) > CONTROL_QUEUE_HIGH)
        cl->full_since_ns = (int64_t)time_mono_ns();
}

/* Queue a line (stolen, without its newline) for cl. */
static void queue_line(struct client *cl, char *text)
{
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (line == NULL) {
        free(text);
        return;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    queue_raw(cl, line, n + 1);
}

/* End the events reply being streamed to cl, then send what waited for it. */
static void stream_finish(struct client *cl, bool more)
{
    char *tail = NULL;
    int n = asprintf(&tail, "],\"next\":%llu,\"more\":%s}}\n", (unsigned long long)cl->stream.k.seq,
                     more ? "true" : "false");
    cl->stream.active = false;
    if (n > 0)
        queue_raw(cl, tail, (size_t)n);
    json_t *held = cl->held;
    cl->held = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(held, i, m)
        control_send(&cl->pub, json_incref(m));
    json_decref(held);
}

/* The shutdown of a dropped client is done (its replies and the reason went out). */
static void drop_done(uv_shutdown_t *req, int status)
{
    (void)status;
    client_close(req->data);
}

/* Disconnect cl: nothing more is produced for it; the reason (an error with
 * code and message) follows the replies already queued, then the connection
 * is shut down, or closed CONTROL_STALL_MS later if the client never reads. */
static void client_drop(struct client *cl, const char *code, const char *message)
{
    if (cl->closing || cl->dropping_since_ns != 0)
        return;
    if (cl->stream.active)
        stream_finish(cl, true);
    cl->dropping_since_ns = (int64_t)time_mono_ns();
    unready(cl);
    if (cl->reading) {
        uv_read_stop((uv_stream_t *)&cl->pipe);
        cl->reading = false;
    }
    /* Take what the client already sent, so that closing does not reset the
     * connection before it has read the reason. */
    uv_os_fd_t fd;
    char sink[4096];
    if (uv_fileno((uv_handle_t *)&cl->pipe, &fd) == 0)
        for (int i = 0; i < 256 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
            ;
    json_t *why = json_pack("{s:n,s:b,s:{s:s,s:s}}", "id", "ok", 0, "error", "code", code,
                            "message", message);
    char *text = why ? json_dumps(why, JSON_COMPACT) : NULL;
    json_decref(why);
    if (text != NULL)
        queue_line(cl, text);
    if (cl->closing)
        return;
    cl->shutdown.data = cl;
    if (uv_shutdown(&cl->shutdown, (uv_stream_t *)&cl->pipe, drop_done) < 0)
        client_close(cl);
}

/* Send a JSON line to a client; drop a client that does not read its replies. */
void control_send(struct ctl_client *pub, json_t *msg)
{
    struct client *cl = (struct client *)pub;
    if (cl->remote != NULL) {
        cl->remote(cl->remote_ctx, msg);
        return;
    }
    if (cl->stream.active && !cl->closing && cl->dropping_since_ns == 0) {
        /* Not inside the line being streamed: after it. */
        if (cl->held == NULL)
            cl->held = json_array();
        if (msg != NULL && json_array_size(cl->held) < 16)
            json_array_append_new(cl->held, msg);
        else
            json_decref(msg);
        return;
    }
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text == NULL || cl->closing || cl->dropping_since_ns != 0) {
        free(text);
        return;
    }
    if (queued_bytes(cl) > CONTROL_MAX_QUEUED) {
        log_limited(&cl->pub.ctl->rl, 10000, LOG_WARN, "control",
                    "dropping a client (%s) that does not read its replies", cl->pub.user);
        free(text);
        client_drop(cl, "dropped", "disconnected: more than 1 MiB of replies unread (read faster, "
                    "or watch less often)");
        return;
    }
    queue_line(cl, text);
}

/* The error code a reply carries for a negative errno. */
static const char *error_code(int rc)
{
    switch (-rc) {
    case EINVAL: return "invalid";
    case ENOENT: return "not_found";
    case EBUSY: case EALREADY: case EPERM: case EACCES: return "refused";
    case EPROTO: return "bad_request";
    case ENOSYS: return "unknown_command";
    default: return "failed";
    }
}

/* Reply with an error. A message cut to fit its buffer loses the character
 * it ended inside; one that still is not UTF-8 is replaced, never left unsent. */
static void send_error(struct ctl_client *cl, json_t *id, int rc, const char *msg, json_t *extra)
{
    json_t *text = json_stringn(msg, utf8_cut(msg, strlen(msg)));
    if (text == NULL)
        text = json_string("(the reason is not valid UTF-8 text)");
    json_t *reply = json_pack("{s:O?,s:b,s:{s:s,s:o}}", "id", id, "ok", 0, "error", "code",
                              error_code(rc), "message", text);
    if (reply && extra)
        json_object_update(json_object_get(reply, "error"), extra);
    json_decref(extra);
    if (reply)
        control_send(cl, reply);
}

static void execute(struct client *cl, const struct ctl_command *cmd, json_t *req, json_t *id);
static void remote_done(struct client *cl);
static void remote_retry(struct control *c);
static void remote_close_all(struct control *c);

/* Parse and execute one request line. */
static void handle_line(struct client *cl, const char *line, size_t len)
{
    char err[1024] = "";
    json_t *req, *id;
    const struct ctl_command *cmd;
    int rc = request_parse(cl->pub.ctl->table, line, len, &req, &cmd, &id, err, sizeof err);
    if (rc < 0) {
        send_error(&cl->pub, id, rc, err, NULL);
        json_decref(id);
        return;
    }
    if (cl->pub.read_only && !cmd->read_only) {
        snprintf(err, sizeof err, "'%s' is refused on the read-only socket %s: it would change "
                 "something; use the control socket (perfusectl without --ro), which needs the "
                 "operators' group", cmd->name, cl->pub.ctl->ro_path);
        send_error(&cl->pub, id, -EACCES, err, NULL);
        json_decref(id);
        json_decref(req);
        return;
    }
    if (cl->pub.parsed != NULL && cmd->loads_protocol) {
        send_error(&cl->pub, id, -EBUSY, "this connection's last run request is still waiting "
                   "for the previous run's file to close", NULL);
        json_decref(id);
        json_decref(req);
        return;
    }
    execute(cl, cmd, req, id);
}

/* Execute one parsed request and reply (unless the handler deferred it).
 * Takes the references to req and id. */
static void execute(struct client *cl, const struct ctl_command *cmd, json_t *req, json_t *id)
{
    char err[1024] = "";
    json_t *result = json_object();
    cl->executing = cmd;
    int rc = cmd->exec(&cl->pub, req, result, err, sizeof err);
    cl->executing = NULL;
    if (rc == CMD_DEFERRED) {
        json_decref(result);
    } else if (rc < 0) {
        json_t *extra = json_object_get(result, "diagnostics") ? json_pack("{s:O}", "diagnostics",
                        json_object_get(result, "diagnostics")) : NULL;
        if (extra && json_object_get(result, "diagnostics_omitted"))
            json_object_set(extra, "diagnostics_omitted", json_object_get(result, "diagnostics_omitted"));
        send_error(&cl->pub, id, rc, err[0] ? err : strerror(-rc), extra);
        json_decref(result);
    } else {
        control_send(&cl->pub, json_pack("{s:O?,s:b,s:o}", "id", id, "ok", 1, "result", result));
    }
    if (cmd->loads_protocol && (rc != CMD_DEFERRED || cl->retry_req == NULL)) {
        /* A loaded protocol serves only the request it was loaded for. */
        plan_work_free(cl->pub.parsed);
        cl->pub.parsed = NULL;
    }
    json_decref(id);
    json_decref(req);
}

/* Whether cl may not be given more work now: its protocol is loading, or its
 * replies pile up unread. */
static bool blocked(struct client *cl)
{
    return cl->closing || cl->dropping_since_ns != 0 || cl->parsing != NULL || cl->making != NULL ||
           cl->full_since_ns != 0;
}

/* Allocate read buffers: the client's own, so a client costs at most one line. */
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct client *cl = h->data;
    if (cl->buf == NULL)
        cl->buf = malloc(CONTROL_MAX_LINE + 1);
    if (cl->buf == NULL || cl->len >= CONTROL_MAX_LINE + 1) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(cl->buf + cl->len, (unsigned)(CONTROL_MAX_LINE + 1 - cl->len));
}

/* Whether cl's buffer holds a whole line. */
static bool has_line(const struct client *cl)
{
    return cl->len > 0 && memchr(cl->buf, '\n', cl->len) != NULL;
}

static void work_cb(uv_idle_t *idle);
static void prepare_step(struct control *c);

/* Decide what cl waits for: its turn (a whole line), more bytes, or its replies to drain. */
static void pump(struct client *cl)
{
    struct control *c = cl->pub.ctl;
    if (cl->closing)
        return;
    if (blocked(cl) || has_line(cl) || cl->stream.active) {
        if (cl->reading) {
            uv_read_stop((uv_stream_t *)&cl->pipe);
            cl->reading = false;
        }
        if (!blocked(cl) && !cl->queued) {
            cl->queued = true;
            if (c->ready_tail)
                c->ready_tail->next_ready = cl;
            else
                c->ready = cl;
            c->ready_tail = cl;
            uv_idle_start(&c->work_idle, work_cb);
        }
        return;
    }
    if (cl->eof) {
        client_close(cl);
        return;
    }
    if (cl->len > CONTROL_MAX_LINE) {
        client_drop(cl, "bad_request", "request line longer than 64 KiB; closing");
        return;
    }
    if (!cl->reading && uv_read_start((uv_stream_t *)&cl->pipe, alloc_cb, read_cb) == 0)
        cl->reading = true;
}

/* Handle cl's first whole line. */
static void take_line(struct client *cl)
{
    char *nl = memchr(cl->buf, '\n', cl->len);
    size_t n = (size_t)(nl - cl->buf);
    if (n > 0)
        handle_line(cl, cl->buf, n);
    if (cl->closing)
        return;
    /* Empty lines after it go in the same move: a flood of them costs one
     * copy of the buffer, not one per line. */
    size_t skip = n + 1;
    while (skip < cl->len && cl->buf[skip] == '\n')
        skip++;
    cl->len -= skip;
    memmove(cl->buf, cl->buf + skip, cl->len);
}

/* Write the page's next events to out (at most CONTROL_EVENTS_CHUNK, comma
 * separated), as the event hook gives them for cl. Returns true once the page
 * is full (its limit or its bytes), false when it has more room. */
static bool events_encode(struct control *c, struct ctl_client *cl, struct events_cursor *k, FILE *out)
{
    for (int n = 0; n < CONTROL_EVENTS_CHUNK && k->seq < k->end; k->seq++) {
        json_t *o = c->hooks.event(c->hooks.ctx, cl, k->seq);
        if (o == NULL || !(json_number_value(json_object_get(o, "time")) >= k->since)) {
            json_decref(o);
            continue;
        }
        if (k->sent >= k->limit || k->bytes >= CONTROL_EVENTS_BYTES) {
            json_decref(o);
            return true;
        }
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (text == NULL)
            continue;
        fprintf(out, "%s%s", k->sent ? "," : "", text);
        k->bytes += strlen(text) + 1;
        k->sent++;
        n++;
        free(text);
    }
    return false;
}

/* Whether the run whose events a page follows is still the one cl sees, and
 * its first kept event; the page skips what is no longer kept. */
static bool events_same_run(struct control *c, struct ctl_client *cl, const char *run_id,
                            struct events_cursor *k)
{
    uint64_t first, total;
    const char *run = c->hooks.events(c->hooks.ctx, cl, &first, &total);
    if (run == NULL || strcmp(run, run_id) != 0)
        return false;
    if (k->seq < first)
        k->seq = first;
    return true;
}

/* Write the next few events of the reply being streamed to cl. */
static void stream_step(struct client *cl)
{
    struct control *c = cl->pub.ctl;
    struct events_cursor *k = &cl->stream.k;
    if (!events_same_run(c, &cl->pub, cl->stream.run_id, k)) {
        stream_finish(cl, true);    /* a new run: the client asks again */
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (out == NULL) {
        stream_finish(cl, true);
        return;
    }
    bool full = events_encode(c, &cl->pub, k, out);
    fclose(out);
    if (len > 0)
        queue_raw(cl, buf, len);
    else
        free(buf);
    if (cl->closing)
        return;
    if (full)
        stream_finish(cl, k->seq < k->end);
    else if (k->seq >= k->end)
        stream_finish(cl, false);
}

/* An events page for a remote requester (it has no pipe to stream into):
 * its events are encoded on the loop a chunk per turn, as a stream's are, and
 * the reply is put together on the thread pool. */
struct events_page {
    struct client *cl;
    char run_id[33];
    char *run_json;             /* run_id as a JSON string */
    struct events_cursor k;
    bool more;
    FILE *out;                  /* the events' texts, into buf; closed once the page is made */
    char *buf;
    size_t len;
};

/* Loop: encode the page's next few events; 1 while there is more to look at. */
static int events_page_step(void *arg)
{
    struct events_page *p = arg;
    struct control *c = p->cl->pub.ctl;
    int rc = 1;
    if (!events_same_run(c, &p->cl->pub, p->run_id, &p->k))
        p->more = true, rc = 0;     /* a new run: the requester asks again */
    else if (events_encode(c, &p->cl->pub, &p->k, p->out))
        p->more = true, rc = 0;
    else if (p->k.seq >= p->k.end)
        p->more = false, rc = 0;
    if (rc == 0 && fclose(p->out) != 0)
        rc = -ENOMEM;
    if (rc <= 0)
        p->out = NULL;
    return rc;
}

/* Thread pool: the page as a reply's result. */
static int events_page_write(void *arg, FILE *out)
{
    const struct events_page *p = arg;
    fprintf(out, "{\"run_id\":%s,\"events\":[", p->run_json);
    if (p->len > 0)
        fwrite(p->buf, 1, p->len, out);
    fprintf(out, "],\"next\":%llu,\"more\":%s}", (unsigned long long)p->k.seq, p->more ? "true" : "false");
    return ferror(out) ? -EIO : 0;
}

/* Loop: the page has been sent, or given up. */
static void events_page_free(void *arg)
{
    struct events_page *p = arg;
    if (p != NULL) {
        if (p->out != NULL)
            fclose(p->out);
        free(p->buf);
        free(p->run_json);
    }
    free(p);
}

/* Make one page of events as a single reply, for a remote requester. */
static int remote_events(struct client *cl, json_t *id, const char *run, double since, uint64_t cursor,
                         uint64_t total, size_t limit)
{
    struct events_page *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->cl = cl;
    snprintf(p->run_id, sizeof p->run_id, "%s", run);
    json_t *rid = json_string(p->run_id);
    p->run_json = rid ? json_dumps(rid, JSON_ENCODE_ANY) : NULL;
    json_decref(rid);
    if (p->run_json == NULL) {
        events_page_free(p);
        return -ENOMEM;
    }
    p->k = (struct events_cursor){ .seq = cursor, .end = total, .since = since, .limit = limit };
    p->out = open_memstream(&p->buf, &p->len);
    if (p->out == NULL) {
        events_page_free(p);
        return -ENOMEM;
    }
    int rc = control_reply_off_loop(&cl->pub, id, events_page_step, events_page_write, events_page_free, p);
    if (rc < 0)
        events_page_free(p);
    return rc;
}

/* Start streaming one page of the current run's events to cl. */
int control_stream_events(struct ctl_client *pub, json_t *id, double since, uint64_t cursor, size_t limit,
                          size_t last)
{
    struct client *cl = (struct client *)pub;
    struct control *c = pub->ctl;
    uint64_t first, total;
    const char *run = c->hooks.events(c->hooks.ctx, &cl->pub, &first, &total);
    if (run == NULL)
        return -ENOENT;
    if (last > 0)
        cursor = total > last ? total - last : 0;
    if (cl->remote != NULL)
        return remote_events(cl, id, run, since, cursor, total, limit);
    if (cl->stream.active)
        return -EBUSY;
    char *idtext = json_dumps(id ? id : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *rid = json_string(run);
    char *ridtext = rid ? json_dumps(rid, JSON_ENCODE_ANY) : NULL;
    json_decref(rid);
    char *head = NULL;
    int n = idtext && ridtext ? asprintf(&head, "{\"id\":%s,\"ok\":true,\"result\":{\"run_id\":%s,"
                                         "\"events\":[", idtext, ridtext) : -1;
    free(idtext);
    free(ridtext);
    if (n < 0)
        return -ENOMEM;
    snprintf(cl->stream.run_id, sizeof cl->stream.run_id, "%s", run);
    cl->stream.k = (struct events_cursor){ .seq = cursor, .end = total, .since = since, .limit = limit };
    queue_raw(cl, head, (size_t)n);
    if (cl->closing)
        return 0;
    cl->stream.active = true;
    return 0;
}

/* Idle: handle waiting requests, one per client in turn, within a time budget
 * per loop turn, so that timers and I/O run between bursts of requests. */
static void work_cb(uv_idle_t *idle)
{
    struct control *c = idle->data;
    int64_t t0 = (int64_t)time_mono_ns();
    while (c->ready != NULL && (int64_t)time_mono_ns() - t0 < CONTROL_BUDGET_NS) {
        struct client *cl = c->ready;
        unready(cl);
        if (!blocked(cl) && cl->stream.active)
            stream_step(cl);
        else if (!blocked(cl) && has_line(cl))
            take_line(cl);
        pump(cl);
    }
    /* Replies are prepared while the thread pool has room for them. */
    while (c->preparing != NULL && c->in_pool < CONTROL_OFFLOOP_POOL &&
           (int64_t)time_mono_ns() - t0 < CONTROL_BUDGET_NS)
        prepare_step(c);
    if (c->ready == NULL && (c->preparing == NULL || c->in_pool >= CONTROL_OFFLOOP_POOL))
        uv_idle_stop(idle);
}

/* Bytes arrived from a client. */
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct client *cl = s->data;
    (void)buf;
    if (n == UV_ENOBUFS) {
        pump(cl);
        return;
    }
    if (n < 0) {
        /* A request sent just before the client's shutdown is still answered. */
        uv_read_stop(s);
        cl->reading = false;
        cl->eof = true;
        if (n != UV_EOF || !has_line(cl))
            client_close(cl);
        else
            pump(cl);
        return;
    }
    cl->len += (size_t)n;
    pump(cl);
}

/* Drop clients whose replies have piled up unread for too long; close those
 * dropped long ago that still do not read. */
static void stall_tick(uv_timer_t *t)
{
    struct control *c = t->data;
    int64_t now = (int64_t)time_mono_ns(), limit = (int64_t)CONTROL_STALL_MS * 1000000;
    for (struct client *cl = c->clients, *next; cl; cl = next) {
        next = cl->next;
        if (cl->dropping_since_ns != 0 && now - cl->dropping_since_ns > limit) {
            client_close(cl);
        } else if (cl->dropping_since_ns == 0 && cl->full_since_ns != 0 && now - cl->full_since_ns > limit) {
            log_limited(&c->rl, 10000, LOG_WARN, "control", "dropping a client (%s) that does not "
                        "read its replies: none read for %d s (%zu bytes unsent)", cl->pub.user,
                        CONTROL_STALL_MS / 1000, queued_bytes(cl));
            char why[160];
            snprintf(why, sizeof why, "disconnected: replies unread for %d s (read your replies)",
                     CONTROL_STALL_MS / 1000);
            client_drop(cl, "dropped", why);
        }
    }
}

/* The protocol of cl's run request has loaded (or failed): run the request again with it. */
static void parse_done(struct plan_work *w)
{
    struct client *cl = w->arg;
    struct control *c = cl->pub.ctl;
    cl->parsing = NULL;
    if (cl->closed) {
        plan_work_free(w);
        client_free(cl);
        return;
    }
    json_t *req = cl->parse_req;
    cl->parse_req = NULL;
    if (cl->closing || c->closing) {
        plan_work_free(w);
        json_decref(req);
        return;
    }
    cl->pub.parsed = w;
    execute(cl, cl->parse_cmd, req, json_incref(json_object_get(req, "id")));
    if (cl->remote != NULL)
        remote_done(cl);
    else
        pump(cl);
}

/* Load a run request's protocol on the thread pool; the request is executed again when done. */
int control_load_protocol(struct ctl_client *pub, json_t *req, const struct rig *rig, const char *path,
                          const char *text)
{
    struct client *cl = (struct client *)pub;
    struct control *c = pub->ctl;
    if (cl->executing == NULL || !cl->executing->loads_protocol)
        return -EINVAL;             /* a table entry that loads must say so */
    if (cl->parsing != NULL)
        return -EBUSY;
    int rc = plan_work_start(c->loop, rig, path, text, strlen(text), parse_done, cl,
                             &cl->parsing);
    if (rc < 0)
        return rc;
    cl->parse_req = json_incref(req);
    cl->parse_cmd = cl->executing;
    return 0;
}


/* Thread pool: make the whole reply text: the head, the result, the end. */
static void offloop_work(struct workpool_req *w)
{
    struct offloop *o = w->data;
    FILE *out = open_memstream(&o->text, &o->len);
    if (out == NULL) {
        o->rc = -ENOMEM;
        return;
    }
    fputs(o->head, out);
    o->rc = o->write(o->arg, out);
    fputs(o->newline ? "}\n" : "}", out);
    if (fclose(out) != 0 && o->rc == 0)
        o->rc = -ENOMEM;
}

/* Free a reply made off the loop (its arg is freed on the loop). */
static void offloop_free(struct offloop *o)
{
    if (o->free_arg != NULL)
        o->free_arg(o->arg);
    json_decref(o->id);
    free(o->head);
    free(o->text);
    free(o);
}

/* Loop: the reply is made (or failed: o->rc); send it, or an error, unless
 * the client has gone. */
static void offloop_finish(struct offloop *o)
{
    struct client *cl = o->cl;
    struct control *c = cl->pub.ctl;
    c->making--;
    cl->making = NULL;
    if (cl->closed) {
        offloop_free(o);
        client_free(cl);
        return;
    }
    if (cl->closing || c->closing) {
        offloop_free(o);
        return;
    }
    if (o->rc < 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "cannot make the reply: %s", strerror(-o->rc));
        send_error(&cl->pub, o->id, o->rc, msg, NULL);
    } else if (cl->remote != NULL) {
        cl->remote_text(cl->remote_ctx, o->text);
        o->text = NULL;
    } else if (queued_bytes(cl) > CONTROL_MAX_QUEUED) {
        client_drop(cl, "dropped", "disconnected: more than 1 MiB of replies unread (read faster)");
    } else {
        queue_raw(cl, o->text, o->len);
        o->text = NULL;
    }
    offloop_free(o);
    if (cl->remote != NULL)
        remote_done(cl);
    else
        pump(cl);
}

/* Loop: the thread pool has made the reply. */
static void offloop_done(struct workpool_req *w, int status)
{
    struct offloop *o = w->data;
    struct control *c = o->cl->pub.ctl;
    if (status < 0 && o->rc == 0)
        o->rc = status;
    c->in_pool--;
    if (c->preparing != NULL && !c->closing)
        uv_idle_start(&c->work_idle, work_cb);     /* the next may go */
    offloop_finish(o);
}

/* Hand a prepared reply to the thread pool. */
static void offloop_queue(struct offloop *o)
{
    struct control *c = o->cl->pub.ctl;
    o->step = NULL;
    int rc = workpool_queue(c->loop, &o->work, offloop_work, offloop_done);
    if (rc < 0) {
        o->rc = -ENOMEM;
        offloop_finish(o);
        return;
    }
    c->in_pool++;
}

/* One piece of the first reply being prepared; it goes to the back of the
 * list, to the thread pool once prepared, or out with an error. */
static void prepare_step(struct control *c)
{
    struct offloop *o = c->preparing;
    c->preparing = o->next;
    if (c->preparing == NULL)
        c->preparing_tail = NULL;
    o->next = NULL;
    struct client *cl = o->cl;
    int rc = cl->closing || cl->closed || c->closing ? -ECANCELED : o->step ? o->step(o->arg) : 0;
    if (rc > 0) {
        if (c->preparing_tail)
            c->preparing_tail->next = o;
        else
            c->preparing = o;
        c->preparing_tail = o;
    } else if (rc == 0) {
        offloop_queue(o);
    } else {
        o->rc = rc;
        offloop_finish(o);
    }
}

/* The server closes: the replies being prepared are dropped. */
static void prepare_drop_all(struct control *c)
{
    while (c->preparing != NULL) {
        struct offloop *o = c->preparing;
        c->preparing = o->next;
        o->rc = -ECANCELED;
        offloop_finish(o);
    }
    c->preparing_tail = NULL;
}

int control_reply_off_loop(struct ctl_client *pub, json_t *id, control_step_fn step,
                           control_write_fn write, void (*free_arg)(void *arg), void *arg)
{
    struct client *cl = (struct client *)pub;
    struct control *c = pub->ctl;
    if (cl->remote != NULL && cl->remote_text == NULL)
        return -ENOTSUP;
    if (cl->making != NULL || c->making >= CONTROL_OFFLOOP_MAX || c->closing)
        return -EBUSY;
    struct offloop *o = calloc(1, sizeof *o);
    char *idtext = json_dumps(id ? id : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (o == NULL || idtext == NULL || asprintf(&o->head, "{\"id\":%s,\"ok\":true,\"result\":", idtext) < 0) {
        free(idtext);
        free(o);
        return -ENOMEM;
    }
    free(idtext);
    o->cl = cl;
    o->id = json_incref(id);
    o->newline = cl->remote == NULL;
    o->step = step;
    o->write = write;
    o->arg = arg;
    o->free_arg = free_arg;     /* from here on, arg is the server's */
    o->work.data = o;
    cl->making = o;
    c->making++;
    if (c->preparing_tail)
        c->preparing_tail->next = o;
    else
        c->preparing = o;
    c->preparing_tail = o;
    uv_idle_start(&c->work_idle, work_cb);
    return 0;
}

/* User names of recent clients. A name lookup may go through NSS (LDAP, sssd)
 * and take long; a burst of connections from one user costs one lookup, not
 * one each, and a name is looked up again after a minute. Loop thread only. */
#define USER_CACHE 16
#define USER_CACHE_TTL_NS (60 * 1000000000LL)
static struct {
    uid_t uid;
    bool valid, found;
    int64_t at_ns;
    char name[64];
} user_cache[USER_CACHE];
static size_t user_cache_next;

/* The name of uid (NULL if it has none), from the cache when it is fresh. */
static const char *user_name_cached(uid_t uid)
{
    int64_t now = (int64_t)time_mono_ns();
    for (size_t i = 0; i < USER_CACHE; i++)
        if (user_cache[i].valid && user_cache[i].uid == uid && now - user_cache[i].at_ns < USER_CACHE_TTL_NS)
            return user_cache[i].found ? user_cache[i].name : NULL;
    size_t k = user_cache_next++ % USER_CACHE;
    struct passwd pw, *res = NULL;
    char pwbuf[1024];
    user_cache[k].valid = true;
    user_cache[k].uid = uid;
    user_cache[k].at_ns = now;
    user_cache[k].found = getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &res) == 0 && res != NULL;
    if (user_cache[k].found)
        utf8_copy(user_cache[k].name, sizeof user_cache[k].name, pw.pw_name);
    return user_cache[k].found ? user_cache[k].name : NULL;
}
/* Fill in who is on the other end (SO_PEERCRED). */
static void identify(struct client *cl)
{
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof cred;
    snprintf(cl->pub.user, sizeof cl->pub.user, "unknown user");
    if (uv_fileno((uv_handle_t *)&cl->pipe, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return;
    cl->pub.uid = cred.uid;
    cl->pub.pid = cred.pid;
    const char *name = user_name_cached(cred.uid);
    if (name != NULL)
        utf8_format(cl->pub.user, sizeof cl->pub.user, "uid %u (%s)", (unsigned)cred.uid, name);
    else
        snprintf(cl->pub.user, sizeof cl->pub.user, "uid %u", (unsigned)cred.uid);
}

/* A refused connection's pipe is closed. */
static void refused_closed(uv_handle_t *h)
{
    struct control *c = h->data;
    free(h);
    handle_released(c);
}

/* Accept a connection over the cap, tell it why in one line, and close it. */
static void refuse_connection(struct control *c, uv_stream_t *server)
{
    uv_pipe_t *p = malloc(sizeof *p);
    if (p == NULL)
        return;
    uv_pipe_init(server->loop, p, 0);
    p->data = c;
    c->open_handles++;
    if (uv_accept(server, (uv_stream_t *)p) == 0) {
        char line[200];
        int n = snprintf(line, sizeof line, "{\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":"
                         "\"too many connections (%d); try again later\"}}\n", c->max_clients);
        uv_buf_t b = uv_buf_init(line, (unsigned)n);
        uv_try_write((uv_stream_t *)p, &b, 1);
        log_limited(&c->rl, 10000, LOG_WARN, "control", "refusing a connection: %d clients "
                    "connected already (the limit)", c->max_clients);
    }
    uv_close((uv_handle_t *)p, refused_closed);
}

/* A client connected: accept, greet, read. */
static void connection_cb(uv_stream_t *server, int status)
{
    struct control *c = server->data;
    if (status < 0)
        return;
    bool ro = server == (uv_stream_t *)&c->ro_server;
    if (c->n_clients[ro] >= c->max_clients) {
        refuse_connection(c, server);
        return;
    }
    struct client *cl = calloc(1, sizeof *cl);
    if (cl == NULL)
        return;
    cl->pub.ctl = c;
    cl->pub.read_only = ro;
    uv_pipe_init(server->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    c->open_handles++;
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0) {
        cl->closing = true;
        uv_close((uv_handle_t *)&cl->pipe, client_closed);
        return;
    }
    cl->next = c->clients;
    c->clients = cl;
    c->n_clients[ro]++;
    identify(cl);
    json_t *hello = json_pack("{s:s,s:i,s:[i,i]}", "perfused", PERFUSE_VERSION, "protocol",
                              CONTROL_PROTOCOL_BASE, "protocols", CONTROL_PROTOCOL_BASE,
                              CONTROL_PROTOCOL_VERSION);
    if (cl->pub.read_only && hello)
        json_object_set_new(hello, "read_only", json_true());
    control_send(&cl->pub, hello);
    pump(cl);
}

static void server_closed(uv_handle_t *h);

/* The group called name, for a socket's owner group. */
static int lookup_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
    struct group gr, *res = NULL;
    char buf[4096];
    int e = getgrnam_r(name, &gr, buf, sizeof buf, &res);
    if (res == NULL) {
        snprintf(err, errlen, "unknown group '%s'%s%s (create it with: groupadd %s)", name,
                 e ? ": " : "", e ? strerror(e) : "", name);
        return -ENOENT;
    }
    *gid = gr.gr_gid;
    return 0;
}

/* Bind srv at path with mode (and group, if named) and listen. */
static int open_server(uv_pipe_t *srv, const char *path, mode_t mode,
                       const char *group, char *err, size_t errlen)
{
    gid_t gid = (gid_t)-1;
    int rc = group ? lookup_group(group, &gid, err, errlen) : 0;
    if (rc < 0)
        return rc;
    mode_t old = umask(0177);
    rc = uv_pipe_bind(srv, path);
    umask(old);
    if (rc == 0 && gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot give %s to group '%s': %s (the daemon's user must be a "
                 "member of the group)", path, group, strerror(errno));
        return rc;
    }
    if (rc == 0 && chmod(path, mode) < 0)
        rc = -errno;
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)srv, SOMAXCONN, connection_cb);
    if (rc < 0)
        snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
    return rc;
}

/* Open the control socket and the read-only socket. */
int control_start(struct control **out, uv_loop_t *loop, const struct control_config *cfg,
                  const struct ctl_table *table, const struct control_hooks *hooks, char *err,
                  size_t errlen)
{
    *out = NULL;
    struct control *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->table = table;
    c->hooks = *hooks;
    c->max_clients = cfg->max_clients > 0 ? cfg->max_clients : CONTROL_MAX_CLIENTS;
    const char *path = cfg->socket_path;
    if (path != NULL && strlen(path) >= sizeof c->path) {
        snprintf(err, errlen, "socket path too long (at most %zu bytes): %s", sizeof c->path - 1, path);
        free(c);
        return -ENAMETOOLONG;
    }
    if (path != NULL)
        snprintf(c->path, sizeof c->path, "%s", path);
    else
        sockpath_default(c->path, sizeof c->path);
    const char *ro = cfg->ro_socket_path;
    bool want_ro = ro == NULL || strcmp(ro, "none") != 0;
    if (ro != NULL && want_ro && strlen(ro) >= sizeof c->ro_path) {
        snprintf(err, errlen, "read-only socket path too long (at most %zu bytes): %s",
                 sizeof c->ro_path - 1, ro);
        free(c);
        return -ENAMETOOLONG;
    }
    if (ro != NULL && want_ro)
        snprintf(c->ro_path, sizeof c->ro_path, "%s", ro);
    else if (want_ro)
        sockpath_default_ro(c->path, c->ro_path, sizeof c->ro_path);
    if (want_ro && strcmp(c->ro_path, c->path) == 0) {
        snprintf(err, errlen, "the read-only socket cannot be the control socket (%s)", c->path);
        free(c);
        return -EINVAL;
    }
    int rc = sockpath_prepare(c->path, err, errlen);
    if (rc == 0 && want_ro)
        rc = sockpath_prepare(c->ro_path, err, errlen);
    if (rc < 0) {
        free(c);
        return rc;
    }
    uv_pipe_init(loop, &c->server, 0);
    c->server.data = c;
    uv_pipe_init(loop, &c->ro_server, 0);
    c->ro_server.data = c;
    uv_timer_init(loop, &c->watch_timer);
    c->watch_timer.data = c;
    uv_timer_init(loop, &c->retry_timer);
    c->retry_timer.data = c;
    uv_timer_init(loop, &c->stall_timer);
    c->stall_timer.data = c;
    uv_idle_init(loop, &c->work_idle);
    c->work_idle.data = c;
    c->open_handles = 6;
    rc = open_server(&c->server, c->path, 0660, cfg->socket_group, err, errlen);
    if (rc == 0 && want_ro) {
        rc = open_server(&c->ro_server, c->ro_path, cfg->ro_socket_group ? 0660 : 0666,
                         cfg->ro_socket_group, err, errlen);
        c->ro_open = rc == 0;
        if (rc < 0)
            unlink(c->path);
    }
    if (rc < 0) {
        c->closing = true;
        *out = NULL;
        /* c is freed by the close callbacks, on the next loop turn */
        uv_close((uv_handle_t *)&c->server, server_closed);
        uv_close((uv_handle_t *)&c->ro_server, server_closed);
        uv_close((uv_handle_t *)&c->watch_timer, server_closed);
        uv_close((uv_handle_t *)&c->retry_timer, server_closed);
        uv_close((uv_handle_t *)&c->stall_timer, server_closed);
        uv_close((uv_handle_t *)&c->work_idle, server_closed);
        return rc;
    }
    if (c->ro_open)
        log_info("control", "read-only socket %s (%s)", c->ro_path,
                 cfg->ro_socket_group ? cfg->ro_socket_group : "anyone may connect");
    uv_timer_start(&c->stall_timer, stall_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&c->stall_timer);
    *out = c;
    return 0;
}

/* The server handle or the watch timer is closed. */
static void server_closed(uv_handle_t *h)
{
    handle_released(h->data);
}

/* Close the sockets and every client. */
void control_close(struct control *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    while (c->clients)
        client_close(c->clients);
    remote_close_all(c);
    prepare_drop_all(c);
    unlink(c->path);
    if (c->ro_open)
        unlink(c->ro_path);
    uv_close((uv_handle_t *)&c->server, server_closed);
    uv_close((uv_handle_t *)&c->ro_server, server_closed);
    uv_close((uv_handle_t *)&c->watch_timer, server_closed);
    uv_close((uv_handle_t *)&c->retry_timer, server_closed);
    uv_close((uv_handle_t *)&c->stall_timer, server_closed);
    uv_close((uv_handle_t *)&c->work_idle, server_closed);
}

/* The run's events a watcher has not seen yet, at most CONTROL_WATCH_EVENTS
 * (the rest come with the next updates). */
static json_t *new_events(struct client *cl)
{
    struct control *c = cl->pub.ctl;
    json_t *list = json_array();
    uint64_t first, total;
    const char *run = c->hooks.events(c->hooks.ctx, &cl->pub, &first, &total);
    if (run == NULL)
        return list;
    if (strcmp(run, cl->watch_run_id) != 0) {
        snprintf(cl->watch_run_id, sizeof cl->watch_run_id, "%s", run);
        cl->watch_seq = 0;
    }
    if (cl->watch_seq < first)
        cl->watch_seq = first;
    for (; cl->watch_seq < total && json_array_size(list) < CONTROL_WATCH_EVENTS; cl->watch_seq++) {
        json_t *e = c->hooks.event(c->hooks.ctx, &cl->pub, cl->watch_seq);
        if (e != NULL)
            json_array_append_new(list, e);
    }
    return list;
}

/* Send each due watcher a status and the events since its last one. */
static void watch_tick(uv_timer_t *t)
{
    struct control *c = t->data;
    int64_t now = (int64_t)time_mono_ns();
    for (struct client *cl = c->clients, *next; cl; cl = next) {
        next = cl->next;        /* control_send may drop cl */
        if (!cl->watching || now < cl->watch_next_ns || blocked(cl) || cl->stream.active)
            continue;   /* a client whose replies pile up gets the next one */
        cl->watch_next_ns += cl->watch_every_ns;
        if (cl->watch_next_ns < now)
            cl->watch_next_ns = now + cl->watch_every_ns;
        json_t *events = new_events(cl);
        control_send(&cl->pub, json_pack("{s:o,s:o}", "watch", c->hooks.status(c->hooks.ctx, &cl->pub),
                                         "events", events));
    }
}

/* Send cl a status every interval seconds from now on. */
int control_add_watcher(struct ctl_client *pub, double interval_s)
{
    struct client *cl = (struct client *)pub;
    struct control *c = pub->ctl;
    cl->watch_every_ns = (int64_t)(interval_s * 1e9);
    cl->watch_next_ns = (int64_t)time_mono_ns() + cl->watch_every_ns;
    /* Events already in the log come with the first reply's status, not again. */
    uint64_t first, total;
    const char *run = c->hooks.events(c->hooks.ctx, &cl->pub, &first, &total);
    snprintf(cl->watch_run_id, sizeof cl->watch_run_id, "%s", run ? run : "");
    cl->watch_seq = run ? total : 0;
    if (!cl->watching) {
        cl->watching = true;
        if (c->watchers++ == 0)
            uv_timer_start(&c->watch_timer, watch_tick, 100, 100);
    }
    return 0;
}

/* Register cl to be answered when the current run's file closes. */
int control_add_waiter(struct ctl_client *pub, json_t *id)
{
    struct client *cl = (struct client *)pub;
    json_decref(cl->wait_id);
    cl->wait_id = id ? json_incref(id) : json_null();
    return 0;
}

/* Execute cl's deferred request again. */
static void retry_request(struct client *cl)
{
    json_t *req = cl->retry_req, *id = json_incref(json_object_get(req, "id"));
    cl->retry_req = NULL;
    cl->pub.retrying = true;
    execute(cl, cl->retry_cmd, req, id);
    cl->pub.retrying = false;
}

/* Run the deferred requests again (run's file closed, or their time is up). */
static void retry_tick(uv_timer_t *t)
{
    struct control *c = t->data;
    struct client *next;
    for (struct client *cl = c->clients; cl; cl = next) {
        next = cl->next;        /* a reply that fails closes the client */
        if (cl->retry_req != NULL)
            retry_request(cl);
    }
    remote_retry(c);
}

int control_retry_after_close(struct ctl_client *pub, json_t *req, const char *cmd,
                              unsigned timeout_ms)
{
    struct client *cl = (struct client *)pub;
    struct control *c = pub->ctl;
    const struct ctl_command *k = ctl_table_find(c->table, cmd);
    if (k == NULL || cl->retry_req != NULL)
        return -EBUSY;
    cl->retry_req = json_incref(req);
    cl->retry_cmd = k;
    if (!uv_is_active((uv_handle_t *)&c->retry_timer) || uv_timer_get_due_in(&c->retry_timer) > timeout_ms)
        uv_timer_start(&c->retry_timer, retry_tick, timeout_ms, 0);
    return 0;
}

/* Answer every waiter for run_id (or for no run in particular) with the run's final state. */
void control_run_closed(struct control *c, const char *run_id)
{
    if (c == NULL || c->closing)
        return;
    /* Not from here: a deferred run would free the run whose callback this is. */
    for (struct client *cl = c->clients; cl; cl = cl->next)
        if (cl->retry_req != NULL)
            uv_timer_start(&c->retry_timer, retry_tick, 0, 0);
    for (struct client *cl = c->remotes; cl; cl = cl->next)
        if (cl->retry_req != NULL)
            uv_timer_start(&c->retry_timer, retry_tick, 0, 0);
    for (struct client *cl = c->clients; cl; cl = cl->next) {
        if (cl->wait_id == NULL ||
            (cl->pub.run_sel[0] != '\0' && run_id != NULL && strcmp(cl->pub.run_sel, run_id) != 0))
            continue;
        json_t *result = c->hooks.status(c->hooks.ctx, &cl->pub);
        control_send(&cl->pub, json_pack("{s:O,s:b,s:o}", "id", cl->wait_id, "ok", 1, "result", result));
        json_decref(cl->wait_id);
        cl->wait_id = NULL;
    }
}

/* Remote requests (controller/MQTT.md): a client without a pipe, one per
 * request, kept while its request is deferred. */

/* Free a remote request's client once nothing of its request is pending. */
static void remote_done(struct client *cl)
{
    if (cl->parsing != NULL || cl->making != NULL || cl->retry_req != NULL)
        return;
    struct control *c = cl->pub.ctl;
    for (struct client **p = &c->remotes; *p; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            break;
        }
    client_free(cl);
}

/* Run the remote requests deferred until the last run's file closed. */
static void remote_retry(struct control *c)
{
    struct client *next;
    for (struct client *cl = c->remotes; cl; cl = next) {
        next = cl->next;
        if (cl->retry_req == NULL)
            continue;
        retry_request(cl);
        remote_done(cl);
    }
}

/* The server closes: pending remote requests get no reply; one whose protocol
 * is loading is freed when the load is done. */
static void remote_close_all(struct control *c)
{
    while (c->remotes) {
        struct client *cl = c->remotes;
        c->remotes = cl->next;
        cl->remote = NULL;
        cl->closing = true;
        if (cl->parsing != NULL || cl->making != NULL)
            cl->closed = true;
        else
            client_free(cl);
    }
}

/* Parse and execute a remote request as a client without a pipe would. */
void control_remote_request(struct control *c, const struct control_remote *r, const char *line,
                            size_t len)
{
    control_reply_fn reply = r->reply;
    void *ctx = r->ctx;
    if (c == NULL || c->closing) {
        reply(ctx, json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", "failed", "message",
                             "the daemon is shutting down"));
        return;
    }
    struct client *cl = calloc(1, sizeof *cl);
    if (cl == NULL) {
        reply(ctx, json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", "failed", "message",
                             "out of memory"));
        return;
    }
    cl->pub.ctl = c;
    cl->remote = reply;
    cl->remote_text = r->reply_text;
    cl->remote_ctx = ctx;
    cl->pub.read_only = r->read_only;
    utf8_copy(cl->pub.user, sizeof cl->pub.user, r->who);
    c->open_handles++;          /* released by client_free */
    cl->next = c->remotes;
    c->remotes = cl;
    char err[1024] = "";
    json_t *req, *id;
    const struct ctl_command *cmd;
    int rc = request_parse(c->table, line, len, &req, &cmd, &id, err, sizeof err);
    if (rc == 0 && (strcmp(cmd->name, "watch") == 0 || strcmp(cmd->name, "wait") == 0)) {
        snprintf(err, sizeof err, "'%s' is served on the control socket only; over MQTT, subscribe "
                 "to the rig's status and events topics instead", cmd->name);
        rc = -EINVAL;
        json_decref(req);
    } else if (rc == 0 && r->read_only && !cmd->read_only) {
        snprintf(err, sizeof err, "'%s' is refused here: it would change something, and only "
                 "commands that change nothing are served here%s%s", cmd->name,
                 r->refused_hint ? "; " : "", r->refused_hint ? r->refused_hint : "");
        rc = -EACCES;
        json_decref(req);
    }
    if (rc < 0)
        send_error(&cl->pub, id, rc, err, NULL);
    else
        execute(cl, cmd, json_incref(req), json_incref(id));
    if (rc == 0)
        json_decref(req);
    json_decref(id);
    remote_done(cl);
}
