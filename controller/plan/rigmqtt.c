/* The rig's 'mqtt:' section. */
#include "rigmqtt.h"
#include "base/yamldoc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A copy of a string option, or NULL after reporting what it should be. */
static char *get_text(struct ydoc *y, yaml_node_t *n, const char *what)
{
    if (!yexpect_str(y, n, what))
        return NULL;
    if (ynode_str(n)[0] == '\0') {
        yerr(y, n, "%s is empty: write a value or leave the key out", what);
        return NULL;
    }
    return strdup(ynode_str(n));
}

/* A file name option, relative ones taken from the rig file's folder. */
static char *get_path(struct ydoc *y, yaml_node_t *n, const char *dir, const char *what)
{
    char *s = get_text(y, n, what);
    if (s == NULL || s[0] == '/' || dir == NULL || dir[0] == '\0')
        return s;
    size_t len = strlen(dir) + strlen(s) + 2;
    char *p = malloc(len);
    if (p != NULL)
        snprintf(p, len, "%s/%s", dir, s);
    free(s);
    return p;
}

/* Whether s can be one level of an MQTT topic: not empty, no '/', '+', '#'. */
static bool topic_level_ok(const char *s)
{
    return s[0] != '\0' && strpbrk(s, "/+#") == NULL && strlen(s) <= 64;
}

/* The 'tls:' mapping: ca, and optionally cert and key. */
static void parse_tls(struct ydoc *y, yaml_node_t *n, const char *dir, struct rig_mqtt *m)
{
    if (!yexpect_map(y, n, "'mqtt.tls' (ca:, and cert: with key: for a client certificate)"))
        return;
    static const char *const keys[] = { "ca", "cert", "key", NULL };
    ymap_check_keys(y, n, keys, "'mqtt.tls'");
    yaml_node_t *v;
    if ((v = ymap_get(y, n, "ca", NULL)) != NULL)
        m->ca = get_path(y, v, dir, "'mqtt.tls.ca' (the CA certificate file, PEM)");
    else
        yerr(y, n, "'mqtt.tls' needs 'ca', the file of the certificate authority that signed the "
             "broker's certificate (PEM)");
    yaml_node_t *cert = ymap_get(y, n, "cert", NULL), *key = ymap_get(y, n, "key", NULL);
    if (cert != NULL)
        m->cert = get_path(y, cert, dir, "'mqtt.tls.cert' (this rig's certificate, PEM)");
    if (key != NULL)
        m->key = get_path(y, key, dir, "'mqtt.tls.key' (this rig's private key, PEM)");
    if ((cert == NULL) != (key == NULL))
        yerr(y, cert ? cert : key, "'mqtt.tls' needs both 'cert' and 'key' for a client "
             "certificate, or neither");
}

/* Parse the section, defaults first. */
void rig_mqtt_parse(struct ydoc *y, yaml_node_t *n, const char *dir, struct rig_mqtt *m)
{
    memset(m, 0, sizeof *m);
    m->interval_s = 1.0;
    m->queue = 10000;
    m->queue_bytes = 64L << 20;
    m->keepalive_s = 10;
    if (!yexpect_map(y, n, "'mqtt' (host:, and optionally port:, tls:, username:, password_file:, "
                     "site:, interval:, queue:)"))
        return;
    m->on = true;
    static const char *const keys[] = { "host", "port", "tls", "username", "password_file", "site",
                                        "interval", "queue", "queue_bytes", "keepalive", NULL };
    ymap_check_keys(y, n, keys, "'mqtt'");
    yaml_node_t *v;
    long l;
    if ((v = ymap_get(y, n, "host", NULL)) != NULL)
        m->host = get_text(y, v, "'mqtt.host' (the broker's host name or address)");
    else
        yerr(y, n, "'mqtt' needs 'host', the broker's host name or address (e.g. host: broker.lab)");
    if ((v = ymap_get(y, n, "tls", NULL)) != NULL)
        parse_tls(y, v, dir, m);
    m->port = m->ca ? RIG_MQTT_DEFAULT_TLS_PORT : RIG_MQTT_DEFAULT_PORT;
    if ((v = ymap_get(y, n, "port", NULL)) != NULL && ynode_int(y, v, 1, 65535, &l))
        m->port = (int)l;
    if ((v = ymap_get(y, n, "username", NULL)) != NULL)
        m->username = get_text(y, v, "'mqtt.username' (this rig's account on the broker)");
    if ((v = ymap_get(y, n, "password_file", NULL)) != NULL) {
        m->password_file = get_path(y, v, dir, "'mqtt.password_file' (a file whose first line is "
                                    "the password)");
        if (m->username == NULL)
            yerr(y, v, "'mqtt.password_file' needs 'mqtt.username' too");
    }
    if ((v = ymap_get(y, n, "site", NULL)) != NULL) {
        m->site = get_text(y, v, "'mqtt.site' (the facility's name in the topics)");
        if (m->site != NULL && !topic_level_ok(m->site))
            yerr(y, v, "'mqtt.site' is '%s': a topic level cannot hold '/', '+' or '#' and has at "
                 "most 64 bytes; write e.g. site: lab2", m->site);
    } else {
        m->site = strdup("default");
    }
    int64_t ns;
    if ((v = ymap_get(y, n, "interval", NULL)) != NULL &&
        ynode_duration(y, v, "mqtt interval", 100000000LL, 60000000000LL, &ns))
        m->interval_s = (double)ns / 1e9;
    if ((v = ymap_get(y, n, "queue", NULL)) != NULL && ynode_int(y, v, 10, 10000000, &l))
        m->queue = l;
    if ((v = ymap_get(y, n, "queue_bytes", NULL)) != NULL && ynode_int(y, v, 65536, 4L << 30, &l))
        m->queue_bytes = l;
    if ((v = ymap_get(y, n, "keepalive", NULL)) != NULL &&
        ynode_duration(y, v, "mqtt keepalive", 5000000000LL, 3600000000000LL, &ns))
        m->keepalive_s = (int)(ns / 1000000000LL);
}

/* Free the section's strings. */
void rig_mqtt_free(struct rig_mqtt *m)
{
    free(m->host);
    free(m->ca);
    free(m->cert);
    free(m->key);
    free(m->username);
    free(m->password_file);
    free(m->site);
    memset(m, 0, sizeof *m);
}
