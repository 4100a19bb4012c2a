# Shared helpers for the end-to-end tests (bash). Every process a test starts
# is recorded and killed by PID on exit; every wait is bounded.
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/perfuse-e2e.XXXXXX")
PIDS=""
failures=0
checks=0

# cleanup: stop what the test started, in order (SIGTERM) if it goes within
# 10 s, else by SIGKILL; then remove the scratch directory.
cleanup() {
    local p
    for p in $PIDS; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in $PIDS; do
        if kill -0 "$p" 2>/dev/null && ! wait_gone "$p" 10 >/dev/null 2>&1; then
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$T"
}
trap cleanup EXIT

# ok CONDITION-DESCRIPTION: count a passed check.
ok() { checks=$((checks + 1)); echo "ok - $*"; }
# not_ok DESCRIPTION: count a failed check.
not_ok() { checks=$((checks + 1)); failures=$((failures + 1)); echo "not ok - $*"; }
# check DESCRIPTION COMMAND...: run COMMAND, pass if it succeeds.
check() { d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

# start_sim NAME [ARGS...]: start perfuse-sim with ARGS (e.g. --rig-out FILE),
# its stderr in $T/NAME.log, and wait (bounded) for the JSON line it prints once
# everything listens: an event, not a poll. The line goes to $T/NAME.json.
# Sets SIM_PID (registered for cleanup) and SIM_CTL (its control socket).
# Returns 1, showing its log, if it did not get ready.
start_sim() {
    local name=$1 fifo
    shift
    fifo="$T/$name.out"
    rm -f "$fifo"; mkfifo "$fifo"
    "$BUILD/perfuse-sim" "$@" >"$fifo" 2>>"$T/$name.log" &
    SIM_PID=$!
    PIDS="$PIDS $SIM_PID"
    # It prints nothing after this line, so closing the pipe behind it is safe.
    if ! timeout 20 sh -c 'head -n 1 <"$1" >"$2"' _ "$fifo" "$T/$name.json" ||
       [ ! -s "$T/$name.json" ]; then
        echo "perfuse-sim did not get ready; log:"; cat "$T/$name.log"
        return 1
    fi
    SIM_CTL=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['control'])" \
        "$T/$name.json")
}

# start_perfused DIR [ARGS...]: start perfused with ARGS (its --socket, --rig or
# --sim, --data-dir...), its log appended to DIR/perfused.log, and wait (bounded)
# for its READY line on a pipe: an event, not a poll. Sets DAEMON_PID
# (registered for cleanup) and SOCK (from --socket). Returns 1, showing its
# log, if it did not get ready.
start_perfused() {
    local dir=$1 prev="" a
    shift
    mkdir -p "$dir"
    rm -f "$dir/ready"
    mkfifo "$dir/ready"
    "$BUILD/perfused" --ready-fd 3 "$@" 3>"$dir/ready" 2>>"$dir/perfused.log" &
    DAEMON_PID=$!
    PIDS="$PIDS $DAEMON_PID"
    for a in "$@"; do
        [ "$prev" = --socket ] && SOCK=$a
        prev=$a
    done
    if ! timeout 20 sh -c "read -r line <'$dir/ready' && [ \"\$line\" = READY=1 ]"; then
        echo "perfused did not become ready; log:"; cat "$dir/perfused.log"
        return 1
    fi
}

# start_daemon NAME [ARGS...]: start perfused --sim with its own socket and data
# dir under $T/NAME (start_perfused); SIM_PID is its simulator child.
start_daemon() {
    local name=$1
    shift
    start_perfused "$T/$name" --sim --socket "$T/$name/sock" --data-dir "$T/$name/runs" "$@" ||
        return 1
    SIM_PID=$(pgrep -P "$DAEMON_PID" perfuse-sim || true)
}

# ctl ARGS...: perfusectl against the current daemon.
ctl() { timeout 120 "$BUILD/perfusectl" --socket "$SOCK" "$@"; }

# journal_has FILE PYTHON-EXPR: wait (bounded: 20 s) until the run journal
# FILE, loaded as j, makes the expression true. The journal is written in the
# background, so what a command changed shows there a moment after its reply.
journal_has() {
    "$PYTHON" - "$1" "$2" <<'PY'
import json, sys, time
path, expr = sys.argv[1:3]
end = time.monotonic() + 20
while True:
    try:
        j = json.load(open(path))
        if eval(expr):
            sys.exit(0)
    except (OSError, ValueError, KeyError, TypeError):
        pass    # not written yet, or without that part yet
    if time.monotonic() > end:
        print("journal %s: not true within 20 s: %s" % (path, expr))
        sys.exit(1)
    time.sleep(0.1)
PY
}

# run_events FILE [FIELD...]: the run file's /events as a researcher reads
# them (h5py), one line per event, the fields (default: code message) joined by '|'.
run_events() {
    f=$1; shift
    timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run(sys.argv[1])
fields = sys.argv[2:] or ['code', 'message']
for e in f['events']: print('|'.join(text(e[k]) for k in fields))" "$f" "$@"
}

# sim_cmd SOCKET LINE: send one command to perfuse-sim's control socket, print its answer.
sim_cmd() {
    "$PYTHON" -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
s.sendall((sys.argv[2] + '\n').encode()); print(s.recv(4096).decode().strip())" "$1" "$2"
}

# wait_gone PID SECONDS: wait for any process (not only a child) to exit, via pidfd.
wait_gone() { "$PYTHON" tests/lib/pidwait.py "$1" "$2"; }

# finish: check the daemons' logs for sanitizer reports, print the summary line
# and exit with the result. Logs of a failed test are shown.
finish() {
    for log in "$T"/*/perfused.log; do
        [ -f "$log" ] || continue
        if grep -q -E "runtime error|AddressSanitizer|LeakSanitizer" "$log"; then
            not_ok "sanitizer report in $log"
        fi
        if [ "$failures" -gt 0 ]; then
            echo "--- $log"; tail -n 40 "$log"
        fi
    done
    echo "$((checks - failures)) passed, $failures failed"
    [ "$failures" -eq 0 ]
    exit $?
}
