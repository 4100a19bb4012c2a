/*
 * Serial ports for drivers. Real ports open through libserialport. A pty
 * (the simulator's lines) cannot: sp_get_port_by_name looks the name up in
 * sysfs, where ptys have no entry. For a terminal device libserialport does
 * not know, the same settings are applied with termios. Either way the port
 * is locked exclusively (flock plus TIOCEXCL), so two daemons never share it,
 * and the descriptor is non-blocking: every wait is a poll() with a timeout.
 */
#include "serial.h"
#include "base/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libserialport.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Bytes serial_drain discards at most, so a babbling device cannot hold the bus thread. */
#define DRAIN_MAX 65536

struct serial_port {
    struct sp_port *sp;     /* NULL when opened with termios */
    int fd;
    bool exclusive;         /* we set TIOCEXCL and must clear it */
};

/* Milliseconds left until deadline, never negative. */
static int ms_left(int64_t deadline)
{
    int64_t left = deadline - time_mono_ms();
    return left > 0 ? (int)left : 0;
}

/* The termios speed constant for a baud rate, or 0. */
static speed_t baud_const(int baud)
{
    static const struct { int baud; speed_t c; } table[] = {
        { 300, B300 }, { 600, B600 }, { 1200, B1200 }, { 2400, B2400 }, { 4800, B4800 },
        { 9600, B9600 }, { 19200, B19200 }, { 38400, B38400 }, { 57600, B57600 },
        { 115200, B115200 }, { 230400, B230400 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].baud == baud)
            return table[i].c;
    return 0;
}

/* Check the line settings before touching the port. */
static int check_settings(const char *path, int baud, char parity, int bits, int stop,
                          char *err, size_t errlen)
{
    if (path == NULL || *path == '\0') {
        snprintf(err, errlen, "no serial port given");
        return -EINVAL;
    }
    if (baud_const(baud) == 0) {
        snprintf(err, errlen, "%s: unsupported baud rate %d (expected 300 to 230400, e.g. 9600)",
                 path, baud);
        return -EINVAL;
    }
    if (parity != 'N' && parity != 'E' && parity != 'O') {
        snprintf(err, errlen, "%s: parity must be N, E or O, found '%c'", path, parity);
        return -EINVAL;
    }
    if (bits < 5 || bits > 8 || (stop != 1 && stop != 2)) {
        snprintf(err, errlen, "%s: %d data bits and %d stop bits are not possible "
                 "(expected 5-8 and 1 or 2)", path, bits, stop);
        return -EINVAL;
    }
    return 0;
}

/* Whether fd is the slave end of a pty (Unix98 pty slaves have majors 136-143). */
static bool is_pty(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) >= 136 &&
           major(st.st_rdev) <= 143;
}

/* Configure fd raw with termios. */
static int termios_setup(int fd, int baud, char parity, int bits, int stop)
{
    static const tcflag_t sizes[] = { CS5, CS6, CS7, CS8 };
    struct termios t;
    if (tcgetattr(fd, &t) < 0)
        return -errno;
    cfmakeraw(&t);
    cfsetispeed(&t, baud_const(baud));
    cfsetospeed(&t, baud_const(baud));
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
    t.c_cflag |= sizes[bits - 5] | CLOCAL | CREAD;
    if (parity == 'E')
        t.c_cflag |= PARENB;
    else if (parity == 'O')
        t.c_cflag |= PARENB | PARODD;
    if (stop == 2)
        t.c_cflag |= CSTOPB;
    t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &t) == 0)
        return 0;
    /* A pty keeps 8 bits without parity whatever it is asked. Asked again for
     * 7 bits or parity, nothing changes and the kernel says EINVAL; no wire
     * is there to disagree, so the settings are as good as applied. */
    int e = errno;
    return e == EINVAL && is_pty(fd) ? 0 : -e;
}

/* The message for a port another process holds. */
static int busy(const char *path, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s is held by another process (is another perfused or a terminal "
             "program using it?)", path);
    return -EBUSY;
}

/* Release a libserialport handle. */
static void free_sp(struct serial_port *p)
{
    if (p->sp == NULL)
        return;
    sp_close(p->sp);
    sp_free_port(p->sp);
    p->sp = NULL;
    p->fd = -1;
}

/* Open with libserialport; -ENODEV if it does not know the port (ptys). */
static int open_libserialport(struct serial_port *p, const char *path, int baud, char parity,
                              int bits, int stop, char *err, size_t errlen)
{
    if (sp_get_port_by_name(path, &p->sp) != SP_OK) {
        p->sp = NULL;
        return -ENODEV;
    }
    if (sp_open(p->sp, SP_MODE_READ_WRITE) != SP_OK) {
        int e = sp_last_error_code();
        char *msg = sp_last_error_message();
        snprintf(err, errlen, "cannot open %s: %s", path, msg ? msg : "unknown error");
        sp_free_error_message(msg);
        sp_free_port(p->sp);
        p->sp = NULL;
        return e == EBUSY ? busy(path, err, errlen) : -EIO;
    }
    enum sp_parity par = parity == 'E' ? SP_PARITY_EVEN
                       : parity == 'O' ? SP_PARITY_ODD : SP_PARITY_NONE;
    if (sp_set_baudrate(p->sp, baud) != SP_OK || sp_set_bits(p->sp, bits) != SP_OK ||
        sp_set_parity(p->sp, par) != SP_OK || sp_set_stopbits(p->sp, stop) != SP_OK ||
        sp_set_flowcontrol(p->sp, SP_FLOWCONTROL_NONE) != SP_OK ||
        sp_get_port_handle(p->sp, &p->fd) != SP_OK) {
        char *msg = sp_last_error_message();
        snprintf(err, errlen, "cannot configure %s: %s", path, msg ? msg : "unknown error");
        sp_free_error_message(msg);
        free_sp(p);
        return -EIO;
    }
    /* libserialport may leave the descriptor blocking; every wait here is a poll(). */
    int fl = fcntl(p->fd, F_GETFL);
    if (fl < 0 || fcntl(p->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "cannot configure %s: %s", path, strerror(errno));
        free_sp(p);
        return -EIO;
    }
    return 0;
}

/* Open a terminal device libserialport does not know (a pty) with termios. */
static int open_termios(struct serial_port *p, const char *path, int baud, char parity,
                        int bits, int stop, char *err, size_t errlen)
{
    p->fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (p->fd < 0) {
        int e = errno;
        if (e == EBUSY)
            return busy(path, err, errlen);
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        return -e;
    }
    if (!isatty(p->fd)) {
        snprintf(err, errlen, "%s is not a serial port (not a terminal device)", path);
        return -ENOTTY;
    }
    int rc = termios_setup(p->fd, baud, parity, bits, stop);
    if (rc < 0)
        snprintf(err, errlen, "cannot configure %s: %s", path, strerror(-rc));
    return rc;
}

/* Take the exclusive locks: flock against other perfused, TIOCEXCL against other openers. */
static int lock_port(struct serial_port *p, const char *path, char *err, size_t errlen)
{
    if (flock(p->fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            return busy(path, err, errlen);
        snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
        return -errno;
    }
    /* Best effort: some USB adapters' drivers refuse it, and flock already guards us. */
    p->exclusive = ioctl(p->fd, TIOCEXCL) == 0;
    return 0;
}

/* Whether another process holds path's lock; a missing port is not in use. */
int serial_check_free(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == EBUSY ? busy(path, err, errlen) : 0;
    int rc = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK)
        rc = busy(path, err, errlen);
    close(fd);      /* also drops the lock if we took it */
    return rc;
}

/* Open a serial port exclusively. */
int serial_open(const char *path, int baud, char parity, int data_bits, int stop_bits,
                struct serial_port **out, char *err, size_t errlen)
{
    int rc = check_settings(path, baud, parity, data_bits, stop_bits, err, errlen);
    if (rc < 0)
        return rc;
    struct serial_port *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    p->fd = -1;
    rc = open_libserialport(p, path, baud, parity, data_bits, stop_bits, err, errlen);
    if (rc == -ENODEV)
        rc = open_termios(p, path, baud, parity, data_bits, stop_bits, err, errlen);
    if (rc == 0)
        rc = lock_port(p, path, err, errlen);
    if (rc < 0) {
        serial_close(p);
        return rc;
    }
    /* Whatever is waiting was meant for a previous owner of the port. */
    serial_drain(p);
    *out = p;
    return 0;
}

/* The errno a failed read or write means for a driver: a vanished port is a lost link. */
static int io_error(int e)
{
    return e == EIO || e == ENXIO || e == ENODEV || e == EBADF ? -ENOTCONN : -e;
}

/* Write all of buf within timeout_ms. */
int serial_write(struct serial_port *p, const void *buf, size_t len, unsigned timeout_ms)
{
    if (p == NULL || p->fd < 0)
        return -ENOTCONN;
    const char *b = buf;
    int64_t deadline = time_mono_ms() + timeout_ms;
    while (len > 0) {
        ssize_t w = write(p->fd, b, len);
        if (w > 0) {
            b += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return io_error(errno);
        struct pollfd pf = { .fd = p->fd, .events = POLLOUT };
        int rc = poll(&pf, 1, ms_left(deadline));
        if (rc == 0)
            return -ETIMEDOUT;
        if (rc < 0 && errno != EINTR)
            return -errno;
        if (rc > 0 && (pf.revents & (POLLERR | POLLHUP | POLLNVAL)))
            return -ENOTCONN;
    }
    return 0;
}

/* Read up to len bytes, waiting at most timeout_ms for the first. */
ssize_t serial_read(struct serial_port *p, void *buf, size_t len, unsigned timeout_ms)
{
    if (p == NULL || p->fd < 0)
        return -ENOTCONN;
    int64_t deadline = time_mono_ms() + timeout_ms;
    for (;;) {
        struct pollfd pf = { .fd = p->fd, .events = POLLIN };
        int rc = poll(&pf, 1, ms_left(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -errno;
        if (rc == 0)
            return 0;
        ssize_t r = read(p->fd, buf, len);
        if (r > 0)
            return r;
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            return io_error(errno);
        /* Readable but nothing to read: the other end hung up. */
        if (pf.revents & (POLLHUP | POLLERR | POLLNVAL))
            return -ENOTCONN;
        if (ms_left(deadline) == 0)
            return 0;
    }
}

/* Discard unread input. */
void serial_drain(struct serial_port *p)
{
    if (p == NULL || p->fd < 0)
        return;
    tcflush(p->fd, TCIFLUSH);
    /* tcflush misses bytes still on their way through a pty; read those too. */
    char junk[256];
    size_t total = 0;
    ssize_t r;
    while (total < DRAIN_MAX && (r = read(p->fd, junk, sizeof junk)) > 0)
        total += (size_t)r;
}

/* Close and free. */
void serial_close(struct serial_port *p)
{
    if (p == NULL)
        return;
    /* Exclusive mode outlives this descriptor while another holds the tty (the
     * simulator keeps its ptys open): clear it so our own reconnect can open it.
     * Only if it is ours: a refused second opener must not unlock the first. */
    if (p->exclusive)
        (void)ioctl(p->fd, TIOCNXCL);
    if (p->sp != NULL)
        free_sp(p);
    else if (p->fd >= 0)
        close(p->fd);
    free(p);
}

/* Bytes as printable text for messages. */
void serial_escape(const void *in, size_t n, char *out, size_t len)
{
    const unsigned char *b = in;
    size_t o = 0;
    if (len == 0)
        return;
    for (size_t i = 0; i < n && o + 5 < len; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
            out[o++] = (char)b[i];
        else
            o += (size_t)snprintf(out + o, len - o, "\\x%02x", b[i]);
    }
    out[o] = '\0';
}
