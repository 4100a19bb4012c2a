/*
 * Crash recovery, the run-file half: what a crash (kill -9, power cut) left
 * in the data directory, made readable again, and read back for a run that
 * continues.
 *
 * A run file the recorder never finished still has its SWMR writer's flags
 * set, an end-of-allocation that may lie before its last flushed data, and
 * /@state "running". recorder_recover_dir finds such files in the data
 * directory and recorder_recover repairs one; perfused calls the first at
 * start, before its loop runs and before any recorder writes, and
 * `perfusectl recover FILE` the second. Only HDF5 and the run-file layout
 * are known here: nothing of journals, runs or rigs, so that perfusectl
 * uses it without a daemon.
 *
 * The other half, whether the run a journal describes continues, is closed
 * as interrupted, or cannot be used, is daemon/resume.h: it reads the run
 * journal and starts runs, which live above this layer. It reads a
 * recovered file through recorder_last_time and recorder_protocol_sha256.
 * A file that neither recovery nor those can read (empty or cut short: the
 * crash came before its structure reached the disk) is not recovered (an
 * empty one says so in the log); the journal's run then goes on in a new
 * file, and daemon/resume.h renames the old one FILE.h5.unreadable, which no
 * later recovery looks at.
 *
 * Every function blocks on HDF5 I/O: call them from a thread that may block
 * (start-up, perfusectl), never from the daemon's loop while it runs.
 */
#ifndef PERFUSE_RECOVERY_H
#define PERFUSE_RECOVERY_H

#include <stddef.h>

/* Recover every run file (*.h5) in dir that a crash left open. A link or
 * anything but a regular file is skipped, as is a file that is not a perfuse
 * run file; each is logged, as is each file recovered or that cannot be.
 * Returns the number of files recovered, or a negative errno if dir cannot
 * be read (nothing is logged then: a data directory that does not exist yet
 * holds nothing to recover). */
int recorder_recover_dir(const char *dir);

/*
 * Make a file left by a crash readable again: clear the SWMR/status flags, fix
 * the end-of-allocation, cut each series whose time and value a crash left at
 * different lengths to the shorter (logged), and set /@state to "interrupted"
 * if it says "running". Safe to run twice. Returns 0 or a negative errno with
 * a message in err.
 */
int recorder_recover(const char *path, char *err, size_t errlen);

/* Whether path is a run file left by a crash: it cannot be opened plainly (a
 * SWMR writer's flags are still set) or its state still says "running".
 * Every attribute is checked before it is read. Returns 1, 0, or -EINVAL
 * with the reason in err (not HDF5, not a perfuse run file, or an attribute
 * of the wrong type, size or rank). */
int recorder_needs_recovery(const char *path, char *err, size_t errlen);

/* The latest time stamp of any measured channel in a (recovered) run file, in
 * seconds since its start: the last moment the run is known to have been
 * alive. Returns 0 or a negative errno. */
int recorder_last_time(const char *path, double *t);

/* The sha256 of the protocol text a run file recorded (/protocol@sha256),
 * as 64 hex digits, every attribute checked before it is read. Returns 0 or
 * a negative errno with the reason in err. */
int recorder_protocol_sha256(const char *path, char hex[65], char *err, size_t errlen);

#endif
