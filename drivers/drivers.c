/* The table of every driver perfuse has. Adding a driver: one file, one line here. */
#include "driver.h"

#include <string.h>

extern const struct driver_ops newera_driver;
extern const struct driver_ops modbus_driver;

static const struct driver_ops *const drivers[] = {
    &newera_driver,
    &modbus_driver,
};

/* The driver called name, or NULL. */
const struct driver_ops *driver_find(const char *name)
{
    for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++)
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    return NULL;
}

/* Comma-separated names of all drivers. */
const char *driver_names(void)
{
    return "newera, modbus";
}
