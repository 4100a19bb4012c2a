/* Alerts: the rig's command, run with the details in its environment, rate-limited. */
#include "alerts.h"
#include "base/log.h"
#include "base/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define HOUR_NS (3600LL * 1000000000LL)
#define ALERT_TIMEOUT_MS 60000

extern char **environ;

/* One running command: its process, watched through a pidfd, and its time limit. */
struct alert_proc {
    uv_poll_t poll;             /* the pidfd: readable once the command has exited */
    uv_timer_t timer;
    struct alerts *a;
    pid_t pid;
    int pidfd;
    int closing;
};

void alerts_init(struct alerts *a, uv_loop_t *loop, const char *command, const char *rig,
                 const char *host, double min_interval_s, int max_per_hour)
{
    memset(a, 0, sizeof *a);
    a->loop = loop;
    a->command = command && *command ? strdup(command) : NULL;
    snprintf(a->rig, sizeof a->rig, "%s", rig ? rig : "");
    snprintf(a->host, sizeof a->host, "%s", host ? host : "");
    a->min_interval_ns = (int64_t)(min_interval_s * 1e9);
    a->max_per_hour = max_per_hour;
}

void alerts_free(struct alerts *a)
{
    free(a->command);
    a->command = NULL;
}

/* Whether an alert for key may go out now; remembers it if so. */
static int allowed(struct alerts *a, const char *key, int64_t now)
{
    if (now - a->hour_start_ns >= HOUR_NS || a->hour_start_ns == 0) {
        a->hour_start_ns = now;
        a->sent_this_hour = 0;
    }
    if (a->sent_this_hour >= a->max_per_hour || a->running >= ALERTS_MAX_RUNNING)
        return 0;
    size_t i;
    for (i = 0; i < a->n_keys; i++)
        if (strcmp(a->keys[i].key, key) == 0)
            break;
    if (i < a->n_keys && now - a->keys[i].last_ns < a->min_interval_ns)
        return 0;
    if (i == a->n_keys) {
        if (a->n_keys < ALERTS_KEYS)
            a->n_keys++;
        else
            i = 0;          /* full: reuse the oldest slot */
        snprintf(a->keys[i].key, sizeof a->keys[i].key, "%s", key);
    }
    a->keys[i].last_ns = now;
    a->sent_this_hour++;
    return 1;
}

/* Both handles of a finished command are closed: free it. */
static void handle_closed(uv_handle_t *h)
{
    struct alert_proc *p = h->data;
    if (--p->closing == 0) {
        close(p->pidfd);
        free(p);
    }
}

/* The command exited (its pidfd became readable): reap it. */
static void exited(uv_poll_t *poll, int status, int events)
{
    struct alert_proc *p = poll->data;
    (void)status;
    (void)events;
    int ws = 0;
    if (waitpid(p->pid, &ws, WNOHANG) == 0)
        return;                             /* not yet: the pidfd will say so again */
    p->a->running--;
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        p->a->failed++;
        log_warn("alerts", "the alert command exited with %s %d", WIFSIGNALED(ws) ? "signal" : "status",
                 WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
    }
    uv_timer_stop(&p->timer);
    p->closing = 2;
    uv_close((uv_handle_t *)&p->poll, handle_closed);
    uv_close((uv_handle_t *)&p->timer, handle_closed);
}

/* The command ran too long: kill it (exited() then cleans up). The pid is
 * still ours to signal: nothing reaps it but exited(). */
static void too_long(uv_timer_t *t)
{
    struct alert_proc *p = t->data;
    log_warn("alerts", "the alert command ran for %d s; killing it", ALERT_TIMEOUT_MS / 1000);
    kill(p->pid, SIGKILL);
}

/* Start /bin/sh -c command with env: stdin from /dev/null, stdout and stderr
 * to our stderr, and no other descriptor of ours. Every descriptor perfused
 * opens is close-on-exec, but one opened by a library (HDF5) on another
 * thread can be caught between its open and its fcntl, so the child closes
 * everything above 2 as well. Returns the pid, or a negative errno. */
static pid_t spawn_command(const char *command, char **env)
{
    char *args[] = { "/bin/sh", "-c", (char *)command, NULL };
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct rlimit rl;
    unsigned int max_fd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
                          rl.rlim_cur < 1048576 ? (unsigned int)rl.rlim_cur : 1048576;
    /* No signal handler of ours may run in the child before exec (libuv's
     * would write to the loop's pipe, shared with us). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: async-signal-safe calls only, up to exec. */
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        for (int sig = 1; sig < NSIG; sig++)
            sigaction(sig, &dfl, NULL);
        if (devnull >= 0)
            dup2(devnull, 0);
        else
            close(0);
        dup2(2, 1);
        if (close_range(3, ~0U, 0) < 0)
            for (unsigned int fd = 3; fd < max_fd; fd++)
                close((int)fd);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve("/bin/sh", args, env);
        _exit(127);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (devnull >= 0)
        close(devnull);
    return pid < 0 ? -e : pid;
}

int alerts_send(struct alerts *a, int64_t now, const struct alert_info *in)
{
    if (a->command == NULL)
        return 0;
    char key[104];
    snprintf(key, sizeof key, "%s/%s", in->kind, in->source ? in->source : "");
    if (!allowed(a, key, now)) {
        a->suppressed++;
        return 0;
    }
    /* The environment: ours, then the alert's. */
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **env = calloc(n_env + 16, sizeof *env);
    char vars[12][320];
    if (env == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "PERFUSE_", 8) != 0)
            env[k++] = environ[i];
    char when[40];
    time_iso8601(time_wall_ns(), when, sizeof when);
    const char *names[12] = { "PERFUSE_ALERT", "PERFUSE_SEVERITY", "PERFUSE_SOURCE", "PERFUSE_CODE",
                              "PERFUSE_MESSAGE", "PERFUSE_TIME", "PERFUSE_RIG", "PERFUSE_HOST",
                              "PERFUSE_RUN_ID", "PERFUSE_PROTOCOL", "PERFUSE_FILE", "PERFUSE_SUPPRESSED" };
    char supp[24];
    snprintf(supp, sizeof supp, "%llu", (unsigned long long)a->suppressed);
    const char *vals[12] = { in->kind, in->severity, in->source, in->code, in->message, when, a->rig,
                             a->host, in->run_id, in->protocol, in->file, supp };
    for (int i = 0; i < 12; i++) {
        snprintf(vars[i], sizeof vars[i], "%s=%s", names[i], vals[i] ? vals[i] : "");
        env[k++] = vars[i];
    }
    env[k] = NULL;
    struct alert_proc *p = calloc(1, sizeof *p);
    if (p == NULL) {
        free(env);
        return -ENOMEM;
    }
    p->a = a;
    p->pid = spawn_command(a->command, env);
    free(env);
    int rc = p->pid < 0 ? (int)p->pid : 0;
    if (rc == 0) {
        p->pidfd = pidfd_open(p->pid, 0);
        if (p->pidfd < 0) {
            rc = -errno;
            kill(p->pid, SIGKILL);          /* cannot be watched: do not leave it behind */
            waitpid(p->pid, NULL, 0);
        } else if ((rc = uv_poll_init(a->loop, &p->poll, p->pidfd)) < 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            close(p->pidfd);
        }
    }
    if (rc < 0) {
        a->failed++;
        log_warn("alerts", "cannot run the alert command: %s", strerror(-rc));
        free(p);
        return rc;
    }
    p->poll.data = p;
    uv_poll_start(&p->poll, UV_READABLE, exited);
    uv_timer_init(a->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, too_long, ALERT_TIMEOUT_MS, 0);
    a->running++;
    a->sent++;
    a->suppressed = 0;
    log_info("alerts", "alert sent: %s %s %s", in->kind, in->source ? in->source : "", in->code ? in->code : "");
    return 1;
}
