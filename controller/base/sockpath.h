/*
 * Where the control socket is by default, where it may be bound, and whom a
 * client may trust there.
 *
 * The socket's directory decides who can replace the socket, so it must belong
 * to the daemon's user and be writable by nobody else; whatever already sits
 * at the socket's path is removed only if it is a socket nobody answers on
 * (one left by a crash), never a file. Blocking (start-up, perfusectl).
 */
#ifndef PERFUSE_SOCKPATH_H
#define PERFUSE_SOCKPATH_H

#include <stddef.h>
#include <sys/types.h>

/* The default control socket: $PERFUSE_SOCKET, else
 * $XDG_RUNTIME_DIR/perfuse/perfused.sock, else /run/perfuse/perfused.sock. */
void sockpath_default(char *buf, size_t len);

/* The default read-only socket: perfused-ro.sock in socket_path's directory. */
void sockpath_default_ro(const char *socket_path, char *buf, size_t len);

/* Make path ready to bind: create its directory (0755) if missing; refuse a
 * directory of another user or one writable by group or others; refuse a path
 * that exists and is not a socket, or on which a daemon answers; remove a
 * stale socket. Returns 0, or a negative errno with a message naming the
 * directory or path and the fix in err. */
int sockpath_prepare(const char *path, char *err, size_t errlen);

/* The user a client expects the server at path to run as: the user named by
 * $PERFUSE_SERVER_USER (a name or a uid) if set, else the owner of path's
 * directory. Returns 0 with *uid set, or a negative errno with a message in err. */
int sockpath_expected_uid(const char *path, uid_t *uid, char *err, size_t errlen);

/* Check the credentials (SO_PEERCRED) of the server connected on fd: its uid
 * must be the expected one, or root. Returns 0, or -EPERM (or another
 * negative errno) with a message in err naming both users. */
int sockpath_check_server(int fd, const char *path, char *err, size_t errlen);

#endif
