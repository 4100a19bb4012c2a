#!/bin/bash
# A tripped safe-stop is latched: after a rig limit on chip1.pressure trips and
# stops pump1, a `set` or `run` that would move a held actuator is refused,
# naming the alarm, while the alarm is unacknowledged, and still after the
# acknowledgement while the pressure stays high; once the alarm is acknowledged
# and clear, the set is accepted.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig0.yaml" || { not_ok "perfuse-sim starts"; finish; }
simsock=$SIM_CTL
# At 10 uL/min chip1 settles near 29 mbar; clogged (x5) it heads for 129 mbar.
sed "s|^rig: sim$|rig: sim\nlimits: [{channel: chip1.pressure, max: 40 mbar, for: 1 s, action: safe-stop}]|" \
    "$T/rig0.yaml" >"$T/rig.yaml"
start_perfused "$T/a" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" || { not_ok "daemon starts"; finish; }

# alarm_field KEY: KEY of the rig limit's alarm in status --json ('' if none is listed).
alarm_field() {
    ctl --json status | "$PYTHON" -c "
import json,sys
a=[a for a in json.load(sys.stdin).get('alarms', []) if '(rig limit' in a['message']]
print(a[0][sys.argv[1]] if a else '')" "$1"
}
status_field() {
    ctl --json status | "$PYTHON" -c "
import json,sys
c=[c for c in json.load(sys.stdin)['channels'] if c['name']==sys.argv[1]][0]
print(c.get(sys.argv[2]))" "$1" "$2"
}

check "pump1 set by hand" sh -c "'$BUILD/perfusectl' --socket '$SOCK' set pump1 10 uL/min >/dev/null"
sim_cmd "$simsock" "fault clog:chip1" >/dev/null
id=""
for _ in $(seq 1 150); do id=$(alarm_field id); [ -n "$id" ] && break; sleep 0.1; done
# Keep the reading high from here on, as a clog that does not ease would.
sim_cmd "$simsock" "fault stuck:chip1" >/dev/null
check "the rig limit trips and raises alarm $id" test -n "$id"
for _ in $(seq 1 50); do [ "$(status_field pump1.flow value)" = 0.0 ] && break; sleep 0.1; done
check "pump1 reads back stopped" test "$(status_field pump1.flow value)" = 0.0
check "the latch is in the log, naming the alarm" \
    grep -q "safe_state_latched: .*pump1.flow.* held in the safe state until alarm $id (chip1.pressure above its max 40 mbar)" "$T/a/perfused.log"

sleep 1     # the operator tries again a second later (time, not synchronisation)
out=$(ctl set pump1 500 uL/min 2>&1); rc=$?
echo "# $out"
check "a second set while the alarm is active is refused (exit $rc)" test "$rc" -eq 1
check "the refusal names the alarm and what to do" \
    grep -q "pump1.flow is held in its safe state by alarm $id (chip1.pressure above its max 40 mbar); acknowledge it with \`perfusectl ack $id\`" <<<"$out"
out=$(ctl --json set pump1 500 uL/min 2>&1)
check "the refusal's code is refused" grep -q '"code": "refused"' <<<"$out"
sleep 0.5
check "pump1 stays stopped" test "$(status_field pump1.flow value)" = 0.0
check "pump1 has no setpoint of ours" test "$(status_field pump1.flow setpoint)" = None

cat >"$T/p1.yaml" <<'P'
perfuse: 1
name: moves pump1
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {set: {pump1: 20 uL/min}, for: 10 s}
P
cat >"$T/p2.yaml" <<'P'
perfuse: 1
name: moves pump2
rig: sim
safe_state: {pump2: 0 uL/min}
steps:
  - {set: {pump2: 20 uL/min}, for: 10 s}
P
out=$(ctl run "$T/p1.yaml" 2>&1); rc=$?
echo "# $out"
check "a run that sets pump1 is refused, naming the alarm (exit $rc)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'pump1.flow (set by this protocol) is held in its safe state by alarm $id' <<'X'
$out
X"
out=$(ctl run "$T/p2.yaml" 2>&1); rc=$?
check "a rig limit holds every actuator: a run that sets pump2 is refused too (exit $rc)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'pump2.flow (set by this protocol) is held .* by alarm $id' <<'X'
$out
X"
check "no run was started" test "$(ctl --json status | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = idle

ctl ack "$id" >/dev/null
check "acknowledged, the condition still holds" test "$(alarm_field state)" = acknowledged
out=$(ctl set pump1 500 uL/min 2>&1); rc=$?
echo "# $out"
check "after the ack, with the pressure still high, the set is still refused (exit $rc)" \
    sh -c "[ $rc -eq 1 ] && grep -q 'held in its safe state by alarm $id .*acknowledged; it is released once chip1.pressure is back' <<'X'
$out
X"

sim_cmd "$simsock" "clear chip1" >/dev/null
for _ in $(seq 1 100); do [ -z "$(alarm_field id)" ] && break; sleep 0.1; done
check "the pressure is back: the alarm clears and, acknowledged, goes" test -z "$(alarm_field id)"
check "the release is in the log" grep -q "safe_state_released: alarm $id .*acknowledged and clear" "$T/a/perfused.log"
out=$(ctl set pump1 5 uL/min 2>&1); rc=$?
check "acknowledged and clear: the set is accepted (exit $rc: $out)" test "$rc" -eq 0
for _ in $(seq 1 50); do [ "$(status_field pump1.flow setpoint)" = 5.0 ] && break; sleep 0.1; done
check "pump1 runs at 5 uL/min again" test "$(status_field pump1.flow setpoint)" = 5.0
ctl set pump1 0 uL/min >/dev/null
finish
