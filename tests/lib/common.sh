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

# start_daemon NAME [ARGS...]: start perfused --sim with its own socket and data
# dir under $T/NAME; waits for its READY line (an event, not a poll).
start_daemon() {
    name=$1; shift
    mkdir -p "$T/$name"
    rm -f "$T/$name/ready"
    mkfifo "$T/$name/ready"
    "$BUILD/perfused" --sim --socket "$T/$name/sock" --data-dir "$T/$name/runs" \
        --ready-fd 3 "$@" 3>"$T/$name/ready" 2>"$T/$name/perfused.log" &
    DAEMON_PID=$!
    PIDS="$PIDS $DAEMON_PID"
    if ! timeout 20 sh -c "read -r line <'$T/$name/ready' && [ \"\$line\" = READY=1 ]"; then
        echo "perfused did not become ready; log:"; cat "$T/$name/perfused.log"
        return 1
    fi
    SIM_PID=$(pgrep -P "$DAEMON_PID" perfuse-sim || true)
    SOCK="$T/$name/sock"
}

# ctl ARGS...: perfusectl against the current daemon.
ctl() { timeout 120 "$BUILD/perfusectl" --socket "$SOCK" "$@"; }

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
