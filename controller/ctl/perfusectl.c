/*
 * perfusectl: the technician's client for perfused, plus offline tools.
 *
 *   perfusectl [--socket PATH] [--ro] [--server-user USER] [--json] COMMAND ...
 *
 * Every command is one entry of the table below: its name, synopsis, summary,
 * help, example and function. The usage, COMMAND --help, help COMMAND and the
 * dispatch are all made from it, so they cannot disagree. The commands live in
 * daemon_cmds.c (those that talk to perfused) and offline.c (those that need
 * no daemon); ctl.c holds what they share.
 */
#include "ctl.h"
#include "daemon_cmds.h"
#include "offline.h"
#include "fleet.h"
#include "base/log.h"
#include "base/sockpath.h"
#include "base/utf8.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int help_cmd(struct ctl *c, int argc, char **argv);

/* Every command, in the order the usage lists them. */
static const struct ctl_command commands[] = {
    {
        .name = "run",
        .synopsis = "run PROTOCOL [--name NAME] [--operator NAME] [--fill PUMP=VOLUME]... [--sample KEY=VALUE]... "
                    "[--notes TEXT] [--wait] [--force]",
        .summary = "load and start; print the run id and file",
        .help = "Load PROTOCOL (checked first: errors name file, line and column) and start it now.\n"
                "Prints the run id and the HDF5 file. --operator is recorded in the file; --wait blocks\n"
                "until the run ends and exits 1 unless it completed. --fill gives a syringe's fill level\n"
                "at the start (repeat it for each pump); a syringe not named is taken to be full. The\n"
                "levels are recorded in the file, and the low and empty alarms count from them. A run\n"
                "is refused while a device it writes is faulted or out of reach, or a sensor its limits\n"
                "or wait_until name is lost; --force starts it anyway, and the file records who forced\n"
                "it and what was wrong. --sample describes the sample (repeat it: chip id, cell line,\n"
                "passage, medium lot); each field is stored in the file's /sample group (NXsample), and\n"
                "--notes as the file's notes attribute, beside the protocol's description. Runs whose\n"
                "actuators do not overlap go at once: --name gives this one a short name, unique among\n"
                "the runs going (default: from the protocol's name); a run that needs an actuator\n"
                "another run holds is refused, naming that run.",
        .example = "perfusectl run protocols/demo.yaml --operator alice --fill pump1=8mL "
                   "--sample chip_id=C-0142 --sample cell_line=Caco-2",
        .run = daemon_cmds_run,
        .reach = CTL_DAEMON,
        .own_text_check = true,     /* a protocol file's name may be any bytes; its text is checked */
    },
    {
        .name = "status",
        .synopsis = "status [--run NAME|ID]",
        .summary = "state, step, progress, ETA, latest values",
        .help = "The run state, protocol and file; the current step with its path inside repeats; progress\n"
                "of the step and the run with the ETA as a clock time; every channel's latest value with\n"
                "its unit and age; alarms; a pending prompt. With several runs going: one line per run\n"
                "(name, protocol, step, progress and ETA, state, alarms); --run NAME shows one in full.",
        .example = "perfusectl status",
        .run = daemon_cmds_simple,
        .reach = CTL_DAEMON_READ,
    },
    {
        .name = "pause",
        .synopsis = "pause [--reason TEXT] [--run NAME|ID]",
        .summary = "freeze the protocol clock, hold setpoints",
        .help = "Freeze the protocol clock and hold the current setpoints. The reason is recorded.\n"
                "With several runs going, --run NAME|ID says which (with one, it is the default).",
        .example = "perfusectl pause --reason \"bubble in line 2\"",
        .run = daemon_cmds_simple,
        .reach = CTL_DAEMON,
    },
    {
        .name = "resume",
        .synopsis = "resume [--keep-overrides] [--run NAME|ID]",
        .summary = "continue; the rest of the plan shifts by the pause",
        .help = "Continue a paused run; the rest of the plan shifts by the length of the pause. Manual\n"
                "setpoints made in the pause (overrides) are set back to the protocol's values first, and\n"
                "each one restored is printed; --keep-overrides keeps them until the protocol next sets\n"
                "those channels.\n"
                "With several runs going, --run NAME|ID says which (with one, it is the default).",
        .example = "perfusectl resume",
        .run = daemon_cmds_simple,
        .reach = CTL_DAEMON,
    },
    {
        .name = "abort",
        .synopsis = "abort [--reason TEXT] [--yes] [--run NAME|ID]",
        .summary = "stop the run and apply the safe state",
        .help = "Stop the run for good and apply the protocol's safe state. Recorded with who and why.\n"
                "On a terminal it first shows the run and step and asks; type yes to abort. --yes does\n"
                "not ask. Without a terminal on stdin (scripts) it does not ask either.\n"
                "With several runs going, --run NAME|ID says which (with one, it is the default).",
        .example = "perfusectl abort --reason \"chip leaking\"",
        .run = daemon_cmds_simple,
        .reach = CTL_DAEMON,
    },
    {
        .name = "next",
        .synopsis = "next",
        .summary = "end the current step now and go on with the next",
        .help = "End the step the run is in now and go on with the next one (to end a seeding phase\n"
                "early, say). A fixed step's unused time comes off the rest of the plan; the step's row\n"
                "in the file says \"skipped\", and the events record who asked. It also ends a wait or a\n"
                "prompt (as skipped: confirm answers a prompt). Refused while paused: resume first.",
        .example = "perfusectl next",
        .run = daemon_cmds_steer,
        .reach = CTL_DAEMON,
    },
    {
        .name = "extend",
        .synopsis = "extend DURATION",
        .summary = "make the current step longer; the rest of the plan moves",
        .help = "Make the step the run is in DURATION longer (\"30 min\", \"1 h 30 min\"); everything after\n"
                "it moves by as much. A ramp holds its end value for the extra time, a waveform goes on;\n"
                "a wait's or prompt's timeout moves (one without a timeout waits anyway: next ends it).\n"
                "Also while paused. Recorded with who; status shows the step's new duration.",
        .example = "perfusectl extend \"2 h\"",
        .run = daemon_cmds_steer,
        .reach = CTL_DAEMON,
    },
    {
        .name = "note",
        .synopsis = "note TEXT [--operator NAME]",
        .summary = "a timestamped note in the run's events",
        .help = "Write what happened into the run's events (/events in the file, code \"note\"), stamped\n"
                "with the run time and the clock time, and who wrote it (--operator names the person).\n"
                "One line of at most 200 bytes.",
        .example = "perfusectl note \"medium changed, lot 2211\" --operator alice",
        .run = daemon_cmds_steer,
        .reach = CTL_DAEMON,
    },
    {
        .name = "watch",
        .synopsis = "watch [--interval SECONDS] [--run NAME|ID]",
        .summary = "status, refreshed in place until Ctrl-C",
        .help = "The status, refreshed in place every SECONDS (default 1, from 0.2 to 60) until Ctrl-C.\n"
                "When the output is not a terminal, one line per refresh plus each new event. When the\n"
                "daemon goes away (a restart), watch says so and reconnects once it is back. With\n"
                "several runs going it shows every run (and no run's events); --run follows one.",
        .example = "perfusectl watch --interval 2",
        .run = daemon_cmds_watch,
        .reach = CTL_DAEMON_READ,
    },
    {
        .name = "confirm",
        .synopsis = "confirm [PROMPT_ID] [--run NAME|ID]",
        .summary = "answer a pending operator prompt",
        .help = "Answer the pending operator prompt; the protocol goes on. PROMPT_ID is the prompt's step\n"
                "path that status shows (e.g. 3.2): with it, only that prompt is answered, so that an old\n"
                "screen cannot answer a newer prompt.\n"
                "With several runs going, --run NAME|ID says which (with one, it is the default).",
        .example = "perfusectl confirm 3.2",
        .run = daemon_cmds_confirm,
        .reach = CTL_DAEMON,
    },
    {
        .name = "ack",
        .synopsis = "ack ID|all",
        .summary = "acknowledge an alarm (see status)",
        .help = "Acknowledge an alarm by the id status shows, or every alarm. An alarm stays listed\n"
                "until it is acknowledged and its condition has gone. Recorded with who.",
        .example = "perfusectl ack 3",
        .run = daemon_cmds_ack,
        .reach = CTL_DAEMON,
    },
    {
        .name = "devices",
        .synopsis = "devices",
        .summary = "buses and devices: state, faults, last error",
        .help = "Every bus and device of the rig: state, number of faults, last error, and channels.",
        .example = "perfusectl devices",
        .run = daemon_cmds_devices,
        .reach = CTL_DAEMON_READ,
    },
    {
        .name = "history",
        .synopsis = "history [--minutes M] [--points N] [CHANNEL...]",
        .summary = "the last minutes of each channel: last value, min, max",
        .help = "The last M minutes (default 10, up to 60) of every channel, or of the CHANNELs named, as\n"
                "the daemon keeps them in memory for live plots: per channel its last value and the min\n"
                "and max over the window. A setpoint's history is what its device confirmed, held between\n"
                "changes. --json prints the daemon's reply: per channel the times, means, mins and maxes\n"
                "of at most N slots (default 600, 10 to 2000). The run file remains the record.",
        .example = "perfusectl history --minutes 30 chip1.pressure pump1.flow",
        .run = daemon_cmds_history,
        .reach = CTL_DAEMON_READ,
    },
    {
        .name = "wait",
        .synopsis = "wait [--run NAME|ID]",
        .summary = "block until the current run ends; print its status",
        .help = "Block until the current run ends, then print its final status.\n"
                "With several runs going, --run NAME|ID says which (with one, it is the default).",
        .example = "perfusectl wait",
        .run = daemon_cmds_simple,
        .reach = CTL_DAEMON_READ,
    },
    {
        /* UNIT is optional: the daemon parses VALUE and UNIT as one text, and a
         * channel that takes a plain number (a valve's port) refuses a unit. */
        .name = "set",
        .synopsis = "set CHANNEL VALUE [UNIT]",
        .summary = "manual setpoint (no run active, or the run paused)",
        .help = "A manual setpoint. UNIT is the value's unit (uL/min, mbar, ...); a channel that takes a\n"
                "plain number, such as a valve's port, takes none. Refused while a run is active and not\n"
                "paused, for a channel that cannot be written, for a value outside the device's limits\n"
                "(the limit is named), and for an actuator held in its safe state by a tripped safe-stop\n"
                "limit (the alarm is named). Made while the run is paused, it is an override: status\n"
                "shows it until resume. With several runs going, the run that holds CHANNEL must be\n"
                "paused; a channel no run holds may be set.",
        .example = "perfusectl set pump1 10 uL/min",
        .run = daemon_cmds_set,
        .reach = CTL_DAEMON,
    },
    {
        .name = "tune",
        .synopsis = "tune REGULATOR",
        .summary = "relay autotune of a regulator (no run active, or the run paused)",
        .help = "A relay-feedback test (Astrom-Hagglund) of a rig regulator on the live rig, with no run\n"
                "active or the run paused, its output within the regulator's limits (about 10 s). Prints\n"
                "the identified plant (gain, time constant, dead time) and suggested gains, with the rule\n"
                "used, as a rig entry. The rig file is not changed. perfusectl simulate --tune does the\n"
                "same on the simulated rig offline.",
        .example = "perfusectl tune flow3",
        .run = daemon_cmds_tune,
        .reach = CTL_DAEMON,
    },
    {
        .name = "events",
        .synopsis = "events [--since SECONDS] [--limit N] [--cursor SEQ | --last N] [--run NAME|ID]",
        .summary = "the event log of the current (or last) run",
        .help = "The current (or last) run's event log, or its events after SECONDS of run time.\n"
                "The daemon sends it in pages; all are fetched unless --limit N asks for the first N.\n"
                "--cursor SEQ starts at event SEQ (the \"next\" printed by --json); --last N gives\n"
                "the latest N events (1 to 500) instead.\n"
                "With several runs going, --run NAME|ID says which (with one, it is the default).",
        .example = "perfusectl events --since 3600",
        .run = daemon_cmds_events,
        .reach = CTL_DAEMON_READ,
    },
    {
        .name = "check",
        .synopsis = "check PROTOCOL [--alongside OTHER]... [--rig FILE] [--json]",
        .summary = "validate; print the timeline, total duration, volumes, claims",
        .help = "Validate a protocol without a daemon; print its timeline, duration, volumes and\n"
                "the actuators it claims. --alongside OTHER (repeatable) checks that the protocols\n"
                "can run at once: an actuator claimed by two is named with the run holding it.\n"
                "Without --rig the protocol is checked against the simulated rig.",
        .example = "perfusectl check protocols/kidney-proximal-tubule.yaml",
        .run = offline_check,
        .reach = CTL_OFFLINE,
        .own_text_check = true,
    },
    {
        .name = "simulate",
        .synopsis = "simulate PROTOCOL... [--rig FILE] [-o OUT.h5] [--speed N|max] [--fault SPEC]... "
                    "[--fill PUMP=VOLUME]... [--seed N] [--prompt-delay DURATION] [--line-rate on|off] | "
                    "simulate --tune REGULATOR [--rig FILE] [--seed N]",
        .summary = "run it in virtual time on the simulated rig; write the same HDF5 file a real run writes",
        .help = "Run a protocol in virtual time on the simulated rig; write the same HDF5 file a run writes.\n"
                "Each sample is taken when its read would have crossed the line at the rig's baud\n"
                "rate (--line-rate off: at its scheduled time). Several protocols run together on the\n"
                "one simulated rig (shared sensors, one physics model, its regulators), each in its own\n"
                "file; protocols that claim one actuator are refused, naming it and the run holding it.\n"
                "A regulator's setpoint belongs to the protocol that writes its regulated channel.\n"
                "-o is for one protocol only.\n"
                "With --tune REGULATOR, run the relay autotune on the simulated chip it drives instead and\n"
                "print the plant and suggested gains as a rig snippet (the rig file is not changed).",
        .example = "perfusectl simulate protocols/kidney-proximal-tubule.yaml --speed max",
        .run = offline_simulate,
        .reach = CTL_OFFLINE,
        .own_text_check = true,
    },
    {
        .name = "recover",
        .synopsis = "recover FILE.h5",
        .summary = "make a run file left by a crash readable (safe to repeat)",
        .help = "Make a run file left by a crash or power cut readable; safe to run twice.",
        .example = "perfusectl recover runs/20261122-101500-demo-1a2b3c4d.h5",
        .run = offline_recover,
        .reach = CTL_OFFLINE,
        .own_text_check = true,
    },
    {
        .name = "fleet",
        .synopsis = "fleet --mqtt mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT] [--password-file FILE] [--ca FILE] [--wait SECONDS]",
        .summary = "every rig on an MQTT broker: online, run, step, ETA, alarms",
        .help = "Every rig seen on the MQTT broker (controller/MQTT.md): online or offline, its run with\n"
                "the step and ETA, and its active alarms, from the rigs' retained topics. --password-file:\n"
                "its first line is the password; --ca: the CA of the broker's certificate (mqtts://);\n"
                "--wait: at most this long for the retained messages (default 3 s).",
        .example = "perfusectl fleet --mqtt mqtt://alice@broker.lab --password-file ~/.perfuse-mqtt",
        .run = fleet_run,
        .reach = CTL_OFFLINE,
    },
    {
        .name = "help",
        .synopsis = "help [COMMAND]",
        .summary = "this list, or a command's help with an example",
        .help = "Without COMMAND, the list of commands (what perfusectl --help prints); with it, what the\n"
                "command does and an example (what perfusectl COMMAND --help prints).",
        .example = "perfusectl help set",
        .run = help_cmd,
        .reach = CTL_OFFLINE,
        .own_text_check = true,
    },
};

enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

/* The command called name, or NULL. */
static const struct ctl_command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* "status, watch and wait": the commands of one reach, for a sentence. */
static void list_names(enum ctl_reach reach, char *buf, size_t len)
{
    size_t n = 0, k = 0;
    for (size_t i = 0; i < N_COMMANDS; i++)
        n += commands[i].reach == reach;
    buf[0] = '\0';
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (commands[i].reach != reach)
            continue;
        size_t at = strlen(buf);
        snprintf(buf + at, len - at, "%s%s", k == 0 ? "" : k + 1 == n ? " and " : ", ", commands[i].name);
        k++;
    }
}

/* One command's line in the usage: synopsis, and its summary in a column. */
static void usage_entry(FILE *out, const struct ctl_command *cmd)
{
    enum { COLUMN = 34, WIDTH = 92 };
    if (strlen(cmd->synopsis) + 2 < COLUMN - 1) {
        fprintf(out, "  %-*s", COLUMN - 2, cmd->synopsis);
    } else {
        fprintf(out, "  ");
        ctl_print_wrapped(out, 2, cmd->synopsis, 3 + (int)strlen(cmd->name), WIDTH);
        fprintf(out, "%*s", COLUMN, "");
    }
    ctl_print_wrapped(out, COLUMN, cmd->summary, COLUMN, WIDTH);
}

/* Print the overall usage. */
static void usage(FILE *out)
{
    char reads[256], ro[512];
    list_names(CTL_DAEMON_READ, reads, sizeof reads);
    snprintf(ro, sizeof ro, "use the daemon's read-only socket (perfused-ro.sock beside the control "
             "socket): %s work there, nothing else. These read commands also use it by themselves "
             "when the control socket is not open to you.", reads);
    fprintf(out, "usage: perfusectl [--socket PATH] [--ro] [--server-user USER] [--json] COMMAND ...\n\n");
    fprintf(out, "  --socket PATH       ");
    ctl_print_wrapped(out, 22, "the control socket (default $PERFUSE_SOCKET, else "
                      "$XDG_RUNTIME_DIR/perfuse/perfused.sock, else /run/perfuse/perfused.sock)", 22, 90);
    fprintf(out, "  --ro                ");
    ctl_print_wrapped(out, 22, ro, 22, 90);
    fprintf(out, "  --server-user USER  ");
    ctl_print_wrapped(out, 22, "the user perfused runs as (default $PERFUSE_SERVER_USER, else the "
                      "owner of the socket's directory); any other server is refused", 22, 90);
    fprintf(out, "  --json              output for programs\n"
                 "  --version           the version of perfusectl\n"
                 "\nCommands (talk to perfused):\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].reach != CTL_OFFLINE)
            usage_entry(out, &commands[i]);
    fprintf(out, "Offline:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].reach == CTL_OFFLINE)
            usage_entry(out, &commands[i]);
    fprintf(out, "\nEvery command takes --help (with an example) and --json (output for programs).\n"
                 "Exit codes: 0 success, 1 invalid input or refused, 2 usage error, 3 daemon not reachable.\n");
}

/* Print a command's help: its usage line, what it does, an example, and the
 * options of perfusectl that go before it. */
static void print_help(const struct ctl_command *cmd)
{
    ctl_print_usage_line(stdout, "", cmd);
    printf("\n%s\n\nexample: %s\n", cmd->help, cmd->example);
    printf("\nBefore the command: %s (perfusectl --help).\n",
           cmd->reach == CTL_OFFLINE ? "--json" : cmd->reach == CTL_DAEMON ? "--socket PATH, --json"
           : "--socket PATH, --ro, --json");
}

/* help [COMMAND]: the usage, or a command's help. */
static int help_cmd(struct ctl *c, int argc, char **argv)
{
    (void)c;
    const struct ctl_command *cmd = argc > 1 ? find_command(argv[1]) : NULL;
    if (cmd != NULL) {
        print_help(cmd);
        return EXIT_OK;
    }
    if (argc > 1)
        fprintf(stderr, "perfusectl: unknown command '%s'\n", argv[1]);
    usage(stdout);
    return argc > 1 ? EXIT_USAGE : EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
        { "ro", no_argument, NULL, 'o' }, { "server-user", required_argument, NULL, 'u' },
        { "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ctl c = { 0 };
    log_set_program("perfusectl");
    log_set_level(LOG_WARN);
    int ch;
    while ((ch = getopt_long(argc, argv, "+hj", opts, NULL)) != -1) {
        switch (ch) {
        case 's': c.socket = optarg; c.socket_given = true; break;
        case 'o': c.ro = true; break;
        case 'j': c.json = true; break;
        case 'u': setenv("PERFUSE_SERVER_USER", optarg, 1); break;     /* read by ctlclient_connect */
        case 'h': usage(stdout); return EXIT_OK;
        case 'V': printf("perfusectl %s (%s)\n", PERFUSE_VERSION, PERFUSE_GIT_REV); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (c.socket == NULL) {
        sockpath_default(c.sockbuf, sizeof c.sockbuf);
        c.socket = c.sockbuf;
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    c.cmd = find_command(name);
    if (c.cmd == NULL) {
        fprintf(stderr, "perfusectl: unknown command '%s'\n", name);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (c.ro) {
        /* --ro: the read-only socket beside the control socket (given or default). */
        sockpath_default_ro(c.socket, c.robuf, sizeof c.robuf);
        c.socket = c.robuf;
    }
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    /* What goes to the daemon goes as JSON, which is UTF-8: say so here rather
     * than send a request that lost an argument. */
    for (int i = 1; i < sub_argc && !c.cmd->own_text_check; i++)
        if (!utf8_valid(sub_argv[i], strlen(sub_argv[i]))) {
            fprintf(stderr, "perfusectl: argument '%s' is not UTF-8 text (byte %zu); give it in UTF-8\n",
                    sub_argv[i], utf8_valid_prefix(sub_argv[i], strlen(sub_argv[i])) + 1);
            return EXIT_REFUSED;
        }
    for (int i = 1; i < sub_argc; i++)
        if (strcmp(sub_argv[i], "--help") == 0 || strcmp(sub_argv[i], "-h") == 0) {
            print_help(c.cmd);
            return EXIT_OK;
        }
    return c.cmd->run(&c, sub_argc, sub_argv);
}
