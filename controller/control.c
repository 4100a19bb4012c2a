/* The control server: JSON lines on the daemon's Unix socket. */
#include "control.h"
#include "sockpath.h"
#include "commands.h"
#include "control_proto.h"
#include "control_request.h"
#include "daemon.h"
#include "log.h"
#include "run.h"
#include "timeutil.h"
#include "utf8.h"

#include <errno.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct client {
    struct ctl_client pub;
    uv_pipe_t pipe;
    char *buf;                  /* partial request line */
    size_t len;
    bool closing;
    json_t *wait_id;            /* set while waiting for the run to end */
    json_t *retry_req;          /* a request to run again once the run's file closes */
    const struct ctl_command *retry_cmd;
    bool watching;
    int64_t watch_every_ns, watch_next_ns;
    double watch_events_after;  /* run time of the last event sent to this watcher */
    const struct run *watch_run;
    struct client *next;
};

struct control {
    struct daemon *d;
    uv_pipe_t server;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct client *clients;
    uv_timer_t watch_timer;     /* ticks while anyone watches */
    uv_timer_t retry_timer;     /* runs deferred requests, outside the run's callbacks */
    int watchers;
    int open_handles;
    bool closing;
    struct log_ratelimit rl;
};

/* The default socket path. */
void control_default_path(char *buf, size_t len)
{
    const char *env = getenv("PERFUSE_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        snprintf(buf, len, "%s", env);
    else if (xdg && *xdg)
        snprintf(buf, len, "%s/perfuse/perfused.sock", xdg);
    else
        snprintf(buf, len, "/run/perfuse/perfused.sock");
}

const char *control_path(const struct control *c)
{
    return c->path;
}

struct daemon *control_daemon(struct control *c)
{
    return c->d;
}

/* Free the control struct once its last handle is closed. */
static void handle_released(struct control *c)
{
    if (--c->open_handles == 0 && c->closing)
        free(c);
}

/* A client's pipe is closed: free it. */
static void client_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    struct control *c = cl->pub.ctl;
    free(cl->buf);
    json_decref(cl->wait_id);
    json_decref(cl->retry_req);
    free(cl);
    handle_released(c);
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
    for (struct client **p = &c->clients; *p; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            break;
        }
    uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

/* A reply was written (or failed): free its buffer. */
static void write_done(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

/* Send a JSON line to a client; drop a client that does not read its replies. */
void control_send(struct ctl_client *pub, json_t *msg)
{
    struct client *cl = (struct client *)pub;
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text == NULL || cl->closing) {
        free(text);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&cl->pipe) > CONTROL_MAX_QUEUED) {
        log_limited(&cl->pub.ctl->rl, 10000, LOG_WARN, "control",
                    "dropping a client (%s) that does not read its replies", cl->pub.user);
        free(text);
        /* Say why, if the socket has room for one more line; never wait for it. */
        static const char why[] = "{\"ok\":false,\"error\":{\"code\":\"dropped\",\"message\":"
            "\"disconnected: more than 1 MiB of replies unread (read faster, or watch less often)\"}}\n";
        uv_buf_t b = uv_buf_init((char *)why, sizeof why - 1);
        uv_try_write((uv_stream_t *)&cl->pipe, &b, 1);
        client_close(cl);
        return;
    }
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (line == NULL) {
        free(text);
        return;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    uv_write_t *w = malloc(sizeof *w);
    if (w == NULL) {
        free(line);
        return;
    }
    w->data = line;
    uv_buf_t b = uv_buf_init(line, (unsigned)(n + 1));
    if (uv_write(w, (uv_stream_t *)&cl->pipe, &b, 1, write_done) < 0) {
        free(line);
        free(w);
        client_close(cl);
    }
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

/* Parse and execute one request line. */
static void handle_line(struct client *cl, const char *line, size_t len)
{
    char err[1024] = "";
    json_t *req, *id;
    const struct ctl_command *cmd;
    int rc = request_parse(line, len, &req, &cmd, &id, err, sizeof err);
    if (rc < 0) {
        send_error(&cl->pub, id, rc, err, NULL);
        json_decref(id);
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
    int rc = cmd->exec(&cl->pub, req, result, err, sizeof err);
    if (rc == CMD_DEFERRED) {
        json_decref(result);
    } else if (rc < 0) {
        json_t *extra = json_object_get(result, "diagnostics") ? json_pack("{s:O}", "diagnostics",
                        json_object_get(result, "diagnostics")) : NULL;
        send_error(&cl->pub, id, rc, err[0] ? err : strerror(-rc), extra);
        json_decref(result);
    } else {
        control_send(&cl->pub, json_pack("{s:O?,s:b,s:o}", "id", id, "ok", 1, "result", result));
    }
    json_decref(id);
    json_decref(req);
}

/* Allocate read buffers. */
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

/* Bytes arrived from a client: split lines, bound their length. */
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct client *cl = s->data;
    if (n < 0) {
        free(buf->base);
        client_close(cl);
        return;
    }
    for (ssize_t i = 0; i < n && !cl->closing; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            if (cl->len > 0)
                handle_line(cl, cl->buf, cl->len);
            cl->len = 0;
            continue;
        }
        if (cl->len >= CONTROL_MAX_LINE) {
            send_error(&cl->pub, NULL, -EPROTO, "request line longer than 64 KiB; closing", NULL);
            client_close(cl);
            break;
        }
        if (cl->buf == NULL) {
            cl->buf = malloc(CONTROL_MAX_LINE + 1);
            if (cl->buf == NULL) {
                client_close(cl);
                break;
            }
        }
        cl->buf[cl->len++] = ch;
    }
    free(buf->base);
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
    struct passwd pw, *res = NULL;
    char pwbuf[1024];
    if (getpwuid_r(cred.uid, &pw, pwbuf, sizeof pwbuf, &res) == 0 && res)
        utf8_format(cl->pub.user, sizeof cl->pub.user, "uid %u (%s)", (unsigned)cred.uid, pw.pw_name);
    else
        snprintf(cl->pub.user, sizeof cl->pub.user, "uid %u", (unsigned)cred.uid);
}

/* A client connected: accept, greet, read. */
static void connection_cb(uv_stream_t *server, int status)
{
    struct control *c = server->data;
    if (status < 0)
        return;
    struct client *cl = calloc(1, sizeof *cl);
    if (cl == NULL)
        return;
    cl->pub.ctl = c;
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
    identify(cl);
    control_send(&cl->pub, json_pack("{s:s,s:i}", "perfused", PERFUSE_VERSION, "protocol",
                                     CONTROL_PROTOCOL_VERSION));
    uv_read_start((uv_stream_t *)&cl->pipe, alloc_cb, read_cb);
}

static void server_closed(uv_handle_t *h);

/* Open the control socket. */
int control_start(struct control **out, struct daemon *d, const char *path, char *err,
                  size_t errlen)
{
    struct control *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->d = d;
    if (path != NULL && strlen(path) >= sizeof c->path) {
        snprintf(err, errlen, "socket path too long (at most %zu bytes): %s", sizeof c->path - 1, path);
        free(c);
        return -ENAMETOOLONG;
    }
    if (path != NULL)
        snprintf(c->path, sizeof c->path, "%s", path);
    else
        control_default_path(c->path, sizeof c->path);
    int rc = sockpath_prepare(c->path, err, errlen);
    if (rc < 0) {
        free(c);
        return rc;
    }
    uv_pipe_init(d->loop, &c->server, 0);
    c->server.data = c;
    uv_timer_init(d->loop, &c->watch_timer);
    c->watch_timer.data = c;
    uv_timer_init(d->loop, &c->retry_timer);
    c->retry_timer.data = c;
    c->open_handles = 3;
    mode_t old = umask(0117);
    rc = uv_pipe_bind(&c->server, c->path);
    umask(old);
    if (rc == 0) {
        chmod(c->path, 0660);
        rc = uv_listen((uv_stream_t *)&c->server, 16, connection_cb);
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", c->path, uv_strerror(rc));
        c->closing = true;
        *out = NULL;
        /* c is freed by the close callbacks, on the next loop turn */
        uv_close((uv_handle_t *)&c->server, server_closed);
        uv_close((uv_handle_t *)&c->watch_timer, server_closed);
        uv_close((uv_handle_t *)&c->retry_timer, server_closed);
        return rc;
    }
    *out = c;
    return 0;
}

/* The server handle or the watch timer is closed. */
static void server_closed(uv_handle_t *h)
{
    handle_released(h->data);
}

/* Close the socket and every client. */
void control_close(struct control *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    while (c->clients)
        client_close(c->clients);
    unlink(c->path);
    uv_close((uv_handle_t *)&c->server, server_closed);
    uv_close((uv_handle_t *)&c->watch_timer, server_closed);
    uv_close((uv_handle_t *)&c->retry_timer, server_closed);
}

/* Collect a run's events that a watcher has not seen yet. */
struct new_events {
    json_t *list;
    double after;
};

static void add_new_event(const struct run_event_rec *e, void *arg)
{
    struct new_events *n = arg;
    if (!(e->t > n->after))
        return;
    json_array_append_new(n->list, json_pack("{s:f,s:s,s:s,s:s,s:s}", "time", e->t, "severity",
                                             e->severity, "source", e->source, "code", e->code,
                                             "message", e->message));
    n->after = e->t;
}

/* Send each due watcher a status and the events since its last one. */
static void watch_tick(uv_timer_t *t)
{
    struct control *c = t->data;
    int64_t now = (int64_t)time_mono_ns();
    for (struct client *cl = c->clients, *next; cl; cl = next) {
        next = cl->next;        /* control_send may drop cl */
        if (!cl->watching || now < cl->watch_next_ns)
            continue;
        cl->watch_next_ns += cl->watch_every_ns;
        if (cl->watch_next_ns < now)
            cl->watch_next_ns = now + cl->watch_every_ns;
        struct run *r = c->d->run;
        if (r != cl->watch_run) {
            cl->watch_run = r;
            cl->watch_events_after = -1;
        }
        struct new_events ne = { .list = json_array(), .after = cl->watch_events_after };
        if (r != NULL)
            run_events_each(r, add_new_event, &ne);
        cl->watch_events_after = ne.after;
        control_send(&cl->pub, json_pack("{s:o,s:o}", "watch", command_status(&cl->pub), "events", ne.list));
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
    cl->watch_run = c->d->run;
    struct new_events ne = { .list = json_array(), .after = -1 };
    if (c->d->run != NULL)
        run_events_each(c->d->run, add_new_event, &ne);
    json_decref(ne.list);
    cl->watch_events_after = ne.after;
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

/* Run the deferred requests again (run's file closed, or their time is up). */
static void retry_tick(uv_timer_t *t)
{
    struct control *c = t->data;
    struct client *next;
    for (struct client *cl = c->clients; cl; cl = next) {
        next = cl->next;        /* a reply that fails closes the client */
        if (cl->retry_req == NULL)
            continue;
        json_t *req = cl->retry_req, *id = json_incref(json_object_get(req, "id"));
        cl->retry_req = NULL;
        cl->pub.retrying = true;
        execute(cl, cl->retry_cmd, req, id);
        cl->pub.retrying = false;
    }
}

int control_retry_after_close(struct ctl_client *pub, json_t *req, const char *cmd,
                              unsigned timeout_ms)
{
    struct client *cl = (struct client *)pub;
    struct control *c = pub->ctl;
    const struct ctl_command *k = command_find(cmd);
    if (k == NULL || cl->retry_req != NULL)
        return -EBUSY;
    cl->retry_req = json_incref(req);
    cl->retry_cmd = k;
    if (!uv_is_active((uv_handle_t *)&c->retry_timer) || uv_timer_get_due_in(&c->retry_timer) > timeout_ms)
        uv_timer_start(&c->retry_timer, retry_tick, timeout_ms, 0);
    return 0;
}

/* Answer every waiter with the run's final state. */
void control_run_closed(struct daemon *d, struct run *r)
{
    (void)r;
    struct control *c = d->control;
    if (c == NULL || c->closing)
        return;
    /* Not from here: a deferred run would free the run whose callback this is. */
    for (struct client *cl = c->clients; cl; cl = cl->next)
        if (cl->retry_req != NULL)
            uv_timer_start(&c->retry_timer, retry_tick, 0, 0);
    for (struct client *cl = c->clients; cl; cl = cl->next) {
        if (cl->wait_id == NULL)
            continue;
        json_t *result = json_object();
        char err[256];
        const struct ctl_command *status = command_find("status");
        status->exec(&cl->pub, NULL, result, err, sizeof err);
        control_send(&cl->pub, json_pack("{s:O,s:b,s:o}", "id", cl->wait_id, "ok", 1, "result", result));
        json_decref(cl->wait_id);
        cl->wait_id = NULL;
    }
}
