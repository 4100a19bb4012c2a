/*
 * Line-rate pacing of one simulated serial line: a pty carries bytes at once,
 * a real RS-232 or RS-485 line does not. Each byte takes one character time
 * (start bit, data bits, parity bit, stop bits at the baud rate) in each
 * direction; a device answers a command only once its last byte has arrived,
 * after its response latency; on a Modbus RTU line a request is taken only
 * after the 3.5-character silence that ends a frame, and a reply follows the
 * previous frame on the line by at least that silence.
 *
 * The pacing is arithmetic on a time line (ns); the caller reads the pty,
 * hands the bytes in with the time it read them, and writes out what is due.
 * No I/O here, so the arithmetic is unit-tested against N * F / B directly.
 *
 * Response latencies (per device, --response-latency DEVICE=MS on perfuse-sim):
 * none of the manuals at hand gives a turnaround time, so every default below
 * is assumed, not documented. What is documented: the frame formats (New Era
 * NE-1000 manual: 19200 baud 8N1; Ismatec Reglo ICC: 9600 8N1; Hamilton MVP:
 * 9600 7O1; the OB1: 115200 8N1, as drivers/ob1.c has it) and the Modbus RTU
 * silent interval (Modbus over Serial Line v1.02, 2.5.1.1: 3.5 character
 * times, fixed at 1.75 ms above 19200 baud).
 */
#ifndef PERFUSE_SIM_WIRE_H
#define PERFUSE_SIM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_WIRE_BUF 1024

/* Assumed turnaround of the simulated devices (no manual gives one). */
#define SIM_LATENCY_NEWERA_NS 2000000      /* assumed: NE-1000 firmware answer time */
#define SIM_LATENCY_MODBUS_NS 1000000      /* assumed: a sensor's Modbus slave turnaround */
#define SIM_LATENCY_REGLO_NS 2000000       /* assumed */
#define SIM_LATENCY_HARVARD_NS 2000000     /* assumed */
#define SIM_LATENCY_HAMILTON_NS 2000000    /* assumed */
#define SIM_LATENCY_OB1_NS 2000000         /* assumed: the OB1's answer time */

struct sim_wire {
    bool on;                    /* false: bytes pass at once (--line-rate off) */
    bool rtu;                   /* Modbus RTU framing: 3.5-character silences */
    int64_t char_ns;            /* one character on the wire */
    int64_t gap_ns;             /* RTU: the silence that ends a frame; 0 otherwise */
    /* host -> device: bytes with the time each has fully arrived */
    uint8_t in[SIM_WIRE_BUF];
    int64_t in_at[SIM_WIRE_BUF];
    size_t in_n;
    int64_t in_free_ns;         /* when the host's last byte is through */
    /* device -> host: bytes with the time each has fully left the device */
    uint8_t out[SIM_WIRE_BUF];
    int64_t out_at[SIM_WIRE_BUF];
    size_t out_n;
    int64_t out_free_ns;        /* when the device's last byte is through */
};

/* Bits per character: start + data + parity (unless 'N') + stop. */
int sim_wire_char_bits(int data_bits, char parity, int stop_bits);
/* Nanoseconds that one character of bits bits takes at baud (rounded). */
int64_t sim_wire_char_ns(int baud, int bits);
/* The Modbus RTU silent interval t3.5 at baud for characters of bits bits. */
int64_t sim_wire_rtu_gap_ns(int baud, int bits);

/* Set up a line: baud and framing; rtu adds the 3.5-character silences; on
 * false passes bytes through at once. */
void sim_wire_init(struct sim_wire *w, int baud, int data_bits, char parity, int stop_bits,
                   bool rtu, bool on);
/* Forget every byte in flight (the line was unplugged). */
void sim_wire_reset(struct sim_wire *w);
/* The host wrote n bytes, read from the pty at now: they go on the wire back
 * to back, after what it sent before. Bytes beyond the buffer are dropped. */
void sim_wire_host_sent(struct sim_wire *w, int64_t now, const uint8_t *buf, size_t n);
/* Bytes the device has received by now (on an RTU line: only a frame followed
 * by its silence), up to max, into buf; *done_ns is when the last of them was
 * complete (the moment the device may start to act). Returns how many. */
size_t sim_wire_device_take(struct sim_wire *w, int64_t now, uint8_t *buf, size_t max,
                            int64_t *done_ns);
/* The device answers n bytes to a command complete at done_ns, after its
 * response latency: its first bit leaves at done_ns + latency_ns, or once the
 * line is free (and silent for t3.5 on RTU), whichever is later. */
void sim_wire_device_reply(struct sim_wire *w, int64_t done_ns, int64_t latency_ns,
                           const uint8_t *buf, size_t n);
/* Bytes of the reply fully on the host's side by now, up to max, into buf
 * (write them to the pty now). Returns how many. */
size_t sim_wire_host_take(struct sim_wire *w, int64_t now, uint8_t *buf, size_t max);
/* The next time something is due (a byte in or out); INT64_MAX if none. */
int64_t sim_wire_next_ns(const struct sim_wire *w);

#endif
