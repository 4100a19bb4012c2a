#!/bin/bash
# The control commands a technician uses, happy and refused paths, each read
# back from the run file's /events: operator, pause/resume with who and why,
# limits with each action (alarm, pause, safe-stop), ack, devices, watch;
# --help and --json for every command; a second daemon refused.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

# events_of FILE: "code|source|message" lines of the file's /events.
events_of() { run_events "$1" code source message; }
# wait_for_state STATE: wait (bounded) until status says STATE, using the daemon's wait-free status.
wait_for_state() {
    for _ in $(seq 1 100); do
        [ "$(ctl --json status | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

start_daemon cmds || { not_ok "daemon starts"; finish; }

# --- --help with an example, for every command
for c in run status watch pause resume abort confirm ack wait set events devices check simulate recover; do
    out=$("$BUILD/perfusectl" "$c" --help); rc=$?
    if [ $rc -eq 0 ] && grep -q "^usage: perfusectl" <<<"$out" && grep -q "^example: perfusectl $c" <<<"$out"; then
        ok "$c --help has a usage line and an example"
    else
        not_ok "$c --help ($rc): $out"
    fi
done

# --- limits: an alarm-only limit, then a pause limit; ack; pause/resume with reasons
cat >"$T/lim.yaml" <<'P'
perfuse: 1
name: limits and commands
rig: sim
safe_state: {pump1: 0 uL/min}
limits:
  - {channel: chip1.pressure, max: 30 mbar, action: alarm}
  - {channel: chip1.pressure, max: 60 mbar, for: 1 s, action: pause}
steps:
  - {name: low, set: {pump1: 5 uL/min}, for: 2 s}
  - {name: high, set: {pump1: 50 uL/min}, for: 20 s}
  - {name: ask, prompt: Check the chip}
P
out=$(ctl run "$T/lim.yaml" --operator "Dana Q")
file=$(sed -n 's/^file //p' <<<"$out")
check "run with --operator starts" test -n "$file"
check "the pause limit pauses the run" wait_for_state paused
st=$(ctl --json status)
check "status lists the alarms with ids" "$PYTHON" -c "
import json,sys; s=json.loads(sys.argv[1]); codes=sorted(a['code'] for a in s['alarms'])
sys.exit(0 if codes == ['limit_max'] * 2 and all(a['state'] == 'active' for a in s['alarms']) else 1)" "$st"
ctl ack 999 >/dev/null 2>"$T/ackerr"; rc=$?
check "ack of an unknown alarm is refused (exit $rc)" sh -c "[ $rc -eq 1 ] && grep -q 'no alarm 999 is listed' '$T/ackerr'"
ctl ack >/dev/null 2>&1; rc=$?
check "ack without an id is a usage error (exit $rc)" test "$rc" -eq 2
first=$("$PYTHON" -c "import json,sys; print(json.loads(sys.argv[1])['alarms'][0]['id'])" "$st")
out=$(ctl --json ack "$first")
check "ack ID --json acknowledges one" "$PYTHON" -c "import json,sys; sys.exit(0 if json.loads(sys.argv[1])['acknowledged'] == 1 else 1)" "$out"
ctl set pump1 0 uL/min >/dev/null
check "set while paused is allowed" test $? -eq 0
ctl set pump1 5000 uL/min >/dev/null 2>&1; rc=$?
check "set beyond the device's limit is refused (exit $rc)" test "$rc" -eq 1
ctl resume >/dev/null
check "resume is accepted" test $? -eq 0
ctl resume >/dev/null 2>&1; rc=$?
check "resume when not paused is refused (exit $rc)" test "$rc" -eq 1
ctl set pump1 5 uL/min >/dev/null 2>&1; rc=$?
check "set while the run runs is refused (exit $rc)" test "$rc" -eq 1
# A client repeating a refused request: a few a second reach the file, the rest are counted.
t0=$(date +%s.%N)
for _ in $(seq 30); do ctl set pump1 5 uL/min >/dev/null 2>&1; done
t1=$(date +%s.%N)
sleep 1.1       # into the next second of the limit: the time is what is under test
ctl set pump1 6 uL/min >/dev/null 2>&1
ctl pause --reason "bubble in line 2" >/dev/null
check "pause with a reason" wait_for_state paused
ctl confirm >/dev/null 2>&1; rc=$?
check "confirm with no prompt pending is refused (exit $rc)" test "$rc" -eq 1
ctl resume >/dev/null
ctl ack all >/dev/null
check "ack all is accepted" test $? -eq 0
ctl abort --reason "end of test" >/dev/null
ctl wait >/dev/null
ev=$(events_of "$file")
check "the operator is in the file" grep -q "^run_requested|control|.*operator Dana Q" <<<"$ev"
check "the alarm limit raised an alarm" grep -q "^alarm_raised|chip1.pressure|alarm [0-9]* limit_max: .*above its max 30 mbar (protocol limit, line 6, action alarm)" <<<"$ev"
check "the pause limit paused the run, naming the limit" grep -q "^paused|runner|run paused: chip1.pressure .* above its max 60 mbar for 1 s (protocol limit, line 7, action pause)" <<<"$ev"
check "the acknowledgement is recorded with the user" grep -q "^alarm_acked|chip1.pressure|alarm $first limit_max acknowledged by uid [0-9]* (" <<<"$ev"
check "pause by the operator is recorded with user and reason" grep -q "^cmd_pause|control|pause by uid [0-9]* (.*): ok" <<<"$ev"
check "the refused resume is recorded as refused" grep -q "^cmd_resume|control|resume by uid .*: refused" <<<"$ev"
check "the manual set is recorded" grep -q "^cmd_set|control|manual set pump1.flow = 0 uL/min by uid" <<<"$ev"
check "the refused ack is recorded with user and why" grep -q "^cmd_ack|control|ack 999 by uid [0-9]* (.*): refused: no alarm 999 is listed" <<<"$ev"
check "the refused set beyond the limit is recorded" grep -q "^cmd_set|control|set pump1 5000 uL/min by uid .*: refused: 5000 uL/min is outside the limits of pump1.flow" <<<"$ev"
check "the refused set while running is recorded" grep -q "^cmd_set|control|set pump1 5 uL/min by uid .*: refused: a run is active: pause it first" <<<"$ev"
n=$(grep -c "^cmd_set|control|set pump1 5 uL/min by uid .*: refused" <<<"$ev")
# At most 5 a second reach the file: over the loop's seconds (its length depends
# on the machine's load), and the one refused just before it.
most=$("$PYTHON" -c "import math,sys; print(5 * (math.ceil(float(sys.argv[2]) - float(sys.argv[1])) + 1) + 1)" "$t0" "$t1")
check "31 refused sets are not 31 events ($n recorded; at most 5 a second: $most)" sh -c "[ $n -ge 1 ] && [ $n -le $most ] && [ $n -lt 31 ]"
# The first refusal recorded in a later second counts those held back (on a
# slow machine the 30 sets span several seconds, so it may be one of them).
check "the next refusal recorded counts those held back" grep -qE "^cmd_set\|control\|set pump1 [56] uL/min by uid .*: refused: .*\([1-9][0-9]* more refusals not recorded before this\)" <<<"$ev"
check "the refused confirm is recorded" grep -q "^cmd_confirm|control|confirm by uid .*: refused: no prompt is waiting" <<<"$ev"
check "the abort is recorded with its reason" grep -q "^cmd_abort|control|abort by uid .*: end of test" <<<"$ev"

# --- a safe-stop limit ends the run and applies the safe state
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
file=$(ctl run "$T/stop.yaml" | sed -n 's/^file //p')
res=$(ctl --json wait)
check "a safe-stop limit ends the run as faulted" grep -q '"state": "faulted"' <<<"$res"
ev=$(events_of "$file")
check "the safe state is applied" grep -q "^safe_state|" <<<"$ev"
check "the run's end names the limit" grep -q "^run_faulted|runner|.*above its max 60 mbar (protocol limit, line 6, action safe-stop)" <<<"$ev"
last=$(timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, series
t, v = series(open_run('$file'), 'setpoints', 'pump1.flow'); print(v[-1])")
check "pump1's last setpoint is 0 (got $last)" test "$last" = 0.0
# The safe-stop holds pump1 until its alarm is acknowledged and the pressure is back.
for _ in $(seq 1 100); do
    ctl ack all >/dev/null 2>&1
    ctl --json status | grep -q '"alarms": \[\]' && break
    sleep 0.1
done

# --- a run requested the moment the last one ended starts once that file is closed
cat >"$T/short.yaml" <<'P'
perfuse: 1
name: back to back
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {name: hold, set: {pump1: 5 uL/min}, for: 10 min}
P
first=$(ctl run "$T/short.yaml" | sed -n 's/^file //p')
ctl abort --reason "next run" >/dev/null
out=$(ctl run "$T/short.yaml" 2>&1); rc=$?
second=$(sed -n 's/^file //p' <<<"$out")
check "run right after an abort is accepted (exit $rc)" sh -c "[ $rc -eq 0 ] && [ -n '$second' ] && [ '$second' != '$first' ]"
check "the aborted run's file was closed whole first" timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run('$first'); sys.exit(0 if text(f.attrs['state']) == 'aborted' else 1)"
ctl abort >/dev/null; ctl wait >/dev/null

# --- devices and watch
out=$(ctl --json devices)
check "devices --json lists buses and devices with their state" "$PYTHON" -c "
import json,sys; d=json.loads(sys.argv[1])
names=[x['name'] for x in d['devices']]; states={x['state'] for x in d['devices']}
sys.exit(0 if len(d['buses']) == 5 and 'pump1' in names and states <= {'ok','faulted'} else 1)" "$out"
out=$(ctl devices)
check "devices for people shows each device's state" grep -qE "^  pump1 +newera +on pumps +ok" <<<"$out"
out=$(timeout 4 "$BUILD/perfusectl" --socket "$SOCK" watch --interval 1)
n=$(grep -cE "^20[0-9-]*T.* (idle|faulted|completed|aborted)" <<<"$out")
check "watch on a pipe prints a plain line per refresh ($n lines)" test "$n" -ge 3
out=$(timeout 3 "$BUILD/perfusectl" --socket "$SOCK" --json watch --interval 0.5)
check "watch --json prints one JSON status per line" "$PYTHON" -c "
import json,sys; lines=[json.loads(l) for l in sys.argv[1].splitlines()]
sys.exit(0 if len(lines) >= 4 and all('channels' in l for l in lines) else 1)" "$out"
ctl watch --interval 0.01 >/dev/null 2>&1; rc=$?
check "watch with a silly interval is a usage error (exit $rc)" test "$rc" -eq 2

# --- --json on every command gives JSON: first those that need no run, then a
# run's commands in turn (a prompt, so that confirm has something to answer)
is_json() { "$PYTHON" -c "import json,sys; json.loads(sys.argv[1])" "$1"; }
for c in status devices events "ack all" "set pump2 0 uL/min" "check protocols/demo.yaml"; do
    out=$(ctl --json $c 2>&1)
    check "--json $c prints JSON" is_json "$out"
done
cat >"$T/ask.yaml" <<'P'
perfuse: 1
name: json
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {name: ask, prompt: Ready?}
  - {name: flow, set: {pump1: 5 uL/min}, for: 30 s}
P
out=$(ctl --json run "$T/ask.yaml")
check "--json run prints JSON with the run's file" "$PYTHON" -c "import json,sys; sys.exit(0 if json.loads(sys.argv[1])['file'] else 1)" "$out"
for _ in $(seq 1 100); do ctl --json status | grep -q '"prompt": "Ready?"' && break; sleep 0.1; done
for c in confirm pause resume "abort --reason json" wait; do
    out=$(ctl --json $c 2>&1)
    check "--json $c prints JSON" is_json "$out"
done
out=$("$BUILD/perfusectl" --json simulate protocols/demo.yaml -o "$T/sim.h5")
check "--json simulate prints JSON" is_json "$out"
out=$("$BUILD/perfusectl" --json recover "$T/sim.h5")
check "--json recover prints JSON" is_json "$out"

# --- a second daemon: same socket, then same serial ports
"$BUILD/perfused" --sim --socket "$SOCK" --data-dir "$T/other" 2>"$T/second.log"; rc=$?
check "a second daemon on the same socket refuses to start (exit $rc)" test "$rc" -ne 0
check "  and says why" grep -q "another perfused is already running on $SOCK" "$T/second.log"
start_sim sim --rig-out "$T/simrig.yaml" || { not_ok "perfuse-sim starts"; finish; }
mkdir -p "$T/rundir"
"$BUILD/perfused" --rig "$T/simrig.yaml" --socket "$T/rundir/perfuse/a.sock" --data-dir "$T/a" 2>"$T/a.log" &
A=$!; PIDS="$PIDS $A"
timeout 10 sh -c "until [ -S '$T/rundir/perfuse/a.sock' ]; do sleep 0.1; done"
check "the socket is created with mode 0660" test "$(stat -c %a "$T/rundir/perfuse/a.sock")" = 660
check "inside a directory the daemon made with mode 0755 (viewers may enter, nobody else write)" test "$(stat -c %a "$T/rundir/perfuse")" = 755
timeout 10 "$BUILD/perfused" --rig "$T/simrig.yaml" --socket "$T/b.sock" --data-dir "$T/b" 2>"$T/b.log"; rc=$?
check "a second daemon on the same serial ports refuses to start (exit $rc)" test "$rc" -ne 0
check "  and names the port" grep -q "pumps.tty is held by another process" "$T/b.log"
kill -TERM "$A"; wait "$A"
finish
