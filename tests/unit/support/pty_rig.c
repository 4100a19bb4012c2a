/*
 * A driver's device on a pty.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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

/* Open another device name of the rig's driver on the same line; fails the test if it cannot. */
void *pty_rig_add(struct pty_rig *r, const char *name, const struct dev_param *params, size_t n)
{
    struct config_errors e;
    struct driver_channel ch[DRIVER_MAX_CHANNELS];
    size_t n_ch;
    void *dev = NULL;
    int rc = pty_rig_open_device(r->drv->name, name, params, n, &e, &dev, ch, &n_ch);
    if (rc != 0)
        fail_msg("%s: open: %d, first error: %s", name, rc, e.n > 0 ? e.text[0] : "none");
    return dev;
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
    r->drv = driver_find(driver);
    assert_non_null(r->drv);
    r->dev = pty_rig_add(r, name, params, n);
}

/* Close the link; then read, connect and safe_state must fail with -ENOTCONN, value untouched. */
void pty_rig_expect_closed_line(struct pty_rig *r)
{
    const double untouched = 12345.0;
    double v = untouched;
    link_close(&r->link);
    assert_int_equal(r->drv->read(r->dev, &r->link, 0, &v), -ENOTCONN);
    assert_int_equal(r->drv->connect(r->dev, &r->link), -ENOTCONN);
    if (r->drv->safe_state != NULL)
        assert_int_equal(r->drv->safe_state(r->dev, &r->link), -ENOTCONN);
    assert_float_equal(v, untouched, 0);
}

/* Close the device, the link and the pty. */
void pty_rig_close(struct pty_rig *r)
{
    r->drv->close(r->dev);
    link_close(&r->link);
    pty_close(&r->pty);
}
