/*
 * systemd service notification (sd_notify): READY when the daemon can take
 * commands, WATCHDOG pings from the loop thread while it turns (a stuck loop
 * stops them and systemd restarts the daemon, which then continues the run
 * from its journal), STOPPING on shutdown. Without NOTIFY_SOCKET, no-ops.
 */
#ifndef PERFUSE_SDNOTIFY_H
#define PERFUSE_SDNOTIFY_H

#include <uv.h>

struct sdnotify {
    uv_timer_t timer;
    int watching;               /* the watchdog timer runs */
};

/* Tell systemd the daemon is ready (with a one-line status) and, if the unit
 * has WatchdogSec=, start pinging at half its interval on loop. */
void sdnotify_ready(struct sdnotify *n, uv_loop_t *loop, const char *status);
/* Tell systemd the daemon is stopping, and stop the pings. */
void sdnotify_stopping(struct sdnotify *n);

#endif
