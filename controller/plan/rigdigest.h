/*
 * The digest of a rig for the run journal: SHA-256 over the rig file's YAML
 * tree, leaving out where each bus is reached (its port and host) and
 * anything that is not data (comments, layout, quoting). Two rig files with
 * the same digest name the same devices, channels, drivers, limits and
 * settings; they may differ in the serial port or the TCP endpoint a bus is
 * found at, which perfuse-sim picks anew at every start and a USB adapter
 * may change after a reboot.
 *
 * Pure; any thread.
 */
#ifndef PERFUSE_RIGDIGEST_H
#define PERFUSE_RIGDIGEST_H

#include <stddef.h>

/* Write the 64 hex digits and a NUL to hex. Returns 0, or -EINVAL if text is
 * not one YAML document (or nests deeper than a rig file can), -ENOMEM. */
int rig_digest(const char *text, size_t len, char hex[65]);

#endif
