#!/bin/bash
# A data directory holding crafted .h5 files (oversized, wrong-type and
# wrong-rank attributes, a truncated file, a text file, a link; made by
# tests/fixtures/crafted_runs.py) beside a journaled run: the restarted daemon
# warns about each one by name, writes through none of them, and continues the run.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

cat >"$T/p.yaml" <<'P'
perfuse: 1
name: crafted neighbours
rig: sim
on_restart: resume
safe_state: {pump1: 0 uL/min}
steps:
  - {name: first, set: {pump1: 10 uL/min}, for: 4 s}
  - {name: second, set: {pump1: 20 uL/min}, for: 3 s}
P
# wait_flushed FILE: wait (bounded) until a reader following FILE sees samples.
wait_flushed() {
    timeout 20 "$PYTHON" -c "
import sys, time
sys.path.insert(0, 'tests/lib')
from h5run import open_run
while True:
    try:
        with open_run(sys.argv[1], swmr=True) as f:
            if f['channels']['chip1.pressure']['time'].shape[0] > 0:
                break
    except (OSError, KeyError):
        pass
    time.sleep(0.1)" "$1"
}

start_daemon a || { not_ok "daemon starts"; finish; }
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
check "a run starts" test -n "$file"
timeout 10 sh -c "until [ -s '$T/a/runs/run.journal' ]; do sleep 0.1; done"
check "the run is journaled" test -s "$T/a/runs/run.journal"
# The kill must land after the file's first flush, or there is nothing to
# continue in: wait (bounded) until a reader following it sees samples.
check "the run file holds samples" wait_flushed "$file"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null

"$PYTHON" tests/fixtures/crafted_runs.py "$T/a/runs" >"$T/crafted.txt"
check "the crafted files are made ($(wc -l <"$T/crafted.txt"))" test "$(wc -l <"$T/crafted.txt")" -ge 10
sha_before=$(sha256sum "$T/a/runs/link-target.txt")

start_daemon a || { not_ok "the daemon starts beside the crafted files"; finish; }
ok "the daemon starts beside the crafted files"
while IFS="$(printf '\t')" read -r name why; do
    check "$name ($why) is skipped with a warning naming it" \
        grep -qE "(warning|error): recorder: (skipping|cannot recover) $T/a/runs/$name" "$T/a/perfused.log"
done <"$T/crafted.txt"
grep -E "skipping|cannot recover" "$T/a/perfused.log" | sed "s|$T/a/runs/||" | cut -c1-200
check "the link's target is untouched" test "$(sha256sum "$T/a/runs/link-target.txt")" = "$sha_before"
check "the journaled run is continued" grep -q "continuing run" "$T/a/perfused.log"
out=$(ctl --json wait)
check "the continued run completes" grep -q '"state": "completed"' <<<"$out"
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 20 >/dev/null
check "its file says completed, with a restart event" "$PYTHON" -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r')
st = f.attrs['state']; st = st.decode() if isinstance(st, bytes) else str(st)
codes = [c.decode() if isinstance(c, bytes) else str(c) for c in f['events']['code']]
sys.exit(0 if st == 'completed' and 'restart' in codes else 1)" "$file"

# The journaled run's own file, altered after the crash: a series' time stamps
# made two-dimensional. The restart must not write into it: the continued run
# stops at once in its safe state, saying why, and the daemon stays up.
start_daemon b || { not_ok "daemon b starts"; finish; }
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
timeout 10 sh -c "until [ -s '$T/b/runs/run.journal' ]; do sleep 0.1; done"
check "run b's file holds samples" wait_flushed "$file"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
h5clear -s "$file"
"$PYTHON" -c "
import h5py, numpy as np, sys
f = h5py.File(sys.argv[1], 'r+')
del f['channels/chip1.pressure/time']
f['channels/chip1.pressure'].create_dataset('time', data=np.zeros((4, 3)))
f.close()" "$file"
start_daemon b || { not_ok "daemon b restarts beside its altered run file"; finish; }
ok "daemon b restarts beside its altered run file"
grep -E "warning|error" "$T/b/perfused.log" | grep -v "alarm\|link" | sed "s|$T/b/runs/||" | cut -c1-220
check "the two-dimensional time stamps are named" grep -q "dataset 'time': expected a one-dimensional float.*rank 2 \[4 x 3\]" "$T/b/perfused.log"
check "the run stops in its safe state" timeout 10 sh -c "until grep -q 'run aborted: the run file cannot be created' '$T/b/perfused.log' && grep -q 'safe state applied' '$T/b/perfused.log'; do sleep 0.1; done"
ctl status >/dev/null
check "the daemon answers (exit $?)" test $? -eq 0
finish
