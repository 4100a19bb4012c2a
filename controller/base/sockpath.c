/* The control socket's path: its default, its directory's owner and mode, what
 * exists at it, and the credentials of the server a client reaches there. */
#include "sockpath.h"
#include "log.h"

#include <errno.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* path's directory into dir. */
static void dir_of(const char *path, char *dir, size_t len)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(dir, len, "%s", dirname(copy));
}

/* A user's name for messages: "name (uid N)" or "uid N". */
static void user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd pw, *res = NULL;
    char pwbuf[1024];
    if (getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &res) == 0 && res != NULL)
        snprintf(buf, len, "%s (uid %u)", pw.pw_name, (unsigned)uid);
    else
        snprintf(buf, len, "uid %u", (unsigned)uid);
}

/* The directory exists (made 0755 if it did not: viewers must reach the
 * read-only socket, and each socket's own mode says who may use it), is ours,
 * and only we may write it. */
static int check_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        if (errno != ENOENT || (mkdir(dir, 0755) < 0 && errno != EEXIST) ||
            (chmod(dir, 0755) < 0 && errno != EPERM) || stat(dir, &st) < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot create the socket directory %s: %s", dir, strerror(e));
            return -e;
        }
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "the socket directory %s is not a directory", dir);
        return -ENOTDIR;
    }
    if (st.st_uid != geteuid()) {
        char owner[96], me[96];
        user_name(st.st_uid, owner, sizeof owner);
        user_name(geteuid(), me, sizeof me);
        snprintf(err, errlen, "the socket directory %s belongs to %s, not to perfused's user %s, "
                 "who could replace the socket; 'chown' it to %s or give --socket a path in a "
                 "directory of perfused's own", dir, owner, me, me);
        return -EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen, "the socket directory %s is writable by %s (mode %04o), who could "
                 "replace the socket; run 'chmod go-w %s' (0755 lets viewers reach the read-only socket) "
                 "or give --socket a path in another directory", dir,
                 st.st_mode & S_IWOTH ? "everyone" : "its group", (unsigned)(st.st_mode & 07777), dir);
        return -EPERM;
    }
    return 0;
}

/* Refuse a path held by something other than a socket, or by a live daemon;
 * remove a socket left by a crash. */
static int check_existing(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket (%s); perfused does not remove it: "
                 "move it away or give --socket another path", path,
                 S_ISREG(st.st_mode) ? "a regular file" : S_ISDIR(st.st_mode) ? "a directory" :
                 S_ISLNK(st.st_mode) ? "a symbolic link" : "not a socket");
        return -EEXIST;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "another perfused is already running on %s; stop it first "
                 "or give this one --socket PATH", path);
        return -EADDRINUSE;
    }
    if (e == ECONNREFUSED) {
        log_warn("control", "removing stale socket %s (left by a crash)", path);
        unlink(path);
    }
    return 0;
}

/* The default socket path. */
void sockpath_default(char *buf, size_t len)
{
    const char *env = getenv("PERFUSE_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        snprintf(buf, len, "%s", env);
    else if (xdg && *xdg)
        snprintf(buf, len, "%s/perfuse/perfused.sock", xdg);
    else
        snprintf(buf, len, "/run/perfuse/perfused.sock");
}

/* The default read-only socket: perfused-ro.sock beside the control socket. */
void sockpath_default_ro(const char *socket_path, char *buf, size_t len)
{
    char dir[4096];
    dir_of(socket_path, dir, sizeof dir);
    snprintf(buf, len, "%s/perfused-ro.sock", dir);
}

int sockpath_prepare(const char *path, char *err, size_t errlen)
{
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    int rc = check_dir(dir, err, errlen);
    return rc < 0 ? rc : check_existing(path, err, errlen);
}

int sockpath_expected_uid(const char *path, uid_t *uid, char *err, size_t errlen)
{
    const char *want = getenv("PERFUSE_SERVER_USER");
    if (want != NULL && *want) {
        struct passwd pw, *res = NULL;
        char pwbuf[1024], *end;
        unsigned long n = strtoul(want, &end, 10);
        if (getpwnam_r(want, &pw, pwbuf, sizeof pwbuf, &res) == 0 && res != NULL) {
            *uid = pw.pw_uid;
            return 0;
        }
        if (*end == '\0' && end != want) {
            *uid = (uid_t)n;
            return 0;
        }
        snprintf(err, errlen, "PERFUSE_SERVER_USER names no user: '%s'", want);
        return -EINVAL;
    }
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    struct stat st;
    if (stat(dir, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot reach perfused at %s: %s: %s", path, dir, strerror(e));
        return -e;
    }
    *uid = st.st_uid;
    return 0;
}

int sockpath_check_server(int fd, const char *path, char *err, size_t errlen)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot learn who answers on %s: %s", path, strerror(e));
        return -e;
    }
    uid_t want;
    int rc = sockpath_expected_uid(path, &want, err, errlen);
    if (rc < 0)
        return rc;
    if (cred.uid == want || cred.uid == 0)
        return 0;
    char got[96], exp[96];
    user_name(cred.uid, got, sizeof got);
    user_name(want, exp, sizeof exp);
    snprintf(err, errlen, "refusing to talk to %s: the server there runs as %s, not as %s%s, "
             "so it is not the perfused of this rig (set PERFUSE_SERVER_USER or --server-user "
             "if perfused runs as another user)", path, got, exp, want != 0 ? " or root" : "");
    return -EPERM;
}
