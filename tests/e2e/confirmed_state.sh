#!/bin/bash
# Safety on confirmed device state (DESIGN.md section 9).
# 1. Abort during a 6 s outage of the pump line: status shows pump1
#    unconfirmed meanwhile, the pump is confirmed stopped within 2 s of the
#    line returning (the simulator's own view: its answers say stopped and
#    its dispensed volume stops rising), and the run file shows it.
# 2. A rig whose links are down: devices are not "ok", run is refused with the
#    reason, run --force is recorded, the unconfirmed setpoint pauses the run,
#    the unconfirmed safe state raises safe_state_unconfirmed with an alert, and
#    the shutdown log does not claim the safe state was applied.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig0.yaml" --trace "$T/trace" || { not_ok "perfuse-sim starts"; finish; }
SIM=$SIM_PID
sim_ctl=$SIM_CTL
cat >"$T/alert.sh" <<A
#!/bin/sh
echo "\$PERFUSE_CODE \$PERFUSE_SOURCE \$PERFUSE_MESSAGE" >>"$T/alerts.log"
A
chmod +x "$T/alert.sh"
{ cat "$T/rig0.yaml"; printf 'confirm: {setpoints: 1 s, safe_state: 2 s}\nalerts: {command: %s, min_interval: 0 s}\n' "$T/alert.sh"; } >"$T/rig.yaml"
start() {  # start NAME: perfused on rig.yaml
    start_perfused "$T/$1" --rig "$T/rig.yaml" --socket "$T/$1/sock" --data-dir "$T/$1/runs"
}
# pump1 FIELD: a field of pump1.flow in status (None if absent).
pump1() {
    ctl --json status | "$PYTHON" -c "
import json, sys
c = [c for c in json.load(sys.stdin)['channels'] if c['name'] == 'pump1.flow'][0]
print(c.get(sys.argv[1]))" "$1"
}
# poll SECONDS COMMAND...: until COMMAND succeeds (bounded; status has no push).
poll() { local n=$(( $1 * 20 )); shift; for _ in $(seq "$n"); do "$@" && return 0; sleep 0.05; done; return 1; }
is() { [ "$(pump1 "$1")" = "$2" ]; }

cat >"$T/p.yaml" <<'P'
perfuse: 1
name: confirmed state
on_fault: pause
safe_state: {pump1: 0 uL/min}
steps:
  - {set: {pump1: 10 uL/min}, for: 10 min}
P

# ---- 1. abort while the pump line is down
start a || { not_ok "daemon starts"; finish; }
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
check "pump1 10 uL/min is confirmed by the pump" poll 10 is confirmation confirmed
check "status shows desired 10, from the protocol" sh -c "[ '$(pump1 desired)' = 10.0 ] && [ '$(pump1 desired_origin)' = protocol ]"
t_inject=$(date +%s.%N)
check "inject a 6 s outage of pump1's line" test "$(sim_cmd "$sim_ctl" "fault disconnect:pump1,for=6s")" = ok
check "status shows pump1 unconfirmed while the line is down" poll 3 is confirmation unconfirmed
ctl abort --reason "outage test" >/dev/null
check "after the abort pump1 wants 0 (safe) and it is unconfirmed" \
    sh -c "[ '$(pump1 desired)' = 0.0 ] && [ '$(pump1 desired_origin)' = safe ] && [ '$(pump1 confirmation)' = unconfirmed ]"
since=$(pump1 unconfirmed_since)
check "with an 'unconfirmed since' time ($since)" test "$since" != None
check "a safe state not confirmed in 2 s raises safe_state_unconfirmed" \
    poll 5 sh -c "'$BUILD/perfusectl' --socket '$SOCK' status | grep -q 'safe state 0 uL/min not confirmed by pump1'"
check "the line returns and pump1 is confirmed stopped" poll 15 is confirmation confirmed
check "confirmed at 0" test "$(pump1 confirmed)" = 0.0
d1=$(ctl --json status | "$PYTHON" -c "import json,sys; print([c for c in json.load(sys.stdin)['channels'] if c['name']=='pump1.dispensed'][0]['value'])")
sleep 1.5   # the dispensed volume is read once a second: time, not synchronisation
d2=$(ctl --json status | "$PYTHON" -c "import json,sys; print([c for c in json.load(sys.stdin)['channels'] if c['name']=='pump1.dispensed'][0]['value'])")
check "the pump's dispensed volume stopped rising ($d1 then $d2 uL)" test "$d1" = "$d2"
last_stp=$(grep -n "^ne 0STP" "$T/trace" | tail -1 | cut -d: -f1)
check "the simulator was sent STP after the line returned" test -n "$last_stp"
bad=$(tail -n +"${last_stp:-1}" "$T/trace" | grep "^ne 0RAT " | grep -vc " 00S" || true)
check "and every rate query since answers 'stopped' ($bad did not)" test "$bad" -eq 0
ctl wait >/dev/null
"$PYTHON" - "$file" "$t_inject" <<'PY'
import datetime, math, sys
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
f = open_run(sys.argv[1])
ev = [(float(e["time"]), text(e["code"]), text(e["source"]), text(e["message"])) for e in f["events"][:]]
fails = 0
def expect(c, w):
    global fails
    print(("ok - " if c else "not ok - ") + w)
    fails += not c
t_abort = [t for t, c, s, m in ev if c == "cmd_abort"][0]
ups = [t for t, c, s, m in ev if c == "link_up" and s == "pumps" and t > t_abort]
expect(len(ups) > 0, "the file records the pump line coming back after the abort")
tc, vc = series(f, "confirmed", "pump1.flow")
expect(f["confirmed/pump1.flow"].attrs["kind"] == b"confirmed" or text(f["confirmed/pump1.flow"].attrs["kind"]) == "confirmed",
       "/confirmed/pump1.flow is an NXlog of kind confirmed")
expect(any(v == 10 for v in vc), "/confirmed records 10 uL/min before the outage")
expect(any(math.isnan(v) and t < t_abort for t, v in zip(tc, vc)), "and NaN (unknown) once the line was lost")
stops = [t for t, v in zip(tc, vc) if v == 0 and t > t_abort]
start = datetime.datetime.fromisoformat(text(f.attrs["start_time"]).replace("Z", "+00:00")).timestamp()
back = float(sys.argv[2]) + 6.0     # the simulator reopens the line 6 s after the injection
if ups and stops:
    dt = start + stops[0] - back
    expect(-0.5 <= dt <= 2.0, f"the stop is confirmed {dt:.3f} s after the line returned (at most 2 s; "
           f"{stops[0] - ups[0]:.3f} s after perfused saw it back)")
else:
    expect(False, "the stop is confirmed after the line returned")
applied = [t for t, c, s, m in ev if c == "safe_state_applied"]
expect(len(applied) == 1 and ups and applied[0] >= ups[0], "safe_state_applied is recorded once, after the line returned")
expect(not any("applied" in m for t, c, s, m in ev if c == "safe_state"), "the safe_state request does not claim it was applied")
expect(any(c == "alarm_raised" and s == "pump1.flow" for t, c, s, m in ev), "the safe_state_unconfirmed alarm is in the file")
expect(text(f.attrs["state"]) == "aborted", "the file's state is aborted")
sys.exit(1 if fails else 0)
PY
check "the run file shows the confirmation (see above)" test $? -eq 0
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 15

# ---- 2. a rig whose links are down
kill -TERM "$SIM"; wait_gone "$SIM" 10
start b || { not_ok "daemon starts on a dead rig"; finish; }
unreachable() { ctl --json devices | "$PYTHON" -c "
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if all(x['state'] != 'ok' for x in d['devices']) else 1)"; }
check "devices shows no device ok" poll 10 unreachable
ctl devices >"$T/devices.txt"
check "pump1 is listed unreachable" grep -q "pump1 .*unreachable" "$T/devices.txt"
out=$(ctl run "$T/p.yaml" 2>&1); rc=$?
check "run is refused (exit $rc)" test "$rc" -eq 1
check "naming pump1 and its link ($out)" grep -q "run refused: pump1 (which the protocol sets) is out of reach: link pumps is down" <<<"$out"
out=$(ctl run --force "$T/p.yaml" 2>&1); rc=$?
check "run --force starts it (exit $rc)" test "$rc" -eq 0
check "the forced start is recorded with who and why" sh -c "'$BUILD/perfusectl' --socket '$SOCK' events | grep -q 'run_forced .*run forced by uid .*pump1'"
check "the unconfirmed setpoint is a device fault: on_fault pauses the run" \
    poll 10 sh -c "'$BUILD/perfusectl' --socket '$SOCK' --json status | grep -q '\"state\": \"paused\"'"
check "the pause is logged as a warning" grep -q "setpoint_unconfirmed: 10 uL/min (protocol) not confirmed" "$T/b/perfused.log"
ctl abort >/dev/null
check "the unconfirmed safe state raises safe_state_unconfirmed" \
    poll 10 sh -c "'$BUILD/perfusectl' --socket '$SOCK' --json status | grep -q '\"code\": \"safe_state_unconfirmed\"'"
check "and an alert is sent" poll 5 grep -q "alarm_raised pump1.flow .*safe state" "$T/alerts.log"
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 20
check "the shutdown log does not claim the safe state was applied" sh -c "! grep -qi 'safe.state applied' '$T/b/perfused.log'"
check "it says the safe state was not confirmed" grep -q "safe state NOT confirmed before stopping: pump1.flow" "$T/b/perfused.log"
finish
