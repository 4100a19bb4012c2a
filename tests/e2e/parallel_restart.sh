#!/bin/bash
# kill -9 with three runs going: after the restart each one continues in its
# own file, from its own journal, with its own restart event, as its own
# on_restart says (two resume, one is closed by its safe-stop).
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig.yaml" --lab-devices --trace "$T/trace" || { not_ok "perfuse-sim starts"; finish; }
start() { start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs"; }
start || { not_ok "daemon starts"; finish; }

cat >"$T/a.yaml" <<'P'
perfuse: 1
name: chip a
on_restart: resume
safe_state: {pump1: 0 uL/min}
steps:
  - {name: a1, set: {pump1: 11 uL/min}, for: 6 s}
P
cat >"$T/b.yaml" <<'P'
perfuse: 1
name: chip b
on_restart: resume
safe_state: {pump2: 0 uL/min}
steps:
  - {name: b1, set: {pump2: 21 uL/min}, for: 7 s}
P
cat >"$T/c.yaml" <<'P'
perfuse: 1
name: chip c
on_restart: safe-stop
safe_state: {hpump1: 0 uL/min}
steps:
  - {name: c1, set: {hpump1: 31 uL/min}, for: 60 s}
P
# js EXPR: wait (bounded, 15 s) until EXPR holds for `status --json` as s.
js() {
    for i in $(seq 150); do
        ctl --json status 2>/dev/null | "$PYTHON" -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" && return 0
        sleep 0.1
    done
    return 1
}
# chip-c first: its journal is continued (and closed by its safe-stop) before the others'.
fc=$(ctl run "$T/c.yaml" | sed -n 's/^file //p')
fa=$(ctl run "$T/a.yaml" | sed -n 's/^file //p')
fb=$(ctl run "$T/b.yaml" | sed -n 's/^file //p')
check "three runs going" js "len([r for r in s['runs'] if r['state'] == 'running']) == 3"
check "three journals, one per run" timeout 10 sh -c "until [ -s '$T/runs/run.journal' ] && [ -s '$T/runs/run-1.journal' ] && [ -s '$T/runs/run-2.journal' ]; do sleep 0.1; done"
# The crash comes once each run's file holds its structure, so that each run
# continues in its own file: a kill in the moment between a run's journal and
# its file's first flush continues that run in a new file instead
# (run_file_replaced.sh covers that path).
check "each run's file holds its protocol" timeout 15 "$PYTHON" -c "
import sys, time, h5py
for p in sys.argv[1:]:
    while True:
        try:
            with h5py.File(p, 'r', swmr=True) as f:
                if 'protocol' in f:
                    break
        except OSError:
            pass
        time.sleep(0.1)
" "$fa" "$fb" "$fc"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
LINE=$(wc -l <"$T/trace")
start || { not_ok "daemon restarts after kill -9"; finish; }
check "after the restart chip-a and chip-b go on, chip-c was closed" \
    js "sorted((r['name'], r['state']) for r in s['runs'] if r['run_active']) == [('chip-a', 'running'), ('chip-b', 'running')]"
check "chip-c's safe state stops hpump1 only: pump1 and pump2 are never told to stop" \
    sh -c "tail -n +$((LINE + 1)) '$T/trace' | grep -q '^harvard' && ! tail -n +$((LINE + 1)) '$T/trace' | grep -q '^ne [01]STP'"
check "chip-a completes" sh -c "'$BUILD/perfusectl' --socket '$SOCK' --json wait --run chip-a | grep -q '\"state\": \"completed\"'"
check "chip-b completes" sh -c "'$BUILD/perfusectl' --socket '$SOCK' --json wait --run chip-b | grep -q '\"state\": \"completed\"'"
check "no journal is left" sh -c "! ls '$T/runs/'*.journal 2>/dev/null | grep -q ."
check "still three run files" test "$(ls "$T"/runs/*.h5 | wc -l)" -eq 3
restart_file() {
    "$PYTHON" - "$@" <<'PY'
import h5py, sys
path, state, chan, onr = sys.argv[1:5]
f = h5py.File(path, "r")
st = f.attrs["state"]; st = st.decode() if isinstance(st, bytes) else str(st)
ev = [(e["code"].decode(), e["message"].decode()) for e in f["events"]]
restarts = [m for c, m in ev if c == "restart"]
others = [ch for ch in f["setpoints"] if ch != chan and len(f["setpoints"][ch]["value"][:]) > 0]
ok = st == state and len(restarts) == 1 and ("on_restart: " + onr) in restarts[0] and not others
if not ok:
    print(path, st, restarts, others)
sys.exit(0 if ok else 1)
PY
}
check "chip-a's file: completed, one restart event (resume), setpoints only on pump1" restart_file "$fa" completed pump1.flow resume
check "chip-b's file: completed, one restart event (resume), setpoints only on pump2" restart_file "$fb" completed pump2.flow resume
check "chip-c's file: interrupted, one restart event (safe-stop), setpoints only on hpump1" restart_file "$fc" interrupted hpump1.flow safe-stop
finish
