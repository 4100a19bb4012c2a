/* The client side of the control protocol. Blocking. */
#include "ctlclient.h"
#include "base/control_proto.h"
#include "base/sockpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct ctlclient {
    int fd;
    char *buf;
    size_t len, cap;
    json_int_t next_id;
    char version[32];
};

/* Read one line (without the newline) into a malloc'd string. */
static int read_line(struct ctlclient *c, char **line)
{
    for (;;) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->buf);
            *line = strndup(c->buf, n);
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return *line ? 0 : -ENOMEM;
        }
        if (c->len + 4096 > c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 8192;
            char *b = realloc(c->buf, cap);
            if (b == NULL)
                return -ENOMEM;
            c->buf = b;
            c->cap = cap;
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ECONNRESET;
        c->len += (size_t)r;
    }
}

/* Connect and read the greeting. */
int ctlclient_connect(const char *path, struct ctlclient **out, char *err, size_t errlen)
{
    struct ctlclient *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot reach perfused at %s: %s (is the daemon running? "
                 "start it with 'perfused --sim' or give --socket PATH)", path, strerror(e));
        ctlclient_close(c);
        return -e;
    }
    /* Nothing is sent, nor anything read believed, before the server is known
     * to run as the expected user: another user's program at this path could
     * otherwise be handed an abort or show a false status. */
    int crc = sockpath_check_server(c->fd, path, err, errlen);
    if (crc < 0) {
        ctlclient_close(c);
        return crc;
    }
    char *line = NULL;
    int rc = read_line(c, &line);
    json_t *g = rc == 0 ? json_loads(line, 0, NULL) : NULL;
    free(line);
    json_int_t proto = json_integer_value(json_object_get(g, "protocol"));
    const char *ver = json_string_value(json_object_get(g, "perfused"));
    /* Version 1 daemons greet with 1 alone: they run one protocol at a time,
     * and refuse what only version 2 has (--run, --name) by name. */
    if (g == NULL || ver == NULL || (proto != CONTROL_PROTOCOL_BASE && proto != CONTROL_PROTOCOL_VERSION)) {
        snprintf(err, errlen, "%s does not speak control protocol %d or %d%s", path, CONTROL_PROTOCOL_BASE,
                 CONTROL_PROTOCOL_VERSION, g ? " (version mismatch: update perfusectl or perfused)" : "");
        json_decref(g);
        ctlclient_close(c);
        return -EPROTO;
    }
    snprintf(c->version, sizeof c->version, "%s", ver);
    json_decref(g);
    *out = c;
    return 0;
}

/* The next message, whatever it is. */
int ctlclient_next(struct ctlclient *c, json_t **msg, char *err, size_t errlen)
{
    for (;;) {
        char *line = NULL;
        int rc = read_line(c, &line);
        if (rc < 0) {
            snprintf(err, errlen, "the daemon closed the connection (%s)", strerror(-rc));
            return rc;
        }
        json_t *j = json_loads(line, 0, NULL);
        free(line);
        if (j != NULL) {
            *msg = j;
            return 0;
        }
    }
}

/* Send a request and wait for its reply. */
int ctlclient_call(struct ctlclient *c, json_t *req, json_t **reply, char *err, size_t errlen)
{
    json_int_t id = ++c->next_id;
    json_object_set_new(req, "id", json_integer(id));
    char *text = json_dumps(req, JSON_COMPACT);
    if (text == NULL)
        return -ENOMEM;
    size_t n = strlen(text);
    text[n] = '\n';
    size_t off = 0;
    while (off < n + 1) {
        ssize_t w = write(c->fd, text + off, n + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            snprintf(err, errlen, "lost the daemon: %s", strerror(errno));
            free(text);
            return -errno;
        }
        off += (size_t)w;
    }
    free(text);
    for (;;) {
        char *line = NULL;
        int rc = read_line(c, &line);
        if (rc < 0) {
            snprintf(err, errlen, "lost the daemon: %s", strerror(-rc));
            return rc;
        }
        json_t *j = json_loads(line, 0, NULL);
        free(line);
        if (j != NULL && json_integer_value(json_object_get(j, "id")) == id) {
            *reply = j;
            return 0;
        }
        json_decref(j);
    }
}

const char *ctlclient_server_version(const struct ctlclient *c)
{
    return c->version;
}

void ctlclient_close(struct ctlclient *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c);
}
