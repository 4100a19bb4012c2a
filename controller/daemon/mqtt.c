/* The MQTT client: the loop's side (what to publish, commands in) and the
 * client thread (libmosquitto, the store-and-forward buffer). */
#include "mqtt.h"
#include "base/loopwake.h"
#include "control.h"
#include "daemon.h"
#include "base/rtsched.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/utf8.h"
#include "run.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#define MQTT_VERSION 1              /* the "v" of every payload; the v1 of the topics */
#define OUT_QUEUE_MAX 4096          /* messages from the loop not yet taken by the thread */
#define IN_QUEUE_MAX 64             /* commands from the broker not yet taken by the loop */
#define CMD_MAX_BYTES 65536         /* as a control socket's request line */
#define STATUS_EVERY_NS 10000000000LL   /* status is published at least this often */
#define STOP_WAIT_NS 2000000000LL   /* how long stopping waits for the last messages to leave */

/* One message to publish. */
struct msg {
    struct msg *next;
    char *topic;                /* suffix after the rig's prefix ("samples", "reply/alice") */
    char *payload;              /* JSON text */
    size_t len;
    bool retain;
    bool keep;                  /* telemetry, events: kept while the broker is out of reach */
    void *corr;                 /* MQTT 5 correlation data of the request a reply answers */
    int corr_len;
};

/* One command from the broker. */
struct cmd {
    struct cmd *next;
    char user[128];             /* the topic's last level: the broker-authenticated user */
    bool query;                 /* from query/<user>: only commands that change nothing */
    char *payload;
    size_t len;
    void *corr;
    int corr_len;
};

/* A pending reply: where it goes. */
struct reply_ctx {
    struct mqtt *m;
    char user[128];
    void *corr;
    int corr_len;
};

/* The samples of one channel since the last samples message. */
struct chan_batch {
    double *t, *v;
    size_t n, cap;
};

struct mqtt {
    /* Set before the thread starts, read-only after. */
    struct daemon *d;
    const struct rig_mqtt *cfg;
    char prefix[256];           /* "perfuse/v1/<site>/<rig>/" */
    char *password;
    char client_id[128];

    /* Loop thread only. */
    uv_timer_t tick;
    struct loopwake wake;       /* the client thread: commands are waiting */
    int open_handles;
    bool stopped;
    struct chan_batch *chans;
    size_t n_chans;
    char batch_run[33];         /* the run the batch's samples belong to ("" none) */
    double batch_t0;            /* wall time of that run's t = 0, s */
    uint64_t samples_seq, events_seq;
    struct {                    /* per run slot: the run whose events were published up to next */
        char run[33];
        uint64_t next;
    } ev[DAEMON_MAX_RUNS];
    uint64_t ev_missed;
    uint64_t rig_ev_next;       /* the rig's events (no run) published up to here */
    char *last_status, *last_alarms;
    int64_t status_at_ns;
    uint64_t dropped_loop;      /* messages the out queue had no room for */
    uint64_t dropped_reported;
    uint64_t dropped_at_connect;    /* the count when the broker was last reached */
    int conn_reported;          /* -1 unknown, 0 out of reach, 1 connected */
    int refused_reported;
    int64_t wall_minus_mono;    /* to date samples outside a run */

    /* Shared, under mu. */
    pthread_mutex_t mu;
    struct msg *out_head, *out_tail;
    size_t out_n;
    struct cmd *in_head, *in_tail;
    size_t in_n;
    bool stop;

    /* Counters the thread updates. */
    atomic_uint_fast64_t dropped_backlog;   /* messages the store-and-forward buffer had no room for */
    atomic_int connected;
    atomic_int refused;         /* the broker's last refusal (CONNACK code), 0: none */
    atomic_uint_fast64_t published;

    /* The thread only. */
    pthread_t thread;
    bool thread_started;
    struct mosquitto *mosq;
    int protocol;               /* MQTT_PROTOCOL_V5 or MQTT_PROTOCOL_V311 */
    bool is_connected;
    long unacked;               /* published, not yet acknowledged by the broker */
    struct msg *bl_head, *bl_tail;  /* the store-and-forward buffer */
    size_t bl_n, bl_bytes;
    struct msg *retained[4];    /* the latest state/status/alarms while out of reach */
    int64_t next_attempt_ns;
    int64_t backoff_ns;
    bool ever_tried;
    char last_error[200];
};

static const char *const retained_topics[4] = { "state", "status", "alarms", NULL };

/* Free one message. */
static void msg_free(struct msg *x)
{
    if (x == NULL)
        return;
    free(x->topic);
    free(x->payload);
    free(x->corr);
    free(x);
}

/* A new message (takes payload). NULL if out of memory (payload freed). */
static struct msg *msg_new(const char *topic, char *payload, bool retain, bool keep)
{
    struct msg *x = calloc(1, sizeof *x);
    if (x == NULL || payload == NULL || (x->topic = strdup(topic)) == NULL) {
        free(payload);
        free(x);
        return NULL;
    }
    x->payload = payload;
    x->len = strlen(payload);
    x->retain = retain;
    x->keep = keep;
    return x;
}

/* Hand a message to the thread; counted as dropped if the queue is full. Loop thread. */
static void enqueue(struct mqtt *m, struct msg *x)
{
    if (x == NULL) {
        m->dropped_loop++;
        return;
    }
    pthread_mutex_lock(&m->mu);
    bool room = m->out_n < OUT_QUEUE_MAX && !m->stop;
    if (room) {
        if (m->out_tail)
            m->out_tail->next = x;
        else
            m->out_head = x;
        m->out_tail = x;
        m->out_n++;
    }
    pthread_mutex_unlock(&m->mu);
    if (!room) {
        m->dropped_loop++;
        msg_free(x);
    }
}

/* Publish json (stolen) on topic. Loop thread. */
static void publish_json(struct mqtt *m, const char *topic, json_t *j, bool retain, bool keep)
{
    if (j == NULL) {
        m->dropped_loop++;
        return;
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    enqueue(m, msg_new(topic, text, retain, keep));
}

/* The header every payload starts with. */
static json_t *payload_head(struct mqtt *m)
{
    return json_pack("{s:i,s:s,s:s,s:f}", "v", MQTT_VERSION, "site", m->cfg->site, "rig",
                     m->d->rig->name, "time", (double)time_wall_ns() / 1e9);
}

/* ---- The client thread ---- */

/* Publish one message now. Returns a MOSQ_ERR_ code. */
static int send_now(struct mqtt *m, const struct msg *x)
{
    char topic[512];
    snprintf(topic, sizeof topic, "%s%s", m->prefix, x->topic);
    mosquitto_property *props = NULL;
    if (x->corr != NULL && m->protocol == MQTT_PROTOCOL_V5)
        mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, x->corr, (uint16_t)x->corr_len);
    int rc = mosquitto_publish_v5(m->mosq, NULL, topic, (int)x->len, x->payload, 1, x->retain, props);
    mosquitto_property_free_all(&props);
    if (rc == MOSQ_ERR_SUCCESS) {
        atomic_fetch_add(&m->published, 1);
        m->unacked++;
    }
    return rc;
}

/* Keep a message while the broker is out of reach: telemetry and events in
 * the store-and-forward buffer, marked historical; the retained topics' latest
 * value; replies are dropped (the requester has given up by then). */
static void keep_for_later(struct mqtt *m, struct msg *x)
{
    if (x->retain) {
        for (int i = 0; retained_topics[i]; i++)
            if (strcmp(x->topic, retained_topics[i]) == 0) {
                msg_free(m->retained[i]);
                m->retained[i] = x;
                return;
            }
    }
    if (!x->keep || x->len < 2 || x->payload[0] != '{') {
        msg_free(x);
        return;
    }
    if (m->bl_n >= (size_t)m->cfg->queue || m->bl_bytes + x->len > (size_t)m->cfg->queue_bytes) {
        atomic_fetch_add(&m->dropped_backlog, 1);
        msg_free(x);
        return;
    }
    static const char mark[] = "{\"historical\":true,";
    char *p = malloc(x->len + sizeof mark);
    if (p == NULL) {
        atomic_fetch_add(&m->dropped_backlog, 1);
        msg_free(x);
        return;
    }
    memcpy(p, mark, sizeof mark - 1);
    memcpy(p + sizeof mark - 1, x->payload + 1, x->len);   /* with its NUL */
    free(x->payload);
    x->payload = p;
    x->len += sizeof mark - 2;
    x->next = NULL;
    if (m->bl_tail)
        m->bl_tail->next = x;
    else
        m->bl_head = x;
    m->bl_tail = x;
    m->bl_n++;
    m->bl_bytes += x->len;
}

/* Send a message now if connected, else keep it for later. */
static void deliver(struct mqtt *m, struct msg *x)
{
    x->next = NULL;
    /* A broker that takes but does not acknowledge must not make libmosquitto's
     * own queue grow without bound: past the queue size, what does not go is counted. */
    if (m->is_connected && m->unacked >= m->cfg->queue) {
        atomic_fetch_add(&m->dropped_backlog, 1);
        msg_free(x);
        return;
    }
    if (m->is_connected && send_now(m, x) == MOSQ_ERR_SUCCESS) {
        msg_free(x);
        return;
    }
    keep_for_later(m, x);
}

/* Connected again: what was kept goes first, in order. */
static void flush_kept(struct mqtt *m)
{
    for (int i = 0; retained_topics[i]; i++)
        if (m->retained[i] != NULL && m->is_connected) {
            struct msg *x = m->retained[i];
            m->retained[i] = NULL;
            deliver(m, x);
        }
    while (m->bl_head != NULL && m->is_connected && m->unacked < m->cfg->queue) {
        struct msg *x = m->bl_head;
        if (send_now(m, x) != MOSQ_ERR_SUCCESS)
            break;
        m->bl_head = x->next;
        if (m->bl_head == NULL)
            m->bl_tail = NULL;
        m->bl_n--;
        m->bl_bytes -= x->len;
        msg_free(x);
    }
}

/* The state payload (a last will too, so built without the loop's help). */
static char *state_payload(struct mqtt *m, const char *state)
{
    json_t *j = json_pack("{s:i,s:s,s:s,s:s,s:f}", "v", MQTT_VERSION, "site", m->cfg->site, "rig",
                          m->d->rig->name, "state", state, "time", (double)time_wall_ns() / 1e9);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

/* Publish the state now (retained). */
static void publish_state(struct mqtt *m, const char *state)
{
    char *text = state_payload(m, state), topic[512];
    snprintf(topic, sizeof topic, "%sstate", m->prefix);
    if (text != NULL && mosquitto_publish_v5(m->mosq, NULL, topic, (int)strlen(text), text, 1, true,
                                             NULL) == MOSQ_ERR_SUCCESS)
        m->unacked++;
    free(text);
}

/* Connected (or refused): subscribe to the commands, say online, send what was kept. */
static void on_connect(struct mosquitto *mosq, void *arg, int rc, int flags, const mosquitto_property *props)
{
    (void)flags; (void)props;
    struct mqtt *m = arg;
    if (rc != 0) {
        /* 3.1.1's return codes as MQTT 5 reason codes, for one message. */
        static const int v5_of_v3[] = { 0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, MQTT_RC_CLIENTID_NOT_VALID,
                                        MQTT_RC_SERVER_UNAVAILABLE, MQTT_RC_BAD_USERNAME_OR_PASSWORD,
                                        MQTT_RC_NOT_AUTHORIZED };
        atomic_store(&m->refused, m->protocol != MQTT_PROTOCOL_V5 && rc > 0 && rc <= 5 ? v5_of_v3[rc] : rc);
        snprintf(m->last_error, sizeof m->last_error, "the broker refused the connection: %s",
                 m->protocol == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc));
        /* A broker that does not speak MQTT 5 is asked again in 3.1.1. */
        if (m->protocol == MQTT_PROTOCOL_V5 && (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION ||
                                                rc == CONNACK_REFUSED_PROTOCOL_VERSION)) {
            m->protocol = MQTT_PROTOCOL_V311;
            mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
            m->next_attempt_ns = 0;
            m->backoff_ns = 0;
        }
        return;
    }
    m->is_connected = true;
    m->backoff_ns = 0;
    atomic_store(&m->refused, 0);
    m->last_error[0] = '\0';
    atomic_store(&m->connected, 1);
    char topic[512];
    snprintf(topic, sizeof topic, "%scmd/+", m->prefix);
    mosquitto_subscribe_v5(mosq, NULL, topic, 1, 0, NULL);
    snprintf(topic, sizeof topic, "%squery/+", m->prefix);
    mosquitto_subscribe_v5(mosq, NULL, topic, 1, 0, NULL);
    publish_state(m, "online");
    flush_kept(m);
}

/* The broker acknowledged a message. */
static void on_publish(struct mosquitto *mosq, void *arg, int mid, int reason, const mosquitto_property *props)
{
    (void)mosq; (void)mid; (void)reason; (void)props;
    struct mqtt *m = arg;
    if (m->unacked > 0)
        m->unacked--;
}

/* The connection is gone. */
static void on_disconnect(struct mosquitto *mosq, void *arg, int rc, const mosquitto_property *props)
{
    (void)mosq; (void)props;
    struct mqtt *m = arg;
    m->is_connected = false;
    atomic_store(&m->connected, 0);
    if (rc != 0)
        snprintf(m->last_error, sizeof m->last_error, "connection lost: %s", mosquitto_strerror(rc));
}

/* A command (cmd/<user>) or a query (query/<user>) arrived: queue it for the
 * loop, or answer busy right here. */
static void on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    (void)mosq;
    struct mqtt *m = arg;
    size_t plen = strlen(m->prefix);
    if (msg->topic == NULL || strncmp(msg->topic, m->prefix, plen) != 0)
        return;
    const char *user = NULL;
    bool query = strncmp(msg->topic + plen, "query/", 6) == 0;
    if (query)
        user = msg->topic + plen + 6;
    else if (strncmp(msg->topic + plen, "cmd/", 4) == 0)
        user = msg->topic + plen + 4;
    if (user == NULL || user[0] == '\0' || strchr(user, '/') != NULL ||
        strlen(user) >= sizeof ((struct cmd *)0)->user)
        return;
    struct cmd *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    snprintf(c->user, sizeof c->user, "%s", user);
    c->query = query;
    void *corr = NULL;
    uint16_t corr_len = 0;
    if (props != NULL &&
        mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, false) != NULL) {
        c->corr = corr;
        c->corr_len = corr_len;
    }
    const char *why = NULL;
    if (msg->payloadlen > CMD_MAX_BYTES)
        why = "{\"ok\":false,\"error\":{\"code\":\"bad_request\",\"message\":\"command payload longer than "
              "64 KiB\"}}";
    else if ((c->payload = malloc((size_t)msg->payloadlen + 1)) == NULL)
        why = "{\"ok\":false,\"error\":{\"code\":\"failed\",\"message\":\"out of memory\"}}";
    if (why == NULL) {
        memcpy(c->payload, msg->payload, (size_t)msg->payloadlen);
        c->payload[msg->payloadlen] = '\0';
        c->len = (size_t)msg->payloadlen;
        pthread_mutex_lock(&m->mu);
        bool room = m->in_n < IN_QUEUE_MAX;
        if (room) {
            if (m->in_tail)
                m->in_tail->next = c;
            else
                m->in_head = c;
            m->in_tail = c;
            m->in_n++;
        }
        pthread_mutex_unlock(&m->mu);
        if (room) {
            loopwake_send(&m->wake);
            return;
        }
        why = "{\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"too many commands waiting; "
              "try again\"}}";
    }
    char topic[200];
    snprintf(topic, sizeof topic, "reply/%s", c->user);
    struct msg *r = msg_new(topic, strdup(why), false, false);
    if (r != NULL) {
        r->corr = c->corr;
        r->corr_len = c->corr_len;
        c->corr = NULL;
        deliver(m, r);
    }
    free(c->payload);
    free(c->corr);
    free(c);
}

/* Try to reach the broker (without blocking on the connection itself). */
static void try_connect(struct mqtt *m, int64_t now)
{
    if (m->is_connected || now < m->next_attempt_ns)
        return;
    m->backoff_ns = m->backoff_ns == 0 ? 500000000LL : m->backoff_ns * 2;
    if (m->backoff_ns > 4000000000LL)
        m->backoff_ns = 4000000000LL;
    m->next_attempt_ns = now + m->backoff_ns;
    int rc;
    if (!m->ever_tried) {
        m->ever_tried = true;
        rc = mosquitto_connect_bind_async(m->mosq, m->cfg->host, m->cfg->port, m->cfg->keepalive_s, NULL);
    } else {
        rc = mosquitto_reconnect_async(m->mosq);
    }
    if (rc != MOSQ_ERR_SUCCESS)
        snprintf(m->last_error, sizeof m->last_error, "cannot connect to %s:%d: %s", m->cfg->host,
                 m->cfg->port, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
}

/* The thread: connect, publish what the loop queued, keep what cannot go. */
static void *client_thread(void *arg)
{
    struct mqtt *m = arg;
    int64_t stop_by = 0;
    bool said_offline = false;
    for (;;) {
        int64_t now = (int64_t)time_mono_ns();
        try_connect(m, now);
        int rc = mosquitto_loop(m->mosq, 20, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            if (m->is_connected)
                on_disconnect(m->mosq, m, rc, NULL);
            /* Not connected: mosquitto_loop returns at once; pace the retries. */
            struct timespec ts = { 0, 20000000L };
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&m->mu);
        struct msg *list = m->out_head;
        m->out_head = m->out_tail = NULL;
        m->out_n = 0;
        bool stop = m->stop;
        pthread_mutex_unlock(&m->mu);
        if (m->is_connected)
            flush_kept(m);
        while (list != NULL) {
            struct msg *x = list;
            list = x->next;
            deliver(m, x);
        }
        if (!stop)
            continue;
        now = (int64_t)time_mono_ns();
        if (stop_by == 0)
            stop_by = now + STOP_WAIT_NS;
        if (!m->is_connected || now >= stop_by)
            break;
        if (!said_offline) {
            /* An orderly stop: the last will is not sent, so say it. */
            publish_state(m, "offline");
            said_offline = true;
        }
        if (mosquitto_want_write(m->mosq))
            continue;
        mosquitto_disconnect_v5(m->mosq, 0, NULL);
        mosquitto_loop(m->mosq, 20, 1);
        break;
    }
    return NULL;
}

/* ---- The loop's side ---- */

/* The samples since the last message, as one message. */
static void flush_samples(struct mqtt *m)
{
    bool any = false;
    for (size_t i = 0; i < m->n_chans && !any; i++)
        any = m->chans[i].n > 0;
    if (!any)
        return;
    json_t *j = payload_head(m);
    json_object_set_new(j, "seq", json_integer((json_int_t)m->samples_seq++));
    json_object_set_new(j, "run", m->batch_run[0] ? json_string(m->batch_run) : json_null());
    json_object_set_new(j, "t0", json_real(m->batch_t0));
    json_t *chans = json_object();
    for (size_t i = 0; i < m->n_chans; i++) {
        struct chan_batch *b = &m->chans[i];
        if (b->n == 0)
            continue;
        json_t *t = json_array(), *v = json_array();
        for (size_t k = 0; k < b->n; k++) {
            json_array_append_new(t, json_real(b->t[k]));
            json_array_append_new(v, isfinite(b->v[k]) ? json_real(b->v[k]) : json_null());
        }
        size_t nch = m->d->rig->n_channels;
        const char *name = i < nch ? m->d->rig->channels[i].name : m->d->dl.pumps[i - nch].fill_name;
        const char *unit = i < nch ? m->d->rig->channels[i].unit : "uL";
        json_object_set_new(chans, name, json_pack("{s:s,s:o,s:o}", "unit", unit, "t", t, "v", v));
        b->n = 0;
    }
    json_object_set_new(j, "channels", chans);
    publish_json(m, "samples", j, false, true);
}

/* The run the broker's samples and events follow: the one run going, or the
 * last one (none while several are going: samples then carry wall clock time). */
static struct run *default_run(struct mqtt *m)
{
    char err[8];
    struct run_slot *s = daemon_find_run(m->d, NULL, err, sizeof err);
    return s != NULL ? s->run : NULL;
}

/* Add a value to series idx (a rig channel, then the syringes' fill levels). */
static void add_sample(struct mqtt *m, size_t idx, double value, int64_t t_ns)
{
    if (m == NULL || m->stopped || idx >= m->n_chans)
        return;
    struct run *r = default_run(m);
    const char *id = "";
    double t;
    /* Times as the run file has them while a run records, else wall clock time. */
    if (r != NULL && !run_closed(r) && !run_ended(r) && t_ns >= run_start_ns(r)) {
        id = run_id(r);
        t = (double)(t_ns - run_start_ns(r)) / 1e9;
    } else {
        t = (double)(t_ns + m->wall_minus_mono) / 1e9;
    }
    if (strcmp(id, m->batch_run) != 0) {
        flush_samples(m);
        snprintf(m->batch_run, sizeof m->batch_run, "%s", id);
        m->batch_t0 = id[0] ? (double)run_start_wall_ns(r) / 1e9 : 0.0;
    }
    struct chan_batch *b = &m->chans[idx];
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        double *nt = realloc(b->t, cap * sizeof *nt);
        if (nt != NULL)
            b->t = nt;
        double *nv = realloc(b->v, cap * sizeof *nv);
        if (nv != NULL)
            b->v = nv;
        if (nt == NULL || nv == NULL) {
            m->dropped_loop++;
            return;
        }
        b->cap = cap;
    }
    b->t[b->n] = t;
    b->v[b->n] = value;
    b->n++;
}

/* A rig channel's sample, for the next samples message. */
void mqtt_on_sample(struct mqtt *m, uint32_t ch, double value, int64_t t_ns)
{
    if (m != NULL && ch < m->d->rig->n_channels)
        add_sample(m, ch, value, t_ns);
}

/* Run slot i's events not yet published, as one message. */
static void flush_run_events(struct mqtt *m, size_t i)
{
    const struct run_slot *s = &m->d->slots[i];
    struct run *r = s->run;
    if (r == NULL)
        return;
    if (strcmp(run_id(r), m->ev[i].run) != 0) {
        snprintf(m->ev[i].run, sizeof m->ev[i].run, "%s", run_id(r));
        m->ev[i].next = 0;
    }
    uint64_t total = run_events_total(r);
    if (m->ev[i].next >= total)
        return;
    if (total > RUN_EVENTS_KEPT && m->ev[i].next < total - RUN_EVENTS_KEPT) {
        m->ev_missed += total - RUN_EVENTS_KEPT - m->ev[i].next;
        m->ev[i].next = total - RUN_EVENTS_KEPT;
    }
    json_t *list = json_array();
    for (; m->ev[i].next < total; m->ev[i].next++) {
        const struct run_event_rec *e = run_event_at(r, m->ev[i].next);
        if (e != NULL)
            json_array_append_new(list, run_event_json(r, e));
    }
    json_t *j = payload_head(m);
    json_object_set_new(j, "seq", json_integer((json_int_t)m->events_seq++));
    json_object_set_new(j, "run", json_string(m->ev[i].run));
    json_object_set_new(j, "name", json_string(s->name));
    json_object_set_new(j, "t0", json_real((double)run_start_wall_ns(r) / 1e9));
    json_object_set_new(j, "events", list);
    publish_json(m, "events", j, false, true);
}

/* The rig's events recorded while no run file was open, not yet published. */
static void flush_rig_events(struct mqtt *m)
{
    const struct rig_events *e = &m->d->rig_events;
    if (m->rig_ev_next >= e->total)
        return;
    if (e->total - m->rig_ev_next > RIG_EVENTS_KEPT) {
        m->ev_missed += e->total - RIG_EVENTS_KEPT - m->rig_ev_next;
        m->rig_ev_next = e->total - RIG_EVENTS_KEPT;
    }
    json_t *list = json_array();
    for (; m->rig_ev_next < e->total; m->rig_ev_next++)
        json_array_append_new(list, rig_event_json(rig_events_at(e, m->rig_ev_next)));
    json_t *j = payload_head(m);
    json_object_set_new(j, "seq", json_integer((json_int_t)m->events_seq++));
    json_object_set_new(j, "run", json_null());
    json_object_set_new(j, "name", json_null());
    json_object_set_new(j, "t0", json_real(0.0));
    json_object_set_new(j, "events", list);
    publish_json(m, "events", j, false, true);
}

/* Every run's events not yet published (one message per run that has new
 * ones), then the rig's own. */
static void flush_events(struct mqtt *m)
{
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        flush_run_events(m, i);
    flush_rig_events(m);
}

/* The status reply: publish the status, and the alarm list, when they changed. */
static void status_reply(void *ctx, json_t *msg)
{
    struct mqtt *m = ctx;
    json_t *result = json_object_get(msg, "result");
    if (m->stopped || !json_is_object(result)) {
        json_decref(msg);
        return;
    }
    int64_t now = (int64_t)time_mono_ns();
    char *text = json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (text != NULL && (m->last_status == NULL || strcmp(text, m->last_status) != 0 ||
                         now - m->status_at_ns >= STATUS_EVERY_NS)) {
        free(m->last_status);
        m->last_status = text;
        m->status_at_ns = now;
        json_t *j = payload_head(m);
        json_object_set(j, "status", result);
        publish_json(m, "status", j, true, false);
    } else {
        free(text);
    }
    json_t *alarms = json_object_get(result, "alarms");
    /* Changed means other than by age. */
    json_t *cmp = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(alarms, i, a) {
        json_t *c = json_copy(a);
        json_object_del(c, "age_s");
        json_array_append_new(cmp, c);
    }
    char *atext = json_dumps(cmp, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(cmp);
    if (atext != NULL && (m->last_alarms == NULL || strcmp(atext, m->last_alarms) != 0)) {
        free(m->last_alarms);
        m->last_alarms = atext;
        json_t *j = payload_head(m);
        json_object_set_new(j, "alarms", alarms ? json_incref(alarms) : json_array());
        publish_json(m, "alarms", j, true, false);
    } else {
        free(atext);
    }
    json_decref(msg);
}

/* What the client cannot confirm goes in the events: the broker reached or
 * lost, and messages that did not fit. */
static void report(struct mqtt *m)
{
    struct daemon *d = m->d;
    int64_t now = pclock_now(&d->clock);
    int conn = atomic_load(&m->connected);
    if (conn != m->conn_reported) {
        char msg[300];
        if (conn)
            snprintf(msg, sizeof msg, "connected to the MQTT broker %s:%d", m->cfg->host, m->cfg->port);
        else
            snprintf(msg, sizeof msg, "the MQTT broker %s:%d is out of reach; telemetry and events "
                     "are kept and sent when it is back (the run file is the record)",
                     m->cfg->host, m->cfg->port);
        if (m->conn_reported != -1 || conn)
            daemon_event(d, now, conn ? "info" : "warning", "mqtt", conn ? "mqtt_connected" :
                         "mqtt_unreachable", msg);
        m->conn_reported = conn;
    }
    int refused = atomic_load(&m->refused);
    if (refused != m->refused_reported) {
        if (refused != 0) {
            char msg[400];
            snprintf(msg, sizeof msg, "the MQTT broker %s:%d refuses this rig's connection (%s, code %d): "
                     "check mqtt.username and its password file here, and the broker's password file and "
                     "ACL", m->cfg->host, m->cfg->port, mosquitto_reason_string(refused), refused);
            daemon_event(d, now, "warning", "mqtt", "mqtt_refused", msg);
        }
        m->refused_reported = refused;
    }
    uint64_t dropped = m->dropped_loop + atomic_load(&m->dropped_backlog) + m->ev_missed;
    /* The events that counted them may not have fitted either: say it again, live. */
    if (conn && dropped > m->dropped_at_connect && dropped == m->dropped_reported) {
        char msg[300];
        snprintf(msg, sizeof msg, "while the MQTT broker was out of reach, %llu messages did not fit "
                 "the queue (queue: %ld messages, queue_bytes: %ld) and were not sent; the run file has "
                 "everything", (unsigned long long)(dropped - m->dropped_at_connect), m->cfg->queue,
                 m->cfg->queue_bytes);
        daemon_event(d, now, "warning", "mqtt", "mqtt_dropped", msg);
    }
    if (conn)
        m->dropped_at_connect = dropped;
    if (dropped > m->dropped_reported) {
        char msg[300];
        snprintf(msg, sizeof msg, "%llu messages for the MQTT broker did not fit its queue (queue: %ld "
                 "messages, queue_bytes: %ld) and were not sent (%llu in all); the run file has "
                 "everything", (unsigned long long)(dropped - m->dropped_reported), m->cfg->queue,
                 m->cfg->queue_bytes, (unsigned long long)dropped);
        daemon_event(d, now, "warning", "mqtt", "mqtt_dropped", msg);
        m->dropped_reported = dropped;
    }
}

/* The same command table as the control socket: the one place the client
 * calls into it (a request line, who sent it and where its replies go). */
static void dispatch(struct mqtt *m, const struct control_remote *r, const char *line, size_t len)
{
    control_remote_request(m->d->control, r, line, len);
}

/* Every interval: samples, events, status and alarms; then what went wrong. */
static void tick_cb(uv_timer_t *t)
{
    struct mqtt *m = t->data;
    flush_samples(m);
    report(m);
    flush_events(m);
    static const char status_req[] = "{\"cmd\":\"status\"}";
    struct control_remote r = { .who = "mqtt status", .read_only = true, .reply = status_reply, .ctx = m };
    dispatch(m, &r, status_req, sizeof status_req - 1);
}

/* A command's reply: to reply/<user>, with the request's correlation data. */
static void command_reply(void *ctx, json_t *msg)
{
    struct reply_ctx *rc = ctx;
    struct mqtt *m = rc->m;
    if (!m->stopped && msg != NULL) {
        char topic[200];
        snprintf(topic, sizeof topic, "reply/%s", rc->user);
        char *text = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(17));
        struct msg *x = msg_new(topic, text, false, false);
        if (x != NULL) {
            x->corr = rc->corr;
            x->corr_len = rc->corr_len;
            rc->corr = NULL;
        }
        enqueue(m, x);
    }
    json_decref(msg);
    free(rc->corr);
    free(rc);
}

/* A reply made off the loop (text, taken): to reply/<user> as command_reply. */
static void command_reply_text(void *ctx, char *text)
{
    struct reply_ctx *rc = ctx;
    struct mqtt *m = rc->m;
    if (!m->stopped && text != NULL) {
        char topic[200];
        snprintf(topic, sizeof topic, "reply/%s", rc->user);
        struct msg *x = msg_new(topic, text, false, false);
        if (x != NULL) {
            x->corr = rc->corr;
            x->corr_len = rc->corr_len;
            rc->corr = NULL;
        }
        enqueue(m, x);
    } else {
        free(text);
    }
    free(rc->corr);
    free(rc);
}

/* Commands from the broker: each one through the control server's parser and
 * command table, as the broker-authenticated user. */
static void wake_cb(struct loopwake *w)
{
    struct mqtt *m = w->data;
    pthread_mutex_lock(&m->mu);
    struct cmd *list = m->in_head;
    m->in_head = m->in_tail = NULL;
    m->in_n = 0;
    pthread_mutex_unlock(&m->mu);
    while (list != NULL) {
        struct cmd *c = list;
        list = c->next;
        struct reply_ctx *rc = m->stopped ? NULL : calloc(1, sizeof *rc);
        if (rc != NULL) {
            rc->m = m;
            snprintf(rc->user, sizeof rc->user, "%s", c->user);
            rc->corr = c->corr;
            rc->corr_len = c->corr_len;
            c->corr = NULL;
            char who[160], hint[600];
            utf8_format(who, sizeof who, "mqtt user %s", c->user);
            snprintf(hint, sizeof hint, "commands go to the cmd topic (%scmd/%s), which the broker "
                     "opens to operators only", m->prefix, c->user);
            struct control_remote r = { .who = who, .read_only = c->query, .refused_hint = hint,
                                        .reply = command_reply, .reply_text = command_reply_text,
                                        .ctx = rc };
            dispatch(m, &r, c->payload, c->len);
        }
        free(c->payload);
        free(c->corr);
        free(c);
    }
}

/* The first line of path, the password. */
static int read_password(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read the MQTT password file %s: %s (mqtt.password_file in the "
                 "rig file; its first line is the password)", path, strerror(errno));
        return -errno;
    }
    char line[512] = "";
    if (fgets(line, sizeof line, f) == NULL)
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0') {
        snprintf(err, errlen, "the MQTT password file %s is empty: write the password on its first line", path);
        return -EINVAL;
    }
    *out = strdup(line);
    return *out ? 0 : -ENOMEM;
}

/* A handle of the client closed. */
static void handle_closed(uv_handle_t *h)
{
    struct mqtt *m = h->data;
    m->open_handles--;
}

/* The daemon's observer hooks: a sample. */
static void observe_sample(void *ctx, uint32_t ch, double record, int64_t t_ns)
{
    mqtt_on_sample(ctx, ch, record, t_ns);
}

/* A syringe's fill level, as a series after the rig's channels. */
static void observe_fill(void *ctx, size_t pump, double fill_ul, int64_t t_ns)
{
    struct mqtt *m = ctx;
    if (pump < m->d->dl.n_pumps)
        add_sample(m, m->d->rig->n_channels + pump, fill_ul, t_ns);
}

/* The daemon stops. */
static void observe_stopping(void *ctx)
{
    mqtt_stop(ctx);
}

/* Set up the client and start its thread; the loop publishes every interval. */
int mqtt_start(struct mqtt **out, struct daemon *d, char *err, size_t errlen)
{
    *out = NULL;
    const struct rig_mqtt *cfg = &d->rig->mqtt;
    if (!cfg->on)
        return 0;
    const char *name = d->rig->name;
    if (name == NULL || name[0] == '\0' || strpbrk(name, "/+#") != NULL) {
        snprintf(err, errlen, "the rig's name '%s' cannot be an MQTT topic level (no '/', '+' or '#'): "
                 "rename it in the rig file's 'rig:'", name ? name : "");
        return -EINVAL;
    }
    struct mqtt *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -ENOMEM;
    m->d = d;
    m->cfg = cfg;
    m->conn_reported = -1;
    m->n_chans = d->rig->n_channels + d->dl.n_pumps;
    m->chans = calloc(m->n_chans + 1, sizeof *m->chans);
    snprintf(m->prefix, sizeof m->prefix, "perfuse/v1/%s/%s/", cfg->site, name);
    snprintf(m->client_id, sizeof m->client_id, "perfused-%s-%s", cfg->site, name);
    m->wall_minus_mono = time_wall_ns() - pclock_now(&d->clock);
    rtsched_mutex_init(&m->mu);
    int rc = m->chans ? 0 : -ENOMEM;
    if (rc == 0 && cfg->password_file != NULL)
        rc = read_password(cfg->password_file, &m->password, err, errlen);
    if (rc < 0) {
        mqtt_free(m);
        return rc;
    }
    mosquitto_lib_init();
    m->mosq = mosquitto_new(m->client_id, true, m);
    if (m->mosq == NULL) {
        snprintf(err, errlen, "cannot create the MQTT client: %s", strerror(errno));
        mqtt_free(m);
        return -ENOMEM;
    }
    m->protocol = MQTT_PROTOCOL_V5;
    mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(m->mosq, on_disconnect);
    mosquitto_message_v5_callback_set(m->mosq, on_message);
    mosquitto_publish_v5_callback_set(m->mosq, on_publish);
    mosquitto_max_inflight_messages_set(m->mosq, 100);
    if (cfg->username != NULL)
        mosquitto_username_pw_set(m->mosq, cfg->username, m->password);
    if (cfg->ca != NULL) {
        int trc = mosquitto_tls_set(m->mosq, cfg->ca, NULL, cfg->cert, cfg->key, NULL);
        if (trc != MOSQ_ERR_SUCCESS) {
            snprintf(err, errlen, "MQTT TLS settings refused (mqtt.tls: ca %s%s%s): %s", cfg->ca,
                     cfg->cert ? ", cert " : "", cfg->cert ? cfg->cert : "",
                     trc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(trc));
            mqtt_free(m);
            return -EINVAL;
        }
    }
    char *will = state_payload(m, "offline"), topic[512];
    snprintf(topic, sizeof topic, "%sstate", m->prefix);
    if (will != NULL)
        mosquitto_will_set_v5(m->mosq, topic, (int)strlen(will), will, 1, true, NULL);
    free(will);
    uv_timer_init(d->loop, &m->tick);
    m->tick.data = m;
    int wrc = loopwake_init(d->loop, &m->wake, wake_cb);
    m->wake.data = m;
    m->open_handles = wrc == 0 ? 2 : 1;
    if (wrc < 0) {
        snprintf(err, errlen, "cannot set up the MQTT client's wake-up: %s", uv_strerror(wrc));
        mqtt_stop(m);
        *out = m;   /* freed with the daemon, once its handles are closed */
        return wrc;
    }
    if (pthread_create(&m->thread, NULL, client_thread, m) != 0) {
        snprintf(err, errlen, "cannot start the MQTT thread: %s", strerror(errno));
        mqtt_stop(m);
        *out = m;   /* freed with the daemon, once its handles are closed */
        return -EAGAIN;
    }
    m->thread_started = true;
    d->observer.ctx = m;
    d->observer.sample = observe_sample;
    d->observer.fill = observe_fill;
    d->observer.stopping = observe_stopping;
    uint64_t every = (uint64_t)(cfg->interval_s * 1000.0 + 0.5);
    uv_timer_start(&m->tick, tick_cb, every, every);
    log_info("mqtt", "publishing to %s:%d%s as %s, topics %s#", cfg->host, cfg->port, cfg->ca ? " (TLS)" : "",
             cfg->username ? cfg->username : "(anonymous)", m->prefix);
    *out = m;
    return 0;
}

/* Publish what is pending, stop the thread, close the handles. */
void mqtt_stop(struct mqtt *m)
{
    if (m == NULL || m->stopped)
        return;
    if (m->d->observer.ctx == m)
        memset(&m->d->observer, 0, sizeof m->d->observer);
    if (m->thread_started) {
        flush_samples(m);
        report(m);
        flush_events(m);
    }
    m->stopped = true;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_mutex_unlock(&m->mu);
    if (m->thread_started) {
        pthread_join(m->thread, NULL);
        m->thread_started = false;
    }
    uv_close((uv_handle_t *)&m->tick, handle_closed);
    loopwake_close(&m->wake, handle_closed);
}

/* Free everything, the thread stopped first if it still runs. */
void mqtt_free(struct mqtt *m)
{
    if (m == NULL)
        return;
    if (m->thread_started) {
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    if (m->mosq != NULL) {
        mosquitto_destroy(m->mosq);
        mosquitto_lib_cleanup();
    }
    for (struct msg *x = m->out_head, *n; x; x = n) {
        n = x->next;
        msg_free(x);
    }
    for (struct msg *x = m->bl_head, *n; x; x = n) {
        n = x->next;
        msg_free(x);
    }
    for (int i = 0; i < 4; i++)
        msg_free(m->retained[i]);
    for (struct cmd *c = m->in_head, *n; c; c = n) {
        n = c->next;
        free(c->payload);
        free(c->corr);
        free(c);
    }
    for (size_t i = 0; m->chans && i < m->n_chans; i++) {
        free(m->chans[i].t);
        free(m->chans[i].v);
    }
    free(m->chans);
    free(m->last_status);
    free(m->last_alarms);
    free(m->password);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
