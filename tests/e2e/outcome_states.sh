#!/bin/bash
# How a run ended is the same word in status and in the run file's root
# `state`: a safe-stop limit and on_fault: abort are `faulted`, an operator's
# abort is `aborted`; a simulated safe-stop is `faulted` too.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

# file_state FILE: the run file's root state attribute (h5py).
file_state() {
    timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
print(text(open_run(sys.argv[1]).attrs['state']))" "$1"
}
status_state() { ctl --json status | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }

cat >"$T/stop.yaml" <<'P'
perfuse: 1
name: safe-stop limit
rig: sim
safe_state: {pump1: 0 uL/min}
limits:
  - {channel: chip1.pressure, max: 60 mbar, action: safe-stop}
steps:
  - {name: high, set: {pump1: 50 uL/min}, for: 30 s}
P
cat >"$T/hold.yaml" <<'P'
perfuse: 1
name: hold
rig: sim
on_fault: abort
safe_state: {pump1: 0 uL/min}
steps:
  - {name: hold, set: {pump1: 5 uL/min}, for: 10 min}
P
start_daemon out || { not_ok "daemon starts"; finish; }
simsock=$(sed -n 's/.*"control": "\([^"]*\)".*/\1/p' "$T/out/perfused.log" | head -1)

file=$(ctl run "$T/stop.yaml" | sed -n 's/^file //p')
ctl wait >/dev/null
check "a safe-stop run: status says faulted" test "$(status_state)" = faulted
check "a safe-stop run: the file says faulted" test "$(file_state "$file")" = faulted
# The safe-stop latched pump1: release it (acknowledged, and the pressure falls back).
for _ in $(seq 1 100); do
    ctl ack all >/dev/null 2>&1
    [ "$(ctl --json status | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["alarms"]))')" = 0 ] && break
    sleep 0.1
done

file=$(ctl run "$T/hold.yaml" | sed -n 's/^file //p')
check "the next run starts once the latch is released" test -n "$file"
ctl abort --reason "operator stops it" >/dev/null
ctl wait >/dev/null
check "an operator's abort: status says aborted" test "$(status_state)" = aborted
check "an operator's abort: the file says aborted" test "$(file_state "$file")" = aborted

file=$(ctl run "$T/hold.yaml" | sed -n 's/^file //p')
sim_cmd "$simsock" "fault timeout:chip2" >/dev/null
ctl wait >/dev/null
sim_cmd "$simsock" "clear all" >/dev/null
check "on_fault: abort: status says faulted" test "$(status_state)" = faulted
check "on_fault: abort: the file says faulted" test "$(file_state "$file")" = faulted

out=$(timeout 60 "$BUILD/perfusectl" simulate "$T/stop.yaml" -o "$T/sim.h5" --speed max --json)
check "simulate: a safe-stop is faulted" grep -q '"state": "faulted"' <<<"$out"
check "simulate: its file says faulted" test "$(file_state "$T/sim.h5")" = faulted
out=$(timeout 60 "$PYTHON" scripts/perfuse-summary "$T/sim.h5" 2>&1)
check "perfuse-summary reads a faulted file" grep -q "state faulted" <<<"$out"
timeout 60 "$PYTHON" scripts/perfuse-export "$T/sim.h5" --csv "$T/csv" >/dev/null 2>&1
check "perfuse-export reads a faulted file" grep -q faulted "$T/csv/run.csv"
finish
