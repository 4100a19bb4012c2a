/*
 * The simulated rig's Modbus slaves. RTU on a pty: unit 1 = chip1
 * (chip-sensor-o2 profile), unit 2 = chip2 (pressure-flow profile); on a
 * second pty, unit 3 = chip3 (pressure-flow, the pressure-driven chip). TCP on
 * loopback: unit 1 = valve1 (rotary-valve), unit 2 = incubator
 * (temperature-controller). Registers are refreshed from the physics model
 * before every reply; writes go back into it.
 */
#ifndef PERFUSE_SIM_MODBUS_H
#define PERFUSE_SIM_MODBUS_H

#include <stddef.h>
#include <stdint.h>

#include "physics.h"
#include "sim_faults.h"

struct sim_modbus;

/* Create the slaves' register maps and libmodbus contexts. faults (borrowed)
 * decides which replies are withheld, garbled or corrupted. Returns 0 or -ENOMEM. */
int sim_modbus_create(struct sim_modbus **out, struct sim_physics *p,
                      const struct sim_faults_table *faults);
void sim_modbus_free(struct sim_modbus *m);
/* Write a line for every register or bit read answered to fd (-1: none):
 * "mb rtu|tcp UNIT FC ADDR COUNT HEX", HEX being the reply's data bytes as on
 * the wire. Tests decode it to check recorded values against what was sent. */
void sim_modbus_set_trace(struct sim_modbus *m, int fd);

/* The RTU lines: the sensor line (units 1 and 2: chip1, chip2) and chip3's
 * flow line (unit 3), each framed on its own. */
enum sim_rtu_line { SIM_RTU_SENSORS, SIM_RTU_FLOW, SIM_RTU_LINES };

/* An RTU reply of unit, to be put on the line. */
typedef void (*sim_rtu_reply_fn)(void *arg, int unit, const uint8_t *out, size_t len);
/* RTU: bytes arrived from a line; frame them and answer whole requests to the
 * units on that line through reply. */
void sim_rtu_feed(struct sim_modbus *m, enum sim_rtu_line line, const uint8_t *buf, size_t n,
                  sim_rtu_reply_fn reply, void *arg);

/* TCP: listen on 127.0.0.1 (port 0 = any); returns the listening fd and the port.
 * Calling it again (after a simulated disconnect) listens anew. */
int sim_tcp_listen(struct sim_modbus *m, int port, int *bound_port);
/* TCP: answer one request waiting on a client socket; -1 when the client is gone. */
int sim_tcp_serve(struct sim_modbus *m, int client_fd);
/* TCP: stop listening (a simulated disconnect). */
void sim_tcp_close(struct sim_modbus *m);
/* Fill buf with n bytes of deterministic junk (the garbage fault). */
void sim_garbage(uint64_t seed, uint8_t *buf, size_t n);

#endif
