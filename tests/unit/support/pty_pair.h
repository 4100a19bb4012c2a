/*
 * A pseudo-terminal pair for tests that play a serial device: the code under
 * test opens path like a serial port, the test reads and writes master.
 *
 * Ownership: the caller owns the struct and both descriptors; pty_close()
 * closes whichever are still open (a test may close one end itself first and
 * set it to -1). Only the test's main thread calls these; a responder thread
 * may read and write master in between.
 */
#ifndef PERFUSE_TEST_PTY_PAIR_H
#define PERFUSE_TEST_PTY_PAIR_H

struct pty {
    int master;
    int slave;          /* the test's view of the line (settings, pending input); open, so
                           the master never sees a hang-up between the driver's opens */
    char path[64];
};

/* Open a pty pair with a raw slave; fails the test if it cannot. */
void pty_open(struct pty *p);

/* Close the ends that are still open (>= 0). */
void pty_close(struct pty *p);

#endif
