/*
 * Reading members of JSON objects (jansson) from files perfuse wrote and
 * reads back, such as the run journal and the latch file: strictly, so that
 * a damaged or edited file is refused rather than half read.
 */
#ifndef PERFUSE_JSONFIELD_H
#define PERFUSE_JSONFIELD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Copy the string member key of o into buf[len]; false if it is missing, not
 * a string, or does not fit (len - 1 bytes at most). */
bool jfield_str(json_t *o, const char *key, char *buf, size_t len);

#endif
