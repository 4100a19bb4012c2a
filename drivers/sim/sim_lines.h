/*
 * The simulated rig's extra lab devices: serial device families beyond the
 * contract rig (DESIGN.md §4), each on a pty of its own (NAME.tty beside the
 * rig file). perfuse-sim serves them always; its rig file lists them only
 * with --lab-devices, so the contract rig "sim" stays what DESIGN.md says.
 *
 * A line's module is a command interpreter with its own device model: bytes
 * in, reply bytes out, no I/O. perfuse-sim splits the input into commands at
 * CR (LF is dropped), applies the line's wire faults (timeout, garbage,
 * disconnect, exception) and writes the reply. Adding a family: a module
 * defining `const struct sim_line_ops sim_NAME_line`, NAME in SIM_LINE_LIST
 * (sim_lines.c), and its fault device in sim_faults.h in the same order.
 */
#ifndef PERFUSE_SIM_LINES_H
#define PERFUSE_SIM_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_physics;

struct sim_line_ops {
    const char *name;           /* "reglo": the pty reglo.tty, the fault device "reglo" */
    /* The rig file's bus entry, with one %s for the pty path, e.g.
     * "  - {name: reglo, type: serial, port: %s, baud: 9600}\n". */
    const char *bus_yaml;
    /* The same line's rate and framing (one stop bit), for line-rate pacing
     * (sim_wire.h), and the devices' response latency. */
    int baud, data_bits;
    char parity;
    int64_t latency_ns;
    /* The rig file's device entries on that bus (YAML list items, indented two). */
    const char *devices_yaml;
    size_t state_size;          /* perfuse-sim allocates this much, zeroed */
    /* Put the devices in their power-on state. */
    void (*init)(void *state);
    /* Answer one command (CR and LF stripped) at model time now_ns (ns since
     * the simulator started). Writes the reply bytes to out and returns their
     * number, or 0 for silence (an address nobody has). */
    size_t (*handle)(void *state, int64_t now_ns, const char *cmd, char *out, size_t len);
    /* The device's refusal of cmd, for the 'exception' fault; 0 for silence. */
    size_t (*refuse)(void *state, const char *cmd, char *out, size_t len);
    /* The 'syringe-empty' fault starts: the pump stalls. Optional. */
    void (*empty)(void *state, int64_t now_ns);
    /* Give the line the shared physics, for devices that act on it (a pressure
     * controller pushing a chip). Optional; called once after init. */
    void (*attach)(void *state, struct sim_physics *phys);
    char eol;                   /* what ends a command: 0 for CR (LF dropped), or '\n' (CR dropped) */
    bool in_rig;                /* listed in the rig file always, not only with --lab-devices */
};

/* Every extra line, in the order of their fault devices SD_REGLO... */
extern const struct sim_line_ops *const sim_lines[];
extern const size_t sim_n_lines;

#endif
