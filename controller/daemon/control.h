/*
 * The control server: the daemon's Unix socket. One JSON request per line,
 * one JSON reply per line; the first line the server sends is a greeting with
 * the protocol version. Loop thread only.
 */
#ifndef PERFUSE_CONTROL_H
#define PERFUSE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct daemon;
struct control;
struct run;
struct plan_work;

/* One connected client, as command handlers see it. */
struct ctl_client {
    struct control *ctl;
    uid_t uid;
    pid_t pid;
    char user[96];              /* "uid 1000 (alice)" for the audit trail */
    bool retrying;              /* the handler runs a request it deferred before */
    bool read_only;             /* connected to the read-only socket */
    struct plan_work *parsed;   /* a run request's protocol, loaded on the thread pool
                                 * (owned by the control server; take ->plan) */
};

/* Open the socket at path (NULL: the default), mode 0660, and the read-only
 * socket (d->cfg.ro_socket_path, default perfused-ro.sock beside it, "none":
 * no such socket), mode 0666 or 0660 with its group; listen backlog SOMAXCONN.
 * Refuses if another daemon answers there; replaces a stale socket. Returns 0 or a negative errno with a
 * message in err. */
int control_start(struct control **out, struct daemon *d, const char *path, char *err,
                  size_t errlen);
/* The socket's path. */
const char *control_path(const struct control *c);
/* Close the socket and every client; frees once libuv has released the handles. */
void control_close(struct control *c);

/* The daemon a handler runs in. */
struct daemon *control_daemon(struct control *c);
/* Send a JSON reply line to client (steals the reference). */
void control_send(struct ctl_client *cl, json_t *msg);
/* Register cl to be answered with id when the current run's file closes. */
int control_add_waiter(struct ctl_client *cl, json_t *id);
/* Send cl the status every interval_s seconds (with the run's new events)
 * until it disconnects; a watcher that does not read is dropped. */
int control_add_watcher(struct ctl_client *cl, double interval_s);
/* Run cmd with req again once the current run's file has closed, or after
 * timeout_ms at the latest (the handler then sees cl->retrying and must not
 * defer again). Takes a reference to req. */
int control_retry_after_close(struct ctl_client *cl, json_t *req, const char *cmd,
                              unsigned timeout_ms);
/* Load a run request's protocol text on the thread pool; when it is done the
 * request is executed again with cl->parsed set. 0 or a negative errno. */
int control_load_protocol(struct ctl_client *cl, json_t *req, const char *path, const char *text);
/* Reply to cl's events request id with one page of the current run's events
 * (seq >= cursor, time >= since, at most limit and about CONTROL_EVENTS_BYTES),
 * written a few events per loop turn, paused while cl does not read. */
int control_stream_events(struct ctl_client *cl, json_t *id, double since, uint64_t cursor, size_t limit);
/* Answer every waiter (called when the run's file closes). */
void control_run_closed(struct daemon *d, struct run *r);

/* Takes a remote request's reply (a new reference). */
typedef void (*control_reply_fn)(void *ctx, json_t *msg);
/* Handle one request that came from outside the sockets (the MQTT client) as
 * if a client of the control socket had sent line: the same parser, command
 * table and checks. who names the sender in the audit trail ("mqtt user
 * alice"). Replies go to reply(ctx, msg), now or (a run whose protocol loads
 * on the thread pool) later; ctx must stay valid until control_close. watch,
 * wait and events are refused: they stream on a socket. */
void control_remote_request(struct control *c, const char *who, const char *line, size_t len,
                            control_reply_fn reply, void *ctx);

/* The default socket path: $PERFUSE_SOCKET, $XDG_RUNTIME_DIR/perfuse/perfused.sock,
 * else /run/perfuse/perfused.sock. */
void control_default_path(char *buf, size_t len);
/* The default read-only socket: perfused-ro.sock in socket_path's directory. */
void control_default_ro_path(const char *socket_path, char *buf, size_t len);

#endif
