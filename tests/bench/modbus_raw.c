/*
 * modbus-raw: the floor for Modbus TCP reads, libmodbus in a tight loop with
 * nothing else, reading one input register of one unit for a while. It
 * prints one line of figures; it asserts nothing about speed.
 *
 *   modbus-raw HOST PORT UNIT SECONDS
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <modbus.h>

/* Monotonic time in seconds. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: modbus-raw HOST PORT UNIT SECONDS\n");
        return 2;
    }
    int port = atoi(argv[2]), unit = atoi(argv[3]);
    double seconds = atof(argv[4]);
    modbus_t *mb = modbus_new_tcp(argv[1], port);
    if (mb == NULL || modbus_set_slave(mb, unit) < 0 || modbus_connect(mb) < 0) {
        fprintf(stderr, "modbus-raw: cannot connect to %s:%d: %s\n", argv[1], port, modbus_strerror(errno));
        return 1;
    }
    modbus_set_response_timeout(mb, 1, 0);
    long ok = 0, failed = 0;
    uint16_t reg;
    double t0 = now_s(), t = t0;
    while (t - t0 < seconds) {
        /* Check the clock every 256 reads: the loop should cost reads, not clock calls. */
        for (int i = 0; i < 256; i++) {
            if (modbus_read_input_registers(mb, 0, 1, &reg) == 1)
                ok++;
            else
                failed++;
        }
        t = now_s();
    }
    printf("raw libmodbus: %ld reads in %.2f s: %.0f reads/s (%ld failed)\n", ok, t - t0,
           (double)ok / (t - t0), failed);
    modbus_close(mb);
    modbus_free(mb);
    return failed > 0 ? 1 : 0;
}
