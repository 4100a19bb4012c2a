/*
 * Injected faults of the simulated rig, per device, each active for a time
 * window or until cleared.
 *
 * A fault is written KIND:DEVICE[,at=DURATION][,for=DURATION], e.g.
 *   timeout:chip1            chip1 stops answering until cleared
 *   crc:chip2,for=5s         chip2's replies carry a wrong CRC for 5 s
 *   clog:chip1,at=30s,for=1min
 * at is counted from the simulator's start (command line) or from now (control socket).
 *
 * Kinds and where they apply:
 * Devices: the contract rig's (pump1 ... incubator) and the extra lab lines
 * (reglo, harvard, hamilton), each of which is one pty with its devices.
 *
 *   timeout       all devices: no reply at all
 *   garbage       all devices: random bytes instead of a reply
 *   crc           chip1, chip2 (Modbus RTU): the reply's CRC is wrong
 *   disconnect    all devices: the device's whole line goes away (pty closed, or
 *                 the TCP server stops listening) and comes back when the fault ends
 *   exception     Modbus devices: exception 4 (slave device failure); pumps: "?NA";
 *                 extra lines: the device's own refusal
 *   stuck         chip1, chip2: the pressure reading freezes
 *   nan           chip1, chip2: the pressure reading is NaN
 *   clog          chip1, chip2: the chip's resistance rises fivefold
 *   bubble        chip1, chip2: the flow sensor reads 40 % of the flow
 *   syringe-empty pump1, pump2: the syringe is empty; the pump stalls (A?S);
 *                 harvard: the pump stalls
 *   range         chip1, chip2: the pressure reads 65000 mbar, beyond any sensor's range
 *
 * The pressure-driven chips (pplant.h): chip3 is pushed by ob1's channel 1 and
 * read by its own flow sensor (Modbus RTU unit 3); pc1 is a Modbus pressure
 * controller (TCP unit 3) with the flow sensor of the chip it pushes.
 *   clog             chip3, pc1: the resistance rises fivefold
 *   bubble           chip3, pc1: the flow reading spikes, then dips
 *   stuck, nan       chip3, pc1: the flow reading freezes, or reads NaN
 *   reservoir-empty  chip3, pc1: the reservoir runs dry; no flow at any pressure
 *   inverted         chip3, pc1: more pressure gives less flow (a push-pull plant)
 *   low-resistance   chip3, pc1: the resistance drops tenfold
 */
#ifndef PERFUSE_SIM_FAULTS_H
#define PERFUSE_SIM_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "physics.h"

enum sim_fault_kind { SF_TIMEOUT, SF_GARBAGE, SF_CRC, SF_DISCONNECT, SF_EXCEPTION, SF_STUCK,
                      SF_NAN, SF_CLOG, SF_BUBBLE, SF_SYRINGE_EMPTY, SF_RANGE,
                      SF_RESERVOIR_EMPTY, SF_INVERTED, SF_LOW_RESISTANCE, SF_KINDS };
/* SD_REGLO, SD_HARVARD and SD_HAMILTON are whole lines of the extra lab
 * devices (sim_lines.h), in the order of sim_lines[]. */
enum sim_device { SD_PUMP1, SD_PUMP2, SD_CHIP1, SD_CHIP2, SD_VALVE1, SD_INCUBATOR,
                  SD_REGLO, SD_HARVARD, SD_HAMILTON, SD_OB1, SD_CHIP3, SD_PC1, SD_DEVICES };

struct sim_fault {
    bool set;
    int64_t start_ns, end_ns;           /* model time; end INT64_MAX: until cleared */
    bool applied;                       /* one-shot faults (syringe-empty) done */
};

struct sim_faults_table {
    struct sim_fault f[SD_DEVICES][SF_KINDS];
};

/* Parse a spec; times are relative, *at_ns from now. Returns 0 or -EINVAL with a message. */
int sim_fault_parse(const char *spec, enum sim_fault_kind *kind, enum sim_device *dev,
                    int64_t *at_ns, int64_t *for_ns, char *err, size_t errlen);
/* Parse and add a fault starting at now + at. */
int sim_fault_add(struct sim_faults_table *t, const char *spec, int64_t now_ns, char *err,
                  size_t errlen);
/* Clear the faults of one device (by name) or of all ("all"). Returns 0 or -EINVAL. */
int sim_fault_clear(struct sim_faults_table *t, const char *device);
/* Whether a fault is active at now. */
bool sim_fault_active(const struct sim_faults_table *t, enum sim_device d, enum sim_fault_kind k,
                      int64_t now_ns);
/* Push the physical faults into the model for time now. */
void sim_fault_apply(struct sim_faults_table *t, struct sim_physics *p, int64_t now_ns);
/* One line per set fault, for "list". */
void sim_fault_describe(const struct sim_faults_table *t, int64_t now_ns, char *buf, size_t len);
const char *sim_device_name(enum sim_device d);

#endif
