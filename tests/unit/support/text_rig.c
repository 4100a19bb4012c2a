#include "text_rig.h"

#include <stdio.h>
#include <string.h>

/* The rig's path puts it in protocols/rigs/ so that its profile resolves. */
const char text_rig_base[] =
    "rig: t\n"
    "buses:\n"
    "  - {name: pumps, type: serial, port: /dev/null}\n"
    "  - {name: sensors, type: modbus-rtu, port: /dev/null}\n"
    "devices:\n"
    "  - {name: pump1, driver: newera, bus: pumps, address: 0,\n"
    "     syringe: {diameter: 14.57 mm, volume: 10 mL}, max_flow: 1000 uL/min}\n"
    "  - {name: chip1, driver: modbus, bus: sensors, unit: 1, profile: ../profiles/chip-sensor-o2.yaml}\n";

struct rig *text_rig_load(const char *extra, struct diag *d)
{
    char text[4096];
    snprintf(text, sizeof text, "%s%s", text_rig_base, extra);
    struct rig *rig = NULL;
    diag_init(d);
    if (rig_load_text("protocols/rigs/t.yaml", text, strlen(text), &rig, d) != 0)
        return NULL;
    return rig;
}
