/* The client side of the control protocol, for perfusectl and tests. Blocking. */
#ifndef PERFUSE_CTLCLIENT_H
#define PERFUSE_CTLCLIENT_H

#include <stddef.h>

#include <jansson.h>

struct ctlclient;

/* Connect to path, check that the server runs as the expected user (see
 * sockpath_check_server; -EPERM if not, before anything is sent or read) and
 * read the greeting. Returns 0, or a negative errno with a message in err. */
int ctlclient_connect(const char *path, struct ctlclient **out, char *err, size_t errlen);
/* Send req (borrowed; "id" is added) and wait for its reply (returned, owned by
 * the caller). Returns 0, or a negative errno with a message in err. */
int ctlclient_call(struct ctlclient *c, json_t *req, json_t **reply, char *err, size_t errlen);
/* Wait for the next message the daemon sends unasked (a watch update, or the
 * error line of a dropped client). Returns 0 with *msg owned by the caller, or
 * a negative errno with a message in err (the daemon closed the connection). */
int ctlclient_next(struct ctlclient *c, json_t **msg, char *err, size_t errlen);
/* The daemon's version from the greeting. */
const char *ctlclient_server_version(const struct ctlclient *c);
void ctlclient_close(struct ctlclient *c);

#endif
