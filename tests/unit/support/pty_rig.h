/*
 * A driver on a pty: a pty pair, a serial link open on its slave, and one
 * device of a driver opened from rig-file parameters, for tests that drive a
 * serial device through its driver while the test (a script or a model
 * responder) plays the device on the master.
 *
 * Ownership: the caller owns struct pty_rig; pty_rig_close() closes the
 * device, the link and the pty. The link's configuration lives in the struct,
 * so a test may close the link and open it again from r.lc. Devices added
 * with pty_rig_add() are the test's to close with r.drv->close(). Only the
 * test's main thread calls these.
 */
#ifndef PERFUSE_TEST_PTY_RIG_H
#define PERFUSE_TEST_PTY_RIG_H

#include <stddef.h>

#include "config_errors.h"
#include "drivers/driver.h"
#include "drivers/link.h"
#include "pty_pair.h"
#include "pty_script.h"

struct pty_rig {
    struct pty pty;
    struct link_config lc;
    struct bus_link link;
    const struct driver_ops *drv;
    void *dev;
    struct script script;       /* for the test's scripted responder, if it has one */
};

/* Open device name of driver from params, errors collected in e; returns open()'s result. */
int pty_rig_open_device(const char *driver, const char *name, const struct dev_param *params,
                        size_t n, struct config_errors *e, void **st, struct driver_channel *ch,
                        size_t *n_ch);

/* Open a pty, a link set up like line on it, and device name of driver; fails the test if any fails. */
void pty_rig_open(struct pty_rig *r, const struct link_config *line, const char *driver,
                  const char *name, const struct dev_param *params, size_t n);

/* Open another device name of the rig's driver on the same line; fails the test if it cannot. */
void *pty_rig_add(struct pty_rig *r, const char *name, const struct dev_param *params, size_t n);

/* Close the link; then read, connect and safe_state (if the driver has one) must fail with
 * -ENOTCONN and leave the value alone. The link stays closed for the test's own checks. */
void pty_rig_expect_closed_line(struct pty_rig *r);

/* Close the device, the link and the pty. */
void pty_rig_close(struct pty_rig *r);

#endif
