/* Bus links: open and close the transport of a serial, Modbus RTU or Modbus TCP bus. */
#include "link.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>

static const char *const type_names[] = { "serial", "modbus-rtu", "modbus-tcp" };

/* Parse a bus type name. */
int link_type_parse(const char *s, enum link_type *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, type_names[i]) == 0) {
            *out = (enum link_type)i;
            return 0;
        }
    return -EINVAL;
}

const char *link_type_name(enum link_type t)
{
    return type_names[t];
}

/* Set link->err. */
void link_seterr(struct bus_link *link, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(link->err, sizeof link->err, fmt, ap);
    va_end(ap);
}

/* Open a Modbus link; recovery is ours (the library's can loop forever). */
static int open_modbus(struct bus_link *link, const struct link_config *cfg)
{
    if (cfg->type == LINK_MODBUS_RTU)
        link->mb = modbus_new_rtu(cfg->port, cfg->baud, cfg->parity, cfg->data_bits, cfg->stop_bits);
    else
        link->mb = modbus_new_tcp(cfg->host, cfg->tcp_port);
    if (link->mb == NULL) {
        link_seterr(link, "%s: %s", cfg->name, strerror(errno));
        return -EINVAL;
    }
    modbus_set_error_recovery(link->mb, MODBUS_ERROR_RECOVERY_NONE);
    uint32_t ms = cfg->timeout_ms ? cfg->timeout_ms : 200;
    modbus_set_response_timeout(link->mb, ms / 1000, (ms % 1000) * 1000);
    if (modbus_connect(link->mb) < 0) {
        if (cfg->type == LINK_MODBUS_RTU)
            link_seterr(link, "cannot open %s: %s", cfg->port, modbus_strerror(errno));
        else
            link_seterr(link, "cannot connect to %s:%d: %s", cfg->host, cfg->tcp_port,
                        modbus_strerror(errno));
        modbus_free(link->mb);
        link->mb = NULL;
        return -ENOTCONN;
    }
    if (cfg->type == LINK_MODBUS_RTU && flock(modbus_get_socket(link->mb), LOCK_EX | LOCK_NB) < 0) {
        link_seterr(link, "%s is held by another process (is another perfused running?)", cfg->port);
        modbus_close(link->mb);
        modbus_free(link->mb);
        link->mb = NULL;
        return -EBUSY;
    }
    return 0;
}

/* Open the transport. */
int link_open(struct bus_link *link, const struct link_config *cfg)
{
    link->cfg = cfg;
    link->err[0] = '\0';
    if (cfg->type != LINK_SERIAL)
        return open_modbus(link, cfg);
    return serial_open(cfg->port, cfg->baud, cfg->parity, cfg->data_bits, cfg->stop_bits,
                       &link->serial, link->err, sizeof link->err);
}

/* Close the transport. */
void link_close(struct bus_link *link)
{
    if (link->mb != NULL) {
        modbus_close(link->mb);
        modbus_free(link->mb);
        link->mb = NULL;
    }
    serial_close(link->serial);
    link->serial = NULL;
}
