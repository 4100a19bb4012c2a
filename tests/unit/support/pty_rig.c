/*
 * A driver's device on a pty.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pty_rig.h"

/* Open device name of driver from params, errors collected in e; returns open()'s result. */
int pty_rig_open_device(const char *driver, const char *name, const struct dev_param *params,
                        size_t n, struct config_errors *e, void **st, struct driver_channel *ch,
                        size_t *n_ch)
{
    memset(e, 0, sizeof *e);
    struct dev_config cfg = { .name = name, .file = "rig.yaml", .dir = ".", .params = params,
                              .n_params = n, .error = config_errors_record, .error_ctx = e };
    const struct driver_ops *drv = driver_find(driver);
    assert_non_null(drv);
    return drv->open(&cfg, st, ch, n_ch);
}

/* Open a pty, a link set up like line on it, and device name of driver; fails the test if any fails. */
void pty_rig_open(struct pty_rig *r, const struct link_config *line, const char *driver,
                  const char *name, const struct dev_param *params, size_t n)
{
    memset(r, 0, sizeof *r);
    pty_open(&r->pty);
    r->lc = *line;
    r->lc.type = LINK_SERIAL;
    r->lc.port = r->pty.path;
    assert_int_equal(link_open(&r->link, &r->lc), 0);
    struct config_errors e;
    struct driver_channel ch[DRIVER_MAX_CHANNELS];
    size_t n_ch;
    int rc = pty_rig_open_device(driver, name, params, n, &e, &r->dev, ch, &n_ch);
    if (rc != 0)
        fail_msg("%s: open: %d, first error: %s", name, rc, e.n > 0 ? e.text[0] : "none");
    r->drv = driver_find(driver);
}

/* Close the device, the link and the pty. */
void pty_rig_close(struct pty_rig *r)
{
    r->drv->close(r->dev);
    link_close(&r->link);
    pty_close(&r->pty);
}
