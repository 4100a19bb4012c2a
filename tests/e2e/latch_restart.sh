#!/bin/bash
# A latched safe state survives a restart. A rig limit on chip1.pressure trips
# and stops pump1; perfused is killed (kill -9); while no daemon watches, the
# pressure comes back and the pump is set running again on its line. The
# restarted daemon lists the alarm again (restored, with its trip time), stops
# the pump (the simulator's own trace says so), refuses `set pump1` naming the
# new alarm id, also once the pressure is back, and accepts it after the ack.
# An acknowledgement made before a kill -9 is kept. A latch file that is not
# JSON holds every actuator under the alarm latch_unusable, kept as
# latch.json.unusable, until that alarm is acknowledged. A protocol limit's
# hold, its run ended, comes back with the values its safe_state wrote.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig0.yaml" --trace "$T/trace" || { not_ok "perfuse-sim starts"; finish; }
simsock=$SIM_CTL
pumps=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['buses']['pumps'])" "$T/sim.json")
# At 10 uL/min chip1 settles near 29 mbar; clogged (x5) it heads for 129 mbar.
sed "s|^rig: sim$|rig: sim\nlimits: [{channel: chip1.pressure, max: 40 mbar, for: 1 s, action: safe-stop}]|" \
    "$T/rig0.yaml" >"$T/rig.yaml"
LATCH="$T/runs/latch.json"

# start NAME: perfused on the simulator's rig, data in $T/runs; waits for its READY line.
start() {
    start_perfused "$T/$1" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" || { not_ok "perfused $1 starts"; finish; }
}
# kill9: kill the daemon as a power cut would.
kill9() { kill -KILL "$DAEMON_PID"; wait_gone "$DAEMON_PID" 10; }
# status_field CHANNEL KEY: KEY of CHANNEL in status --json.
status_field() {
    ctl --json status | "$PYTHON" -c "
import json,sys
c=[c for c in json.load(sys.stdin)['channels'] if c['name']==sys.argv[1]][0]
print(c.get(sys.argv[2]))" "$1" "$2"
}
# alarm CODE KEY: KEY of the listed alarm with CODE in status --json ('' if none).
alarm() {
    ctl --json status | "$PYTHON" -c "
import json,sys
a=[a for a in json.load(sys.stdin).get('alarms', []) if a['code']==sys.argv[1]]
print(a[0][sys.argv[2]] if a else '')" "$1" "$2"
}
# latch_field EXPR: a Python expression on the latch file's first hold h ('' if none).
latch_field() {
    "$PYTHON" -c "
import json,sys
try: h=json.load(open(sys.argv[1]))['holds'][0]
except Exception: print(''); sys.exit()
print($1)" "$LATCH"
}
# run_pump [ADDR]: start a pump (address 0: pump1, 1: pump2) at 10 uL/min on its
# line, as if by hand; prints its last status prompt.
run_pump() {
    "$PYTHON" -c "
import os, sys, time, tty, select
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); tty.setraw(fd)
for cmd in (b'RAT10UM\r', b'RUN\r'):
    os.write(fd, sys.argv[2].encode() + cmd); r = b''
    while not r.endswith(b'\x03') and select.select([fd], [], [], 2)[0]: r += os.read(fd, 64)
print(r.decode(errors='replace').strip('\x02\x03'))" "$pumps" "${1:-0}"
}
run_pump1() { run_pump 0; }
# pump_stopped_after LINE [ADDR]: after the trace's line LINE the simulator traced
# the pump at ADDR (default 0, pump1) told to stop, and its last answer's status
# prompt is S (stopped).
pump_stopped_after() {
    local a=${2:-0}
    timeout 10 sh -c "until tail -n +$(($1 + 1)) '$T/trace' | grep -q '^ne ${a}\(STP\|RAT0UM\|RAT0\.0*UM\)'; do sleep 0.1; done" &&
    test "$(tail -n +$(($1 + 1)) "$T/trace" | grep "^ne $a" | tail -1 | awk '{print substr($3, 3, 1)}')" = S
}
pump1_stopped_after() { pump_stopped_after "$1" 0; }

start a
# An alarm of chip2 first, so that the limit's alarm id (2) differs from the
# one the restarted daemon gives it (1).
sim_cmd "$simsock" "fault nan:chip2" >/dev/null
for _ in $(seq 1 100); do [ -n "$(alarm sensor_nan id)" ] && break; sleep 0.1; done
sim_cmd "$simsock" "clear chip2" >/dev/null
check "pump1 set by hand" sh -c "'$BUILD/perfusectl' --socket '$SOCK' set pump1 10 uL/min >/dev/null"
sim_cmd "$simsock" "fault clog:chip1" >/dev/null
id=""
for _ in $(seq 1 150); do id=$(alarm limit_max id); [ -n "$id" ] && break; sleep 0.1; done
sim_cmd "$simsock" "fault stuck:chip1" >/dev/null       # the clog does not ease
check "the rig limit trips: alarm $id" test -n "$id"
for _ in $(seq 1 50); do [ -s "$LATCH" ] && break; sleep 0.1; done
check "the hold is kept in the data directory's latch.json" \
    test "$(latch_field "h['channel'], h['limit']['from'], h['limit']['max'], 'pump1.flow' in h['held'], h['acknowledged']")" = \
    "chip1.pressure rig 40.0 True False"

kill9
# While no daemon watches, the pressure comes back and pump1 is set running on its line.
sim_cmd "$simsock" "clear chip1" >/dev/null
check "pump1 runs again on its line while no daemon watches" test "$(run_pump1)" = 00I
line=$(wc -l <"$T/trace")
start b
id2=$(alarm limit_max id)
msg=$(alarm limit_max message)
echo "# alarm $id2: $msg"
check "after kill -9 and a restart, status lists the limit's alarm again, as alarm $id2 (was $id)" \
    test -n "$id2" -a "$id2" != "$id"
check "its message says it was restored and since when" \
    grep -q "^restored after a restart: chip1.pressure above its max 40 mbar since 20[0-9-]*T[0-9:.]*Z (rig limit" <<<"$msg"
check "the safe state is applied again: the simulator stops pump1" pump1_stopped_after "$line"
check "the restore is in the log" \
    grep -q "safe_state_restored: .*pump1.flow.* held in the safe state again after a restart, until alarm $id2" \
    "$T/b/perfused.log"
out=$(ctl set pump1 500 uL/min 2>&1); rc=$?
echo "# $out"
check "set pump1 is refused, naming the new alarm (exit $rc)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'pump1.flow is held in its safe state by alarm $id2 (chip1.pressure above its max 40 mbar)' <<'X'
$out
X"
for _ in $(seq 1 50); do [ "$(alarm limit_max state)" = cleared ] && break; sleep 0.1; done
check "the pressure is back: the restored alarm clears, and stays listed" test "$(alarm limit_max state)" = cleared
out=$(ctl set pump1 500 uL/min 2>&1); rc=$?
check "clear but not acknowledged: still refused, asking for the ack (exit $rc)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'back within its limit: acknowledge the alarm with .perfusectl ack $id2. to release it' <<'X'
$out
X"
check "pump1 stayed stopped" pump1_stopped_after "$line"
ctl ack "$id2" >/dev/null
check "the release is in the log" grep -q "safe_state_released: alarm $id2 .*acknowledged and clear" "$T/b/perfused.log"
out=$(ctl set pump1 10 uL/min 2>&1); rc=$?
check "acknowledged and clear: the set is accepted (exit $rc: $out)" test "$rc" -eq 0
for _ in $(seq 1 50); do [ ! -e "$LATCH" ] && break; sleep 0.1; done
check "nothing held: latch.json is gone" test ! -e "$LATCH"

# An acknowledgement made before a restart is kept.
sim_cmd "$simsock" "fault clog:chip1" >/dev/null
id=""
for _ in $(seq 1 150); do id=$(alarm limit_max id); [ -n "$id" ] && break; sleep 0.1; done
sim_cmd "$simsock" "fault stuck:chip1" >/dev/null
check "the limit trips again: alarm $id" test -n "$id"
ctl ack "$id" >/dev/null
for _ in $(seq 1 50); do [ "$(latch_field "h['acknowledged'], h['acknowledged_by'] != ''")" = "True True" ] && break; sleep 0.1; done
check "the acknowledgement, and by whom, is kept in latch.json" \
    test "$(latch_field "h['acknowledged'], h['acknowledged_by'] != ''")" = "True True"
kill9
start c
id3=$(alarm limit_max id)
check "after kill -9 the restored alarm $id3 is still acknowledged" test "$(alarm limit_max state)" = acknowledged
out=$(ctl set pump1 500 uL/min 2>&1); rc=$?
check "acknowledged, the pressure still high: the set is refused (exit $rc)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'by alarm $id3 .*acknowledged; it is released once chip1.pressure is back' <<'X'
$out
X"
sim_cmd "$simsock" "clear chip1" >/dev/null
for _ in $(seq 1 100); do [ -z "$(alarm limit_max id)" ] && break; sleep 0.1; done
check "the pressure is back: the restored alarm clears and, acknowledged, goes" test -z "$(alarm limit_max id)"
out=$(ctl set pump1 5 uL/min 2>&1); rc=$?
check "acknowledged and clear: the set is accepted (exit $rc: $out)" test "$rc" -eq 0
ctl set pump1 0 uL/min >/dev/null

# A latch file that is not JSON: everything held until its alarm is acknowledged.
kill9
printf '{"latch": 1, "rig": "sim", "holds": [' >"$LATCH"
check "pump1 runs again on its line" test "$(run_pump1)" = 00I
line=$(wc -l <"$T/trace")
start d
uid=$(alarm latch_unusable id)
msg=$(alarm latch_unusable message)
echo "# alarm $uid: $msg"
check "a latch file that is not JSON raises latch_unusable ($uid), naming the file and the reason" \
    grep -q "^latch file latch.json unusable: not JSON: .*every actuator held in its safe state" <<<"$msg"
check "the file is kept as latch.json.unusable" test -f "$LATCH.unusable"
check "every actuator is put in its safe state: the simulator stops pump1" pump1_stopped_after "$line"
check "it is in the log" grep -q "latch.json: not JSON: .*every actuator sent its safe state" "$T/d/perfused.log"
out=$(ctl set pump2 5 uL/min 2>&1); rc=$?
echo "# $out"
check "set pump2 is refused, naming alarm $uid (exit $rc)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'pump2.flow is held in its safe state by alarm $uid .*perfusectl ack $uid' <<'X'
$out
X"
ctl ack "$uid" >/dev/null
out=$(ctl set pump2 5 uL/min 2>&1); rc=$?
check "acknowledged, the set is accepted (exit $rc: $out)" test "$rc" -eq 0
ctl set pump2 0 uL/min >/dev/null

# A protocol limit's hold: its run has ended, so a copy of the limit judges the condition
# after the restart, and the values its safe_state wrote are written again.
cat >"$T/p.yaml" <<'P'
perfuse: 1
name: clog on chip2
rig: sim
safe_state: {pump2: 0 uL/min, valve1: 2}
limits:
  - {channel: chip2.pressure, max: 40 mbar, for: 1 s, action: safe-stop}
steps:
  - {set: {pump2: 10 uL/min, valve1: 4}, for: 60 s}
P
check "a run with a protocol limit starts" sh -c "'$BUILD/perfusectl' --socket '$SOCK' run '$T/p.yaml' >/dev/null"
sim_cmd "$simsock" "fault clog:chip2" >/dev/null
pid=""
for _ in $(seq 1 150); do pid=$(alarm limit_max id); [ -n "$pid" ] && break; sleep 0.1; done
sim_cmd "$simsock" "fault stuck:chip2" >/dev/null
check "the protocol limit trips: alarm $pid" test -n "$pid"
for _ in $(seq 1 50); do [ -n "$(latch_field "h['limit']['from']")" ] && break; sleep 0.1; done
check "latch.json keeps the protocol limit and the values its safe state wrote" \
    test "$(latch_field "h['limit']['from'], h['limit']['line'] > 0, h['held'].get('pump2.flow'), h['held'].get('valve1.position')")" = \
    "protocol True 0.0 2.0"
kill9
sim_cmd "$simsock" "clear chip2" >/dev/null
check "pump2 runs again on its line" test "$(run_pump 1)" = 01I
line=$(wc -l <"$T/trace")
start e
pid2=$(alarm limit_max id)
msg=$(alarm limit_max message)
echo "# alarm $pid2: $msg"
check "the protocol limit's alarm is listed again" \
    grep -q "^restored after a restart: chip2.pressure above its max 40 mbar since .*(protocol limit, line" <<<"$msg"
check "its safe state is written again: the simulator stops pump2" pump_stopped_after "$line" 1
check "valve1 is commanded to its safe port 2 again" test "$(status_field valve1.position setpoint)" = 2.0
for _ in $(seq 1 50); do [ "$(alarm limit_max state)" = cleared ] && break; sleep 0.1; done
check "chip2 is back within the limit: the restored alarm clears" test "$(alarm limit_max state)" = cleared
out=$(ctl set valve1 5 2>&1); rc=$?
check "valve1 stays held until the ack (exit $rc)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'valve1.position is held in its safe state by alarm $pid2' <<'X'
$out
X"
ctl ack "$pid2" >/dev/null
out=$(ctl set valve1 5 2>&1); rc=$?
check "acknowledged and clear: the set is accepted (exit $rc: $out)" test "$rc" -eq 0

# A latch file that is a symbolic link is not followed: everything is held.
kill9
rm -f "$LATCH" "$LATCH.unusable"
ln -s "$T/rig.yaml" "$LATCH"
start f
msg=$(alarm latch_unusable message)
echo "# $msg"
check "a symbolic link raises latch_unusable" grep -q "latch.json unusable: it is a symbolic link" <<<"$msg"
check "the link itself is kept as latch.json.unusable, its target untouched" \
    sh -c "[ -L '$LATCH.unusable' ] && [ -s '$T/rig.yaml' ]"
out=$(ctl set pump1 5 uL/min 2>&1); rc=$?
check "pump1 is held (exit $rc)" sh -c "[ $rc -eq 1 ] && grep -q 'held in its safe state by alarm' <<'X'
$out
X"
finish
