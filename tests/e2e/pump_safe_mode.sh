#!/bin/bash
# The New Era pump's own watchdog (Safe mode, safe_mode: 3 s in the rig): the
# driver switches the pump to Safe-mode packets and its polls keep it alive.
# When perfused dies (kill -9) the pump stops itself 3 s later (A?T); when
# perfused stops in order with on_shutdown: hold, the pump is returned to
# Basic mode first and keeps pumping.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig0.yaml" --trace "$T/trace" || { not_ok "perfuse-sim starts"; finish; }
sed 's/^\(  - {name: pump1, driver: newera, bus: pumps, address: 0,\)$/\1 safe_mode: 3 s,/' "$T/rig0.yaml" >"$T/rig.yaml"
check "the rig puts pump1 in safe mode" grep -q "safe_mode: 3 s" "$T/rig.yaml"
mkdir -p "$T/s"
start() {
    start_perfused "$T/s" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs"
}
flow() { ctl --json status | "$PYTHON" -c "import json,sys; print([c for c in json.load(sys.stdin)['channels'] if c['name']=='pump1.flow'][0]['value'])"; }
cat >"$T/hold.yaml" <<'P'
perfuse: 1
name: safe mode
rig: sim
on_restart: safe-stop
on_shutdown: hold
safe_state: {pump1: 0 uL/min}
steps:
  - {name: pump, set: {pump1: 10 uL/min}, for: 10 min}
P

start || { not_ok "daemon starts"; finish; }
ctl run "$T/hold.yaml" >/dev/null
sleep 2                      # the pump runs for a while under the daemon's polls
check "the exchanges are safe-mode packets (SAF3 sent)" grep -q "^ne 0SAF3 " "$T/trace"
check "pump1 delivers 10 uL/min" test "$(flow)" = 10.0
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
t_kill=$(date +%s.%N)
timeout 10 sh -c "until grep -q 'pump1: safe-mode time-out' '$T/sim.log'; do sleep 0.1; done"
check "with the daemon dead, the pump stops itself (A?T)" grep -q "pump1: safe-mode time-out after 3 s without a packet: stopped (A?T)" "$T/sim.log"

start || { not_ok "daemon restarts"; finish; }
ctl wait >/dev/null          # on_restart: safe-stop ends the killed run
ctl run "$T/hold.yaml" >/dev/null
sleep 2
check "after the restart the pump runs again ($(flow))" test "$(flow)" = 10.0
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
check "an orderly stop returns the pump to Basic mode (SAF0)" grep -q "^ne 0SAF0 " "$T/trace"
n0=$(grep -c "safe-mode time-out" "$T/sim.log")
sleep 4                      # longer than the time-out: the pump must not stop itself
n1=$(grep -c "safe-mode time-out" "$T/sim.log")
check "with on_shutdown: hold the pump keeps pumping after the daemon stopped" test "$n0" -eq "$n1"
finish
