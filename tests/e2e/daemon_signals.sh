#!/bin/bash
# Stopping the daemon mid-run: SIGTERM stops it in order (safe state, file
# marked interrupted, simulator stopped); kill -9 leaves no simulator behind
# holding the ptys and ports a restarted daemon needs.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

# --- SIGTERM during the demo
start_daemon term || { not_ok "daemon starts"; finish; }
out=$(ctl run protocols/demo.yaml)
file=$(echo "$out" | sed -n 's/^file //p')
check "run started" test -n "$file"
# Stop it while the ramp runs; the moment is arbitrary, not a synchronisation.
sleep 17
kill -TERM "$DAEMON_PID"
check "perfused exits after SIGTERM" wait_gone "$DAEMON_PID" 20
wait "$DAEMON_PID"; rc=$?
check "perfused exit status is 0 after SIGTERM (got $rc)" test "$rc" -eq 0
check "perfuse-sim is gone too" wait_gone "$SIM_PID" 5
check "no child process is left" sh -c "! pgrep -P $DAEMON_PID >/dev/null"
state=$("$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run('$file'); print(text(f.attrs['state']))")
check "the file says how the run ended: state=$state" test "$state" = interrupted
events=$("$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run('$file'); print(' '.join(text(c) for c in f['events']['code']))")
check "the shutdown is recorded as an event" grep -qw shutdown <<<"$events"
check "the safe state is recorded as an event" grep -qw safe_state <<<"$events"
t_last=$("$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, series
f = open_run('$file'); t, v = series(f, 'setpoints', 'pump1.flow'); print(v[-1])")
check "pump1's last setpoint is the safe state 0 (got $t_last)" test "$t_last" = 0.0
check "socket removed on exit" test ! -e "$SOCK"

# --- kill -9: the simulator must not outlive the daemon
start_daemon kill9 || { not_ok "daemon starts"; finish; }
check "perfuse-sim runs (pid $SIM_PID)" test -n "$SIM_PID"
ctl run protocols/demo.yaml >/dev/null
sleep 3   # let the run flush some seconds of data before the crash (time, not synchronisation)
kill -KILL "$DAEMON_PID"
check "perfused is killed" wait_gone "$DAEMON_PID" 5
check "perfuse-sim exits when perfused is killed with -9" wait_gone "$SIM_PID" 5

# --- a restarted daemon gets the socket back (stale socket replaced), recovers
# the file the crash left, and continues the run in it (demo: on_restart resume)
crashed=$(ls "$T/kill9/runs/"*.h5)
start_daemon kill9 || true
check "the restarted daemon recovered the crashed run's file" grep -q "recovered .*left by a crash" "$T/kill9/perfused.log"
check "and continues the run" grep -q "journal: continuing run" "$T/kill9/perfused.log"
if ctl status >/dev/null; then ok "a new daemon starts on the same socket after the crash"
else not_ok "a new daemon starts on the same socket after the crash"; fi
ctl abort --reason "end of the test" >/dev/null
ctl wait >/dev/null
check "the run file is the same one (no second file)" test "$(ls "$T/kill9/runs/"*.h5)" = "$crashed"
state=$("$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run('$crashed')
codes = [text(e['code']) for e in f['events']]
print(text(f.attrs['state']), len(f['channels/chip1.pressure/value']) > 0, 'restart' in codes)")
check "the file opens plainly, with its samples and a restart event ($state)" test "$state" = "aborted True True"
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 15
finish
