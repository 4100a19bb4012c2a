/* Line-rate pacing of a simulated serial line: character times, latency, RTU silences. */
#include "sim_wire.h"

#include <string.h>

/* Bits per character. */
int sim_wire_char_bits(int data_bits, char parity, int stop_bits)
{
    int data = data_bits > 0 ? data_bits : 8;
    int stop = stop_bits > 0 ? stop_bits : 1;
    return 1 + data + (parity == 'E' || parity == 'O' ? 1 : 0) + stop;
}

/* One character's time. */
int64_t sim_wire_char_ns(int baud, int bits)
{
    if (baud <= 0)
        return 0;
    return ((int64_t)bits * 1000000000LL + baud / 2) / baud;
}

/* t3.5: 3.5 characters, but fixed at 1.75 ms above 19200 baud (Modbus over Serial Line v1.02). */
int64_t sim_wire_rtu_gap_ns(int baud, int bits)
{
    if (baud > 19200)
        return 1750000;
    return (sim_wire_char_ns(baud, bits) * 7 + 1) / 2;
}

/* Set up a line. */
void sim_wire_init(struct sim_wire *w, int baud, int data_bits, char parity, int stop_bits,
                   bool rtu, bool on)
{
    memset(w, 0, sizeof *w);
    w->on = on;
    w->rtu = rtu;
    int bits = sim_wire_char_bits(data_bits, parity, stop_bits);
    w->char_ns = on ? sim_wire_char_ns(baud, bits) : 0;
    w->gap_ns = on && rtu ? sim_wire_rtu_gap_ns(baud, bits) : 0;
}

/* Forget the bytes in flight. */
void sim_wire_reset(struct sim_wire *w)
{
    w->in_n = w->out_n = 0;
    w->in_free_ns = w->out_free_ns = 0;
}

/* The host's bytes go on the wire back to back. */
void sim_wire_host_sent(struct sim_wire *w, int64_t now, const uint8_t *buf, size_t n)
{
    int64_t t = w->in_free_ns > now ? w->in_free_ns : now;
    for (size_t i = 0; i < n && w->in_n < SIM_WIRE_BUF; i++) {
        t += w->char_ns;
        w->in[w->in_n] = buf[i];
        w->in_at[w->in_n++] = t;
    }
    w->in_free_ns = t;
}

/* Bytes the device has by now; on RTU only whole frames, each ended by its silence. */
size_t sim_wire_device_take(struct sim_wire *w, int64_t now, uint8_t *buf, size_t max,
                            int64_t *done_ns)
{
    size_t k = 0;
    if (w->rtu && w->on) {
        /* The frame ends where a byte is followed by t3.5 of silence; the
         * device sees nothing of a frame before then. */
        size_t end = 0;
        for (size_t i = 0; i < w->in_n; i++) {
            int64_t next = i + 1 < w->in_n ? w->in_at[i + 1] - w->char_ns : INT64_MAX;
            if (next - w->in_at[i] >= w->gap_ns && w->in_at[i] + w->gap_ns <= now)
                end = i + 1;
            else if (w->in_at[i] + w->gap_ns > now)
                break;
        }
        k = end < max ? end : max;
        if (k > 0)
            *done_ns = w->in_at[k - 1] + w->gap_ns;
    } else {
        while (k < w->in_n && k < max && w->in_at[k] <= now)
            k++;
        if (k > 0)
            *done_ns = w->in_at[k - 1];
    }
    memcpy(buf, w->in, k);
    memmove(w->in, w->in + k, w->in_n - k);
    memmove(w->in_at, w->in_at + k, (w->in_n - k) * sizeof *w->in_at);
    w->in_n -= k;
    return k;
}

/* The device's reply leaves after its latency, once the line is free. */
void sim_wire_device_reply(struct sim_wire *w, int64_t done_ns, int64_t latency_ns,
                           const uint8_t *buf, size_t n)
{
    int64_t t = done_ns + (w->on ? latency_ns : 0);
    if (w->out_free_ns + w->gap_ns > t)
        t = w->out_free_ns + w->gap_ns;
    for (size_t i = 0; i < n && w->out_n < SIM_WIRE_BUF; i++) {
        t += w->char_ns;
        w->out[w->out_n] = buf[i];
        w->out_at[w->out_n++] = t;
    }
    w->out_free_ns = t;
}

/* Bytes of replies that have reached the host by now. */
size_t sim_wire_host_take(struct sim_wire *w, int64_t now, uint8_t *buf, size_t max)
{
    size_t k = 0;
    while (k < w->out_n && k < max && w->out_at[k] <= now)
        k++;
    memcpy(buf, w->out, k);
    memmove(w->out, w->out + k, w->out_n - k);
    memmove(w->out_at, w->out_at + k, (w->out_n - k) * sizeof *w->out_at);
    w->out_n -= k;
    return k;
}

/* The next due time. */
int64_t sim_wire_next_ns(const struct sim_wire *w)
{
    int64_t t = w->out_n > 0 ? w->out_at[0] : INT64_MAX;
    for (size_t i = 0; i < w->in_n; i++) {
        int64_t next = i + 1 < w->in_n ? w->in_at[i + 1] - w->char_ns : INT64_MAX;
        if (!(w->rtu && w->on) || next - w->in_at[i] >= w->gap_ns) {
            int64_t in = w->in_at[i] + (w->rtu && w->on ? w->gap_ns : 0);
            return in < t ? in : t;
        }
    }
    return t;
}
