/*
 * A pseudo-terminal pair with a raw slave, standing in for a serial line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "pty_pair.h"

/* Open a pty pair with a raw slave; fails the test if it cannot. */
void pty_open(struct pty *p)
{
    p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(p->master >= 0);
    assert_int_equal(grantpt(p->master), 0);
    assert_int_equal(unlockpt(p->master), 0);
    snprintf(p->path, sizeof p->path, "%s", ptsname(p->master));
    p->slave = open(p->path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(p->slave >= 0);
    /* raw, so that no byte of a reply is translated or held back by the line discipline */
    struct termios t;
    assert_int_equal(tcgetattr(p->slave, &t), 0);
    cfmakeraw(&t);
    assert_int_equal(tcsetattr(p->slave, TCSANOW, &t), 0);
}

/* Close the ends that are still open (>= 0). */
void pty_close(struct pty *p)
{
    if (p->slave >= 0)
        close(p->slave);
    if (p->master >= 0)
        close(p->master);
}
