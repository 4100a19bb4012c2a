/* sd_notify: readiness, watchdog pings from the loop, stopping. */
#include "sdnotify.h"
#include "base/log.h"

#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

/* One ping: the loop is alive. */
static void ping(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

void sdnotify_ready(struct sdnotify *n, uv_loop_t *loop, const char *status)
{
    char msg[256];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    sd_notify(0, msg);
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uv_timer_init(loop, &n->timer);
        uint64_t ms = usec / 2000 ? usec / 2000 : 1;
        uv_timer_start(&n->timer, ping, 0, ms);
        n->watching = 1;
        log_info("daemon", "systemd watchdog: pinging every %llu ms", (unsigned long long)ms);
    }
}

void sdnotify_stopping(struct sdnotify *n)
{
    sd_notify(0, "STOPPING=1");
    if (n->watching) {
        uv_timer_stop(&n->timer);
        uv_close((uv_handle_t *)&n->timer, NULL);
        n->watching = 0;
    }
}
