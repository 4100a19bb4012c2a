/* The simulated rig's Modbus slaves (RTU on a pty, TCP on loopback), through libmodbus. */
#include "sim_modbus.h"
#include "base/log.h"
#include "drivers/mbcodec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <modbus.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RTU_BUF 512

struct sim_modbus {
    struct sim_physics *p;
    const struct sim_faults_table *faults;
    int pair[2];                            /* libmodbus writes RTU replies here, we forward them */
    modbus_t *rtu, *tcp;
    modbus_mapping_t *chip[SIM_CHIPS];      /* RTU units 1, 2 */
    modbus_mapping_t *chip3;                /* RTU unit 3: the pressure-driven chip's sensors */
    modbus_mapping_t *valve, *incubator;    /* TCP units 1, 2 */
    modbus_mapping_t *pc1;                  /* TCP unit 3: the pressure controller */
    uint8_t buf[SIM_RTU_LINES][RTU_BUF];    /* each RTU line's bytes being framed */
    size_t len[SIM_RTU_LINES];
    int trace_fd;
};

/* Create the register maps and contexts. */
int sim_modbus_create(struct sim_modbus **out, struct sim_physics *p,
                      const struct sim_faults_table *faults)
{
    struct sim_modbus *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -ENOMEM;
    m->p = p;
    m->faults = faults;
    m->pair[0] = m->pair[1] = -1;
    m->trace_fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, m->pair) < 0) {
        free(m);
        return -errno;
    }
    m->chip[0] = modbus_mapping_new(0, 0, 0, 6);
    m->chip[1] = modbus_mapping_new(0, 0, 0, 4);
    m->valve = modbus_mapping_new(0, 1, 1, 0);
    m->incubator = modbus_mapping_new(0, 0, 1, 1);
    m->chip3 = modbus_mapping_new(0, 0, 0, 4);
    m->pc1 = modbus_mapping_new(0, 0, 2, 4);
    /* The RTU context never opens its device: it writes replies to the pty master. */
    m->rtu = modbus_new_rtu("/dev/null", 19200, 'N', 8, 1);
    if (!m->chip[0] || !m->chip[1] || !m->valve || !m->incubator || !m->chip3 || !m->pc1 || !m->rtu) {
        sim_modbus_free(m);
        return -ENOMEM;
    }
    m->incubator->tab_registers[0] = (uint16_t)(int16_t)lround(p->temp_setpoint * 10);
    m->valve->tab_registers[0] = (uint16_t)p->valve_position;
    *out = m;
    return 0;
}

void sim_modbus_free(struct sim_modbus *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < SIM_CHIPS; i++)
        if (m->chip[i])
            modbus_mapping_free(m->chip[i]);
    if (m->valve)
        modbus_mapping_free(m->valve);
    if (m->incubator)
        modbus_mapping_free(m->incubator);
    if (m->chip3)
        modbus_mapping_free(m->chip3);
    if (m->pc1)
        modbus_mapping_free(m->pc1);
    if (m->rtu)
        modbus_free(m->rtu);
    sim_tcp_close(m);
    if (m->pair[0] >= 0) {
        close(m->pair[0]);
        close(m->pair[1]);
    }
    free(m);
}

void sim_modbus_set_trace(struct sim_modbus *m, int fd)
{
    m->trace_fd = fd;
}

/* Trace one answered read: bus, unit, function, address, count, data bytes. */
static void trace_read(struct sim_modbus *m, const char *bus, int unit, int fc, int addr, int count,
                       const uint8_t *data, size_t n)
{
    if (m->trace_fd < 0 || fc < 1 || fc > 4)
        return;
    char line[600];
    int len = snprintf(line, sizeof line, "mb %s %d %d %d %d ", bus, unit, fc, addr, count);
    for (size_t i = 0; i < n && len + 3 < (int)sizeof line; i++)
        len += snprintf(line + len, sizeof line - (size_t)len, "%02x", data[i]);
    line[len++] = '\n';
    if (write(m->trace_fd, line, (size_t)len) < 0)
        log_warn("sim", "trace: %s", strerror(errno));
}

/* The data bytes a read of map would carry: registers big-endian, bits packed LSB first. */
static size_t map_bytes(const modbus_mapping_t *map, int fc, int addr, int count, uint8_t *out, size_t max)
{
    size_t n = 0;
    if (fc == 3 || fc == 4) {
        const uint16_t *tab = fc == 3 ? map->tab_registers : map->tab_input_registers;
        int nb = fc == 3 ? map->nb_registers : map->nb_input_registers;
        for (int i = 0; i < count && addr + i < nb && n + 2 <= max; i++) {
            out[n++] = (uint8_t)(tab[addr + i] >> 8);
            out[n++] = (uint8_t)tab[addr + i];
        }
    } else {
        const uint8_t *tab = fc == 1 ? map->tab_bits : map->tab_input_bits;
        int nb = fc == 1 ? map->nb_bits : map->nb_input_bits;
        for (int i = 0; i < count && addr + i < nb && (size_t)i / 8 < max; i++) {
            if (i % 8 == 0)
                out[n++] = 0;
            if (tab[addr + i])
                out[n - 1] |= (uint8_t)(1u << (i % 8));
        }
    }
    return n;
}

/* Copy the model's readings into the registers. */
static void refresh(struct sim_modbus *m)
{
    struct sim_physics *p = m->p;
    for (int i = 0; i < SIM_CHIPS; i++) {
        uint16_t *r = m->chip[i]->tab_input_registers;
        mb_encode(sim_read_pressure(p, i), MB_F32, MB_ABCD, r);
        mb_encode(sim_read_flow(p, i), MB_F32, MB_ABCD, r + 2);
    }
    mb_encode(sim_read_psource(p, 0), MB_F32, MB_ABCD, m->chip3->tab_input_registers);
    mb_encode(sim_read_pflow(p, 0), MB_F32, MB_ABCD, m->chip3->tab_input_registers + 2);
    mb_encode(sim_read_psource(p, 1), MB_F32, MB_ABCD, m->pc1->tab_input_registers);
    mb_encode(sim_read_pflow(p, 1), MB_F32, MB_ABCD, m->pc1->tab_input_registers + 2);
    mb_encode(sim_read_o2(p) * 100.0, MB_U16, MB_ABCD, m->chip[0]->tab_input_registers + 4);
    mb_encode(sim_read_temp(p) * 10.0, MB_I16, MB_ABCD, m->incubator->tab_input_registers);
    m->valve->tab_input_bits[0] = sim_valve_busy(p);
}

/* Check a write to a holding register before replying; an exception code or 0. */
static int check_write(struct sim_modbus *m, int unit, int fc, int addr, int value)
{
    (void)m;
    if (fc != MODBUS_FC_WRITE_SINGLE_REGISTER && fc != MODBUS_FC_WRITE_MULTIPLE_REGISTERS)
        return 0;
    if (unit == 1 && addr == 0 && (value < 1 || value > 6))
        return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
    if (unit == 2 && addr == 0 && ((int16_t)value < 200 || (int16_t)value > 420))
        return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
    return 0;
}

/* After a TCP write: move the valve, change the incubator setpoint. */
static void apply_writes(struct sim_modbus *m)
{
    sim_valve_move(m->p, m->valve->tab_registers[0]);
    m->p->temp_setpoint = (int16_t)m->incubator->tab_registers[0] / 10.0;
    double pc = mb_decode(m->pc1->tab_registers, MB_F32, MB_ABCD);
    if (isfinite(pc))
        m->p->pplant[1].p_cmd = fmin(2000.0, fmax(0.0, pc));
}

/* Expected length of an RTU request from its first bytes; 0 if not known yet, -1 if unsupported. */
static int rtu_length(const uint8_t *b, size_t n)
{
    if (n < 2)
        return 0;
    switch (b[1]) {
    case 1: case 2: case 3: case 4: case 5: case 6:
        return 8;
    case 15: case 16:
        return n < 7 ? 0 : 9 + b[6];
    default:
        return -1;
    }
}

/* Deterministic junk bytes for the garbage fault. */
void sim_garbage(uint64_t seed, uint8_t *buf, size_t n)
{
    uint64_t x = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        buf[i] = (uint8_t)(x >> 56);
    }
}

/* Answer one framed RTU request, applying the unit's wire faults. */
static void rtu_request(struct sim_modbus *m, enum sim_rtu_line line, const uint8_t *req, int len,
                        sim_rtu_reply_fn reply, void *arg)
{
    uint16_t crc = mb_crc16(req, (size_t)len - 2);
    if (req[len - 2] != (crc & 0xFF) || req[len - 1] != (crc >> 8))
        return;     /* a real slave stays silent on a bad CRC */
    int unit = req[0];
    if (line == SIM_RTU_FLOW ? unit != 3 : unit < 1 || unit > SIM_CHIPS)
        return;     /* nobody at that address on this line */
    enum sim_device dev = unit == 3 ? SD_CHIP3 : (enum sim_device)(SD_CHIP1 + unit - 1);
    modbus_mapping_t *map = unit == 3 ? m->chip3 : m->chip[unit - 1];
    int64_t now = m->p->now_ns;
    if (sim_fault_active(m->faults, dev, SF_TIMEOUT, now))
        return;
    uint8_t out[MODBUS_RTU_MAX_ADU_LENGTH];
    ssize_t n;
    if (sim_fault_active(m->faults, dev, SF_GARBAGE, now)) {
        n = 7;
        sim_garbage(m->p->tick, out, (size_t)n);
    } else {
        refresh(m);
        modbus_set_socket(m->rtu, m->pair[0]);
        modbus_set_slave(m->rtu, unit);
        if (sim_fault_active(m->faults, dev, SF_EXCEPTION, now))
            modbus_reply_exception(m->rtu, req, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
        else
            modbus_reply(m->rtu, req, len, map);
        n = read(m->pair[1], out, sizeof out);
        if (n <= 2)
            return;
        if (sim_fault_active(m->faults, dev, SF_CRC, now))
            out[n - 1] ^= 0x5A;
        else if (n > 5 && out[1] == req[1])
            trace_read(m, "rtu", unit, req[1], (req[2] << 8) | req[3], (req[4] << 8) | req[5],
                       out + 3, (size_t)out[2]);
    }
    reply(arg, unit, out, (size_t)n);
}

/* Bytes arrived on an RTU line. */
void sim_rtu_feed(struct sim_modbus *m, enum sim_rtu_line line, const uint8_t *buf, size_t n,
                  sim_rtu_reply_fn reply, void *arg)
{
    uint8_t *b = m->buf[line];
    size_t *len = &m->len[line];
    if (n > RTU_BUF - *len)
        *len = 0;       /* garbage overflow: resynchronise */
    memcpy(b + *len, buf, n);
    *len += n;
    for (;;) {
        int want = rtu_length(b, *len);
        if (want < 0 || want > RTU_BUF) {
            /* Not a request we understand: drop a byte and look for a frame again. */
            memmove(b, b + 1, --*len);
            continue;
        }
        if (want == 0 || *len < (size_t)want)
            return;
        rtu_request(m, line, b, want, reply, arg);
        memmove(b, b + want, *len - (size_t)want);
        *len -= (size_t)want;
    }
}

/* Answer one TCP request (valve: unit 1, incubator: unit 2, pressure controller: unit 3). */
static void tcp_request(struct sim_modbus *m, int fd, const uint8_t *req, int len)
{
    int unit = req[6], fc = req[7];
    modbus_mapping_t *map = unit == 1 ? m->valve : unit == 2 ? m->incubator : unit == 3 ? m->pc1 : NULL;
    if (map == NULL) {
        modbus_reply_exception(m->tcp, req, MODBUS_EXCEPTION_GATEWAY_TARGET);
        return;
    }
    enum sim_device dev = unit == 1 ? SD_VALVE1 : unit == 2 ? SD_INCUBATOR : SD_PC1;
    int64_t now = m->p->now_ns;
    if (sim_fault_active(m->faults, dev, SF_TIMEOUT, now))
        return;
    if (sim_fault_active(m->faults, dev, SF_GARBAGE, now)) {
        uint8_t junk[9];
        sim_garbage(m->p->tick, junk, sizeof junk);
        if (write(fd, junk, sizeof junk) < 0)
            log_warn("plc", "write: %s", strerror(errno));
        return;
    }
    if (sim_fault_active(m->faults, dev, SF_EXCEPTION, now)) {
        modbus_reply_exception(m->tcp, req, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
        return;
    }
    int addr = len >= 10 ? (req[8] << 8) | req[9] : 0;
    int value = fc == MODBUS_FC_WRITE_SINGLE_REGISTER ? ((req[10] << 8) | req[11])
              : len >= 15 ? ((req[13] << 8) | req[14]) : 0;
    int exc = check_write(m, unit, fc, addr, value);
    if (exc != 0) {
        modbus_reply_exception(m->tcp, req, (unsigned)exc);
        return;
    }
    refresh(m);
    if (modbus_reply(m->tcp, req, len, map) >= 0) {
        apply_writes(m);
        if (fc >= 1 && fc <= 4 && len >= 12) {
            int count = (req[10] << 8) | req[11];
            uint8_t data[256];
            size_t n = map_bytes(map, fc, addr, count, data, sizeof data);
            trace_read(m, "tcp", unit, fc, addr, count, data, n);
        }
    }
}

/* Stop listening. */
void sim_tcp_close(struct sim_modbus *m)
{
    if (m->tcp != NULL) {
        modbus_close(m->tcp);
        modbus_free(m->tcp);
        m->tcp = NULL;
    }
}

/* Listen on 127.0.0.1. */
int sim_tcp_listen(struct sim_modbus *m, int port, int *bound_port)
{
    sim_tcp_close(m);
    m->tcp = modbus_new_tcp("127.0.0.1", port);
    if (m->tcp == NULL)
        return -errno;
    int fd = modbus_tcp_listen(m->tcp, 8);
    if (fd < 0)
        return -errno;
    modbus_set_socket(m->tcp, fd);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *bound_port = ntohs(sa.sin_port);
    return fd;
}

/* Answer one request on a TCP client socket, applying the unit's wire faults. */
int sim_tcp_serve(struct sim_modbus *m, int fd)
{
    uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH];
    int listen_fd = modbus_get_socket(m->tcp);
    modbus_set_socket(m->tcp, fd);
    int len = modbus_receive(m->tcp, req);
    int rc = 0;
    if (len < 0)
        rc = -1;
    else if (len >= 8)
        tcp_request(m, fd, req, len);
    modbus_set_socket(m->tcp, listen_fd);   /* so modbus_close closes the listener */
    return rc;
}
