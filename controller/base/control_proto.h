/*
 * The control protocol's wire format, shared by perfused and perfusectl.
 * JSON lines over a Unix stream socket; documented in controller/CONTROL.md.
 * Bump CONTROL_PROTOCOL_VERSION on any incompatible change to requests or replies.
 */
#ifndef PERFUSE_CONTROL_PROTO_H
#define PERFUSE_CONTROL_PROTO_H

/* 2: several runs at once (run "name", "run" on run-scoped commands, status
 * "runs"). The greeting keeps "protocol": CONTROL_PROTOCOL_BASE, which every
 * client knows, and lists the versions spoken in "protocols": a version-1
 * client goes on working while one run is active. */
#define CONTROL_PROTOCOL_VERSION 2
#define CONTROL_PROTOCOL_BASE 1
#define CONTROL_MAX_LINE (64 * 1024)        /* longest request line accepted */
#define CONTROL_MAX_QUEUED (1024 * 1024)    /* unsent reply bytes before a client is dropped */
#define CONTROL_QUEUE_HIGH (64 * 1024)      /* unsent reply bytes above which a client is sent
                                             * nothing more (requests wait, watches skip) */
#define CONTROL_QUEUE_LOW (16 * 1024)       /* ... until they drain below this */
#define CONTROL_STALL_MS 5000               /* a client above the mark this long is dropped */
#define CONTROL_MAX_CLIENTS 64              /* connections served at once (perfused --max-clients) */
#define CONTROL_BUDGET_NS 2000000           /* request handling per loop turn */
#define CONTROL_EVENTS_PAGE 500             /* events in one reply, at most */
#define CONTROL_EVENTS_BYTES (128 * 1024)   /* and about this many bytes */
#define CONTROL_EVENTS_CHUNK 32             /* events written per loop turn and client */
#define CONTROL_WATCH_EVENTS 100            /* new events in one watch update, at most */

#endif
