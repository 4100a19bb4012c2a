/* perfusectl fleet: the rigs on a broker, from their retained topics. */
#include "fleet.h"
#include "base/timeutil.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <mosquitto.h>

#define FLEET_MAX 1024

/* What the broker holds about one rig. */
struct fleet_rig {
    char site[72], rig[72];
    json_t *state, *status, *alarms;    /* the retained payloads (NULL: none seen) */
};

struct fleet {
    struct fleet_rig rigs[FLEET_MAX];
    size_t n;
    bool connected, refused, subscribed;
    int connack;
    int64_t last_msg_ns;
};

/* The rig entry for site/rig, added if new; NULL when full. */
static struct fleet_rig *rig_of(struct fleet *f, const char *site, size_t slen, const char *rig, size_t rlen)
{
    for (size_t i = 0; i < f->n; i++)
        if (strlen(f->rigs[i].site) == slen && strncmp(f->rigs[i].site, site, slen) == 0 &&
            strlen(f->rigs[i].rig) == rlen && strncmp(f->rigs[i].rig, rig, rlen) == 0)
            return &f->rigs[i];
    if (f->n == FLEET_MAX || slen >= sizeof f->rigs[0].site || rlen >= sizeof f->rigs[0].rig)
        return NULL;
    struct fleet_rig *r = &f->rigs[f->n++];
    snprintf(r->site, sizeof r->site, "%.*s", (int)slen, site);
    snprintf(r->rig, sizeof r->rig, "%.*s", (int)rlen, rig);
    return r;
}

/* Connected: ask for every rig's retained topics. */
static void on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    struct fleet *f = arg;
    f->connack = rc;
    if (rc != 0) {
        f->refused = true;
        return;
    }
    f->connected = true;
    char *const subs[] = { "perfuse/v1/+/+/state", "perfuse/v1/+/+/status", "perfuse/v1/+/+/alarms" };
    mosquitto_subscribe_multiple(mosq, NULL, 3, subs, 1, 0, NULL);
}

/* The subscription is in place: retained messages follow at once. */
static void on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n, const int *granted)
{
    (void)mosq; (void)mid; (void)n; (void)granted;
    struct fleet *f = arg;
    f->subscribed = true;
    f->last_msg_ns = (int64_t)time_mono_ns();
}

/* A retained payload: keep it under its rig. */
static void on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *msg)
{
    (void)mosq;
    struct fleet *f = arg;
    f->last_msg_ns = (int64_t)time_mono_ns();
    /* perfuse/v1/<site>/<rig>/<kind> */
    const char *p = msg->topic;
    if (strncmp(p, "perfuse/v1/", 11) != 0)
        return;
    const char *site = p + 11, *s2 = strchr(site, '/');
    if (s2 == NULL)
        return;
    const char *rig = s2 + 1, *s3 = strchr(rig, '/');
    if (s3 == NULL)
        return;
    const char *kind = s3 + 1;
    struct fleet_rig *r = rig_of(f, site, (size_t)(s2 - site), rig, (size_t)(s3 - rig));
    if (r == NULL || msg->payloadlen <= 0)
        return;
    json_t *j = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    json_t **slot = strcmp(kind, "state") == 0 ? &r->state : strcmp(kind, "status") == 0 ? &r->status
                    : strcmp(kind, "alarms") == 0 ? &r->alarms : NULL;
    if (slot == NULL) {
        json_decref(j);
        return;
    }
    json_decref(*slot);
    *slot = j;
}

/* Split mqtt[s]://[user[:password]@]host[:port]. */
static int parse_url(const char *url, bool *tls, char **user, char **pass, char **host, int *port,
                     char *err, size_t errlen)
{
    const char *p = url;
    *tls = false;
    if (strncmp(p, "mqtt://", 7) == 0) {
        p += 7;
    } else if (strncmp(p, "mqtts://", 8) == 0) {
        p += 8;
        *tls = true;
    } else if (strstr(p, "://") != NULL) {
        snprintf(err, errlen, "--mqtt %s: the scheme must be mqtt:// or mqtts://", url);
        return -EINVAL;
    }
    const char *at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        *user = strndup(p, (size_t)((colon ? colon : at) - p));
        if (colon != NULL)
            *pass = strndup(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *end = p + strcspn(p, "/");
    const char *colon = memchr(p, ':', (size_t)(end - p));
    *port = *tls ? 8883 : 1883;
    if (colon != NULL) {
        char *e;
        long v = strtol(colon + 1, &e, 10);
        if (e != end || v < 1 || v > 65535) {
            snprintf(err, errlen, "--mqtt %s: the port must be a number from 1 to 65535", url);
            return -EINVAL;
        }
        *port = (int)v;
    }
    *host = strndup(p, (size_t)((colon ? colon : end) - p));
    if (*host == NULL || (*host)[0] == '\0') {
        snprintf(err, errlen, "--mqtt %s: no host (write e.g. mqtt://alice@broker.lab:1883)", url);
        return -EINVAL;
    }
    return 0;
}

/* A string member of j, or def. */
static const char *str_of(json_t *j, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : def;
}

/* Alarms that are not cleared. */
static json_t *active_alarms(const struct fleet_rig *r)
{
    json_t *out = json_array();
    json_t *list = r->alarms ? json_object_get(r->alarms, "alarms") : NULL;
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) {
        const char *st = str_of(a, "state", "");
        if (strcmp(st, "cleared") != 0)
            json_array_append(out, a);
    }
    return out;
}

/* One rig as a JSON object for --json. */
static json_t *rig_json(const struct fleet_rig *r)
{
    json_t *st = r->status ? json_object_get(r->status, "status") : NULL;
    json_t *o = json_pack("{s:s,s:s,s:s}", "site", r->site, "rig", r->rig, "state",
                          r->state ? str_of(r->state, "state", "unknown") : "unknown");
    if (r->state && json_object_get(r->state, "time"))
        json_object_set(o, "state_time", json_object_get(r->state, "time"));
    if (st != NULL) {
        json_object_set_new(o, "run_state", json_string(str_of(st, "state", "unknown")));
        const char *keys[] = { "run_id", "protocol", "step", "eta", "elapsed_s", "planned_total_s", NULL };
        for (int i = 0; keys[i]; i++)
            if (json_object_get(st, keys[i]))
                json_object_set(o, keys[i], json_object_get(st, keys[i]));
        json_object_set(o, "status_time", json_object_get(r->status, "time"));
    }
    json_object_set_new(o, "alarms", active_alarms(r));
    return o;
}

/* Order rigs by site, then name. */
static int rig_cmp(const void *a, const void *b)
{
    const struct fleet_rig *x = a, *y = b;
    int c = strcmp(x->site, y->site);
    return c ? c : strcmp(x->rig, y->rig);
}

/* The table a facility manager reads. */
static void print_table(struct fleet *f)
{
    printf("%-12s %-16s %-8s %-10s %-22s %-24s %-20s %s\n", "SITE", "RIG", "STATE", "RUN", "PROTOCOL",
           "STEP", "ETA", "ALARMS");
    double now = (double)time_wall_ns() / 1e9;
    for (size_t i = 0; i < f->n; i++) {
        struct fleet_rig *r = &f->rigs[i];
        json_t *st = r->status ? json_object_get(r->status, "status") : NULL;
        const char *state = r->state ? str_of(r->state, "state", "unknown") : "unknown";
        char step[64] = "-", eta[32] = "-", run[24] = "-", proto[64] = "-";
        if (st != NULL) {
            snprintf(run, sizeof run, "%s", str_of(st, "state", "-"));
            snprintf(proto, sizeof proto, "%s", str_of(st, "protocol", "-"));
            json_t *s = json_object_get(st, "step");
            if (s != NULL && json_object_get(st, "eta") != NULL) {
                double el = json_number_value(json_object_get(s, "elapsed_s"));
                double du = json_number_value(json_object_get(s, "duration_s"));
                if (du > 0)
                    snprintf(step, sizeof step, "%s %s %.0f%%", str_of(s, "path", ""), str_of(s, "name", ""),
                             100.0 * el / du);
                else
                    snprintf(step, sizeof step, "%s %s", str_of(s, "path", ""), str_of(s, "name", ""));
            }
            const char *e = str_of(st, "eta", NULL);
            if (e != NULL)
                snprintf(eta, sizeof eta, "%s", e);
        }
        json_t *alarms = active_alarms(r);
        char al[200] = "0";
        size_t na = json_array_size(alarms);
        if (na > 0) {
            json_t *a0 = json_array_get(alarms, 0);
            snprintf(al, sizeof al, "%zu (%s: %s%s)", na, str_of(a0, "source", "?"), str_of(a0, "code", "?"),
                     na > 1 ? ", ..." : "");
        }
        json_decref(alarms);
        printf("%-12s %-16s %-8s %-10s %-22s %-24s %-20s %s\n", r->site, r->rig, state, run, proto, step,
               eta, al);
        if (strcmp(state, "online") != 0 && r->status != NULL) {
            double t = json_number_value(json_object_get(r->status, "time"));
            printf("%-12s %-16s   (last status %.0f s ago; what it shows may be out of date)\n", "", "",
                   now - t);
        }
    }
    if (f->n == 0)
        printf("(no rig has published on this broker)\n");
}

/* The first line of path. */
static char *first_line(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    char line[512] = "";
    if (fgets(line, sizeof line, fp) == NULL)
        line[0] = '\0';
    fclose(fp);
    line[strcspn(line, "\r\n")] = '\0';
    return strdup(line);
}

/* perfusectl fleet: connect, collect the retained topics, print. */
int fleet_run(struct ctl *c, int argc, char **argv)
{
    bool json = c->json;
    static const struct option opts[] = {
        { "mqtt", required_argument, NULL, 'm' }, { "password-file", required_argument, NULL, 'p' },
        { "ca", required_argument, NULL, 'c' }, { "wait", required_argument, NULL, 'w' },
        { "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 },
    };
    const char *url = NULL, *pwfile = NULL, *ca = NULL;
    double wait_s = 3.0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': url = optarg; break;
        case 'p': pwfile = optarg; break;
        case 'c': ca = optarg; break;
        case 'j': json = true; break;
        case 'w': {
            char *e;
            wait_s = strtod(optarg, &e);
            if (*e != '\0' || !(wait_s >= 0.2 && wait_s <= 60)) {
                fprintf(stderr, "perfusectl fleet: --wait takes seconds from 0.2 to 60, found '%s'\n", optarg);
                return 2;
            }
            break;
        }
        default:
            return ctl_usage_error(c);
        }
    }
    if (url == NULL || optind < argc) {
        fprintf(stderr, "perfusectl fleet: give the broker with --mqtt mqtt://[USER@]HOST[:PORT]\n");
        return ctl_usage_error(c);
    }
    bool tls;
    char *user = NULL, *pass = NULL, *host = NULL, err[300];
    int port, rc = 0;
    if (parse_url(url, &tls, &user, &pass, &host, &port, err, sizeof err) < 0) {
        fprintf(stderr, "perfusectl fleet: %s\n", err);
        free(user); free(pass); free(host);
        return 2;
    }
    if (pwfile != NULL) {
        free(pass);
        if ((pass = first_line(pwfile)) == NULL) {
            fprintf(stderr, "perfusectl fleet: cannot read the password file %s: %s\n", pwfile, strerror(errno));
            free(user); free(host);
            return 1;
        }
    }
    struct fleet *f = calloc(1, sizeof *f);
    mosquitto_lib_init();
    struct mosquitto *mosq = f ? mosquitto_new(NULL, true, f) : NULL;
    if (mosq == NULL) {
        fprintf(stderr, "perfusectl fleet: out of memory\n");
        rc = 1;
        goto out;
    }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_subscribe_callback_set(mosq, on_subscribe);
    mosquitto_message_callback_set(mosq, on_message);
    if (user != NULL)
        mosquitto_username_pw_set(mosq, user, pass);
    if ((tls || ca != NULL) && mosquitto_tls_set(mosq, ca, ca ? NULL : "/etc/ssl/certs", NULL, NULL, NULL) != 0) {
        fprintf(stderr, "perfusectl fleet: TLS: cannot use the CA %s\n", ca ? ca : "/etc/ssl/certs");
        rc = 1;
        goto out;
    }
    int crc = mosquitto_connect(mosq, host, port, 30);
    if (crc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "perfusectl fleet: cannot reach the broker %s:%d: %s\n", host, port,
                crc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(crc));
        rc = 3;
        goto out;
    }
    /* Retained messages come right after the subscription: wait for them,
     * until a quiet moment or the --wait limit. */
    int64_t start = (int64_t)time_mono_ns(), limit = start + (int64_t)(wait_s * 1e9);
    for (;;) {
        int lrc = mosquitto_loop(mosq, 50, 1);
        int64_t now = (int64_t)time_mono_ns();
        if (f->refused || lrc == MOSQ_ERR_CONN_REFUSED || lrc == MOSQ_ERR_AUTH)
            break;
        if (f->subscribed && now - f->last_msg_ns > 300000000LL)
            break;
        if (now >= limit)
            break;
    }
    if (!f->subscribed) {
        fprintf(stderr, "perfusectl fleet: the broker %s:%d %s\n", host, port,
                f->refused ? mosquitto_connack_string(f->connack) : "did not answer in time");
        rc = 3;
        goto out;
    }
    mosquitto_disconnect(mosq);
    qsort(f->rigs, f->n, sizeof f->rigs[0], rig_cmp);
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < f->n; i++)
            json_array_append_new(arr, rig_json(&f->rigs[i]));
        char *text = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", text ? text : "[]");
        free(text);
        json_decref(arr);
    } else {
        print_table(f);
    }
out:
    if (f != NULL)
        for (size_t i = 0; i < f->n; i++) {
            json_decref(f->rigs[i].state);
            json_decref(f->rigs[i].status);
            json_decref(f->rigs[i].alarms);
        }
    free(f);
    if (mosq != NULL)
        mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    free(user);
    free(pass);
    free(host);
    return rc;
}
