/*
 * perfusectl's commands that talk to perfused. Each is run with the command's
 * arguments (argv[0] its name) and returns perfusectl's exit code; a daemon
 * out of reach exits the process with EXIT_UNREACHABLE (ctl_connect).
 */
#ifndef PERFUSE_DAEMON_CMDS_H
#define PERFUSE_DAEMON_CMDS_H

struct ctl;

/* run PROTOCOL [--operator NAME] [--fill PUMP=VOLUME]... [--wait] [--force] */
int daemon_cmds_run(struct ctl *c, int argc, char **argv);
/* status, pause, resume, abort and wait: a request named for argv[0]. */
int daemon_cmds_simple(struct ctl *c, int argc, char **argv);
/* next, extend DURATION, note TEXT [--operator NAME]. */
int daemon_cmds_steer(struct ctl *c, int argc, char **argv);
/* events [--since SECONDS] [--limit N] [--cursor SEQ], every page fetched. */
int daemon_cmds_events(struct ctl *c, int argc, char **argv);
/* set CHANNEL VALUE [UNIT] */
int daemon_cmds_set(struct ctl *c, int argc, char **argv);
/* tune REGULATOR: a relay autotune on the live rig, idle or paused; prints the suggested gains. */
int daemon_cmds_tune(struct ctl *c, int argc, char **argv);
/* confirm [PROMPT_ID] */
int daemon_cmds_confirm(struct ctl *c, int argc, char **argv);
/* ack ID|all */
int daemon_cmds_ack(struct ctl *c, int argc, char **argv);
/* devices */
int daemon_cmds_devices(struct ctl *c, int argc, char **argv);
/* history [--minutes M] [--points N] [CHANNEL...] */
int daemon_cmds_history(struct ctl *c, int argc, char **argv);
/* watch [--interval SECONDS], until Ctrl-C or the daemon goes. */
int daemon_cmds_watch(struct ctl *c, int argc, char **argv);

#endif
