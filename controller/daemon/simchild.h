/* perfuse-sim as a child process of perfused --sim: start, wait until ready, stop. */
#ifndef PERFUSE_SIMCHILD_H
#define PERFUSE_SIMCHILD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct simchild {
    pid_t pid;                  /* 0 when not running */
    char dir[PATH_MAX - 64];    /* private directory for its rig file */
    char rig_file[PATH_MAX];
};

/* Start sim_path with --die-with-parent and wait (at most 10 s) for its ready
 * line; args (NULL-ended, may be NULL) are more options for it. Blocking: call
 * before the event loop runs. Returns 0 or a negative errno with a message in err. */
int simchild_start(struct simchild *sc, const char *sim_path, uint64_t seed,
                   const char *const *args, char *err, size_t errlen);
/* SIGTERM the child, wait up to 3 s, then SIGKILL; remove its directory. */
void simchild_stop(struct simchild *sc);
/* The path of perfuse-sim next to this executable. */
int simchild_default_path(char *buf, size_t len);

#endif
