/*
 * The control protocol's wire format, shared by perfused and perfusectl.
 * JSON lines over a Unix stream socket; documented in controller/CONTROL.md.
 * Bump CONTROL_PROTOCOL_VERSION on any incompatible change to requests or replies.
 */
#ifndef PERFUSE_CONTROL_PROTO_H
#define PERFUSE_CONTROL_PROTO_H

#define CONTROL_PROTOCOL_VERSION 1
#define CONTROL_MAX_LINE (64 * 1024)        /* longest request line accepted */
#define CONTROL_MAX_QUEUED (1024 * 1024)    /* unsent reply bytes before a client is dropped */

#endif
