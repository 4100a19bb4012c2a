/*
 * The rig's optional 'mqtt:' section: the broker perfused publishes to
 * (controller/MQTT.md). Parsed with the rig; no I/O happens here.
 */
#ifndef PERFUSE_RIGMQTT_H
#define PERFUSE_RIGMQTT_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

struct ydoc;

#define RIG_MQTT_DEFAULT_PORT 1883
#define RIG_MQTT_DEFAULT_TLS_PORT 8883

struct rig_mqtt {
    bool on;                    /* the section is there */
    char *host;                 /* broker host name or address */
    int port;                   /* default 1883, 8883 with TLS */
    char *ca, *cert, *key;      /* TLS: ca file (NULL: no TLS); client certificate and key (optional, both or none) */
    char *username;             /* NULL: anonymous */
    char *password_file;        /* its first line is the password; NULL: none */
    char *site;                 /* the topic level before the rig's name; default "default" */
    double interval_s;          /* samples and events are published this often; default 1 s */
    long queue;                 /* messages held while the broker is out of reach; default 10000 */
    long queue_bytes;           /* and at most this many bytes of them; default 64 MiB */
    int keepalive_s;            /* MQTT keep-alive; default 10 s */
};

/* Parse the 'mqtt:' node n into m (relative file names are taken from dir,
 * the rig file's folder); every problem goes to y's diagnostics
 * (line:column, what to write instead). Strings in m are owned by m. */
void rig_mqtt_parse(struct ydoc *y, yaml_node_t *n, const char *dir, struct rig_mqtt *m);
/* Free m's strings. */
void rig_mqtt_free(struct rig_mqtt *m);

#endif
