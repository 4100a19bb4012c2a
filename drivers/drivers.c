/*
 * The table of every driver perfuse has. Adding a driver: one file that
 * defines `const struct driver_ops NAME_driver`, and NAME in DRIVER_LIST.
 * The list expands into the declarations, the table and the names string,
 * so they can never disagree.
 */
#include "driver.h"

#include <string.h>

#define DRIVER_LIST(X) \
    X(newera)          \
    X(modbus)          \
    X(reglo)           \
    X(harvard)         \
    X(hamilton)        \
    X(ob1)

#define DRIVER_DECLARE(n) extern const struct driver_ops n##_driver;
#define DRIVER_ENTRY(n) &n##_driver,
#define DRIVER_NAME(n) ", " #n

DRIVER_LIST(DRIVER_DECLARE)

static const struct driver_ops *const drivers[] = { DRIVER_LIST(DRIVER_ENTRY) };

/* ", newera, modbus": driver_names skips the leading separator. */
static const char driver_names_text[] = DRIVER_LIST(DRIVER_NAME);

/* The driver called name, or NULL. */
const struct driver_ops *driver_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++)
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    return NULL;
}

/* Comma-separated names of all drivers. */
const char *driver_names(void)
{
    return driver_names_text + 2;
}
