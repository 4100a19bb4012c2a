/* perfuse-sim as a child process of perfused --sim. */
#include "simchild.h"
#include "base/log.h"
#include "base/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 10000

/* The path of perfuse-sim next to this executable. */
int simchild_default_path(char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        return -errno;
    exe[n] = '\0';
    snprintf(buf, len, "%s/perfuse-sim", dirname(exe));
    return 0;
}

/* Read one line from fd within the deadline. */
static int read_line(int fd, char *buf, size_t len, int64_t deadline_ns)
{
    size_t got = 0;
    while (got + 1 < len) {
        int64_t left = (deadline_ns - (int64_t)time_mono_ns()) / NS_PER_MS;
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return rc < 0 ? -errno : -ETIMEDOUT;
        ssize_t r = read(fd, buf + got, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -EPIPE;
        if (buf[got] == '\n') {
            buf[got] = '\0';
            return 0;
        }
        got++;
    }
    return -E2BIG;
}

/* Exec the simulator in the child with stdout on the pipe. */
static void exec_child(const char *sim_path, int out_fd, const char *rig_file, uint64_t seed,
                       const char *const *args)
{
    dup2(out_fd, STDOUT_FILENO);
    close(out_fd);
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%llu", (unsigned long long)seed);
    const char *argv[24] = { sim_path, "--die-with-parent", "--seed", seedbuf, "--rig-out",
                             rig_file };
    size_t n = 6;
    for (size_t i = 0; args != NULL && args[i] != NULL && n + 1 < sizeof argv / sizeof argv[0]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    execv(sim_path, (char *const *)argv);
    fprintf(stderr, "perfused: cannot run %s: %s\n", sim_path, strerror(errno));
    _exit(127);
}

/* Start the simulator and wait for its ready line. */
int simchild_start(struct simchild *sc, const char *sim_path, uint64_t seed,
                   const char *const *args, char *err, size_t errlen)
{
    memset(sc, 0, sizeof *sc);
    const char *base = getenv("XDG_RUNTIME_DIR");
    snprintf(sc->dir, sizeof sc->dir, "%s/perfuse-sim-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(sc->dir) == NULL) {
        snprintf(err, errlen, "cannot create %s: %s", sc->dir, strerror(errno));
        return -errno;
    }
    snprintf(sc->rig_file, sizeof sc->rig_file, "%s/sim-rig.yaml", sc->dir);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -errno;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return -errno;
    }
    if (pid == 0) {
        close(pfd[0]);
        exec_child(sim_path, pfd[1], sc->rig_file, seed, args);
    }
    close(pfd[1]);
    sc->pid = pid;
    char line[4096];
    int rc = read_line(pfd[0], line, sizeof line, (int64_t)time_mono_ns() + READY_TIMEOUT_MS * NS_PER_MS);
    close(pfd[0]);
    if (rc < 0) {
        snprintf(err, errlen, "%s did not report ready: %s", sim_path,
                 rc == -ETIMEDOUT ? "timed out after 10 s" : rc == -EPIPE ? "it exited" : strerror(-rc));
        simchild_stop(sc);
        return rc;
    }
    json_error_t jerr;
    json_t *j = json_loads(line, 0, &jerr);
    const char *rig = j ? json_string_value(json_object_get(j, "rig_file")) : NULL;
    if (rig == NULL || strcmp(rig, sc->rig_file) != 0) {
        snprintf(err, errlen, "unexpected ready line from %s: %.200s", sim_path, line);
        json_decref(j);
        simchild_stop(sc);
        return -EPROTO;
    }
    log_info("sim", "perfuse-sim ready (pid %d): %s", (int)pid, line);
    json_decref(j);
    return 0;
}

/* Stop the child: SIGTERM, then SIGKILL after 3 s; remove its directory. */
void simchild_stop(struct simchild *sc)
{
    if (sc->pid > 0) {
        kill(sc->pid, SIGTERM);
        /* A pidfd becomes readable when the child exits: wait on that event. */
        int pfd = (int)syscall(SYS_pidfd_open, sc->pid, 0);
        int status;
        if (pfd >= 0) {
            struct pollfd p = { .fd = pfd, .events = POLLIN };
            int rc;
            do
                rc = poll(&p, 1, 3000);
            while (rc < 0 && errno == EINTR);
            close(pfd);
            if (rc == 0) {
                log_warn("sim", "perfuse-sim did not stop within 3 s; killing it");
                kill(sc->pid, SIGKILL);
            }
        }
        waitpid(sc->pid, &status, 0);
        sc->pid = 0;
    }
    if (sc->rig_file[0]) {
        unlink(sc->rig_file);
        char tmp[PATH_MAX + 8];
        snprintf(tmp, sizeof tmp, "%s.tmp", sc->rig_file);
        unlink(tmp);
        sc->rig_file[0] = '\0';
    }
    if (sc->dir[0]) {
        rmdir(sc->dir);
        sc->dir[0] = '\0';
    }
}
