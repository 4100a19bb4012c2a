/*
 * Serial ports for drivers. Real ports open through libserialport. A pty
 * (the simulator's lines) cannot: sp_get_port_by_name looks the name up in
 * sysfs, where ptys have no entry. For a terminal device libserialport does
 * not know, the same settings are applied with termios. Either way the port
 * is locked exclusively (flock plus TIOCEXCL), so two daemons never share it.
 */
#include "serial.h"

#include <errno.h>
#include <fcntl.h>
#include <libserialport.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

struct serial_port {
    struct sp_port *sp;     /* NULL when opened with termios */
    int fd;
};

/* The termios speed constant for a baud rate, or 0. */
static speed_t baud_const(int baud)
{
    static const struct { int baud; speed_t c; } table[] = {
        { 1200, B1200 }, { 2400, B2400 }, { 4800, B4800 }, { 9600, B9600 },
        { 19200, B19200 }, { 38400, B38400 }, { 57600, B57600 }, { 115200, B115200 },
        { 230400, B230400 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].baud == baud)
            return table[i].c;
    return 0;
}

/* Configure fd raw with termios. */
static int termios_setup(int fd, int baud, char parity, int bits, int stop)
{
    struct termios t;
    if (tcgetattr(fd, &t) < 0)
        return -errno;
    cfmakeraw(&t);
    speed_t sp = baud_const(baud);
    if (sp == 0)
        return -EINVAL;
    cfsetispeed(&t, sp);
    cfsetospeed(&t, sp);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
    t.c_cflag |= (bits == 7 ? CS7 : CS8) | CLOCAL | CREAD;
    if (parity == 'E')
        t.c_cflag |= PARENB;
    else if (parity == 'O')
        t.c_cflag |= PARENB | PARODD;
    if (stop == 2)
        t.c_cflag |= CSTOPB;
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    return tcsetattr(fd, TCSANOW, &t) < 0 ? -errno : 0;
}

/* Open with libserialport; returns -ENODEV if it does not know the port. */
static int open_libserialport(struct serial_port *p, const char *path, int baud, char parity,
                              int bits, int stop, char *err, size_t errlen)
{
    if (sp_get_port_by_name(path, &p->sp) != SP_OK) {
        p->sp = NULL;
        return -ENODEV;
    }
    if (sp_open(p->sp, SP_MODE_READ_WRITE) != SP_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, sp_last_error_message());
        sp_free_port(p->sp);
        p->sp = NULL;
        return -EIO;
    }
    enum sp_parity par = parity == 'E' ? SP_PARITY_EVEN : parity == 'O' ? SP_PARITY_ODD : SP_PARITY_NONE;
    if (sp_set_baudrate(p->sp, baud) != SP_OK || sp_set_bits(p->sp, bits) != SP_OK ||
        sp_set_parity(p->sp, par) != SP_OK || sp_set_stopbits(p->sp, stop) != SP_OK ||
        sp_set_flowcontrol(p->sp, SP_FLOWCONTROL_NONE) != SP_OK) {
        snprintf(err, errlen, "cannot configure %s: %s", path, sp_last_error_message());
        sp_close(p->sp);
        sp_free_port(p->sp);
        p->sp = NULL;
        return -EIO;
    }
    sp_get_port_handle(p->sp, &p->fd);
    return 0;
}

/* Open a serial port exclusively. */
int serial_open(const char *path, int baud, char parity, int data_bits, int stop_bits,
                struct serial_port **out, char *err, size_t errlen)
{
    struct serial_port *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->fd = -1;
    int rc = open_libserialport(p, path, baud, parity, data_bits, stop_bits, err, errlen);
    if (rc == -ENODEV) {
        p->fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (p->fd < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        } else if (!isatty(p->fd)) {
            rc = -ENOTTY;
            snprintf(err, errlen, "%s is not a serial port", path);
        } else {
            rc = termios_setup(p->fd, baud, parity, data_bits, stop_bits);
            if (rc < 0)
                snprintf(err, errlen, "cannot configure %s: %s", path, strerror(-rc));
        }
    }
    if (rc == 0 && flock(p->fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(err, errlen, "%s is held by another process (is another perfused running?)", path);
    }
    if (rc == 0)
        ioctl(p->fd, TIOCEXCL);
    if (rc < 0) {
        serial_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* Write all of buf within timeout_ms. */
int serial_write(struct serial_port *p, const void *buf, size_t len, unsigned timeout_ms)
{
    const char *b = buf;
    while (len > 0) {
        ssize_t w = write(p->fd, b, len);
        if (w > 0) {
            b += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return errno == EIO ? -ENOTCONN : -errno;
        struct pollfd pf = { .fd = p->fd, .events = POLLOUT };
        int rc = poll(&pf, 1, (int)timeout_ms);
        if (rc == 0)
            return -ETIMEDOUT;
        if (rc < 0 && errno != EINTR)
            return -errno;
    }
    return 0;
}

/* Read up to len bytes, waiting at most timeout_ms for the first. */
ssize_t serial_read(struct serial_port *p, void *buf, size_t len, unsigned timeout_ms)
{
    struct pollfd pf = { .fd = p->fd, .events = POLLIN };
    int rc;
    do
        rc = poll(&pf, 1, (int)timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return -errno;
    if (rc == 0)
        return 0;
    if (pf.revents & (POLLHUP | POLLERR | POLLNVAL))
        if (!(pf.revents & POLLIN))
            return -ENOTCONN;
    ssize_t r = read(p->fd, buf, len);
    if (r < 0)
        return errno == EAGAIN ? 0 : (errno == EIO ? -ENOTCONN : -errno);
    return r;
}

/* Discard unread input. */
void serial_drain(struct serial_port *p)
{
    tcflush(p->fd, TCIFLUSH);
    char junk[256];
    while (read(p->fd, junk, sizeof junk) > 0)
        ;
}

/* Close and free. */
void serial_close(struct serial_port *p)
{
    if (p == NULL)
        return;
    if (p->sp != NULL) {
        sp_close(p->sp);
        sp_free_port(p->sp);
    } else if (p->fd >= 0) {
        close(p->fd);
    }
    free(p);
}
