#!/bin/bash
# A device that stops answering, through the whole stack: the simulator's
# fault injection makes chip1 silent; the bus marks it faulted (an event), the
# run does what on_fault says, healthy devices on other buses keep sampling,
# and chip1 comes back by itself (a recovered event).
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

# The simulator's control socket, from the ready line perfused logs.
sim_control() {
    sed -n 's/.*"control": "\([^"]*\)".*/\1/p' "$T/$1/perfused.log" | head -1
}
# Poll status (bounded): the control protocol has no push notifications yet.
wait_state() {
    for i in $(seq 200); do
        ctl --json status | grep -q "\"state\": \"$1\"" && return 0
        sleep 0.05
    done
    return 1
}

cat >"$T/pause.yaml" <<'P'
perfuse: 1
name: fault pauses
on_fault: pause
safe_state: {pump1: 0 uL/min}
steps:
  - {set: {pump1: 10 uL/min}, for: 8 s}
P
start_daemon faults || { not_ok "daemon starts"; finish; }
ctl_path=$(sim_control faults)
check "the simulator's control socket is known ($ctl_path)" test -S "$ctl_path"
file=$(ctl run "$T/pause.yaml" | sed -n 's/^file //p')
sleep 1   # let the run record a healthy second first (time, not synchronisation)
check "inject: chip1 goes silent for 2 s" test "$(sim_cmd "$ctl_path" "fault timeout:chip1,for=2s")" = ok
check "on_fault: pause pauses the run" wait_state paused
sleep 2.5  # the fault lasts 2 s; the bus re-probes chip1 within its back-off
ctl resume >/dev/null && ok "the operator resumes" || not_ok "the operator resumes"
res=$(ctl --json wait)
check "the run completes after the fault" grep -q '"state": "completed"' <<<"$res"
"$PYTHON" - "$file" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
f = open_run(sys.argv[1])
ev = f["events"][:]
codes = [text(e["code"]) for e in ev]
src = {text(e["code"]): text(e["source"]) for e in ev}
fails = 0
def expect(c, w):
    global fails
    print(("ok - " if c else "not ok - ") + w)
    fails += not c
expect("device_faulted" in codes and src.get("device_faulted") == "chip1", "a device_faulted event names chip1")
expect("device_recovered" in codes, "chip1 recovered by itself (device_recovered event)")
expect(codes.index("device_faulted") < codes.index("paused") < codes.index("device_recovered"),
       "the run paused on the fault, before the recovery")
tf = ev["time"][codes.index("device_faulted")]
tr = ev["time"][codes.index("device_recovered")]
t, v = series(f, "channels", "chip1.pressure")
# The probe that succeeds is stamped just before the recovered event: leave it out.
gap = v[(t > tf) & (t < tr - 0.01)]
expect(len(gap) == 0 or bool(np.all(np.isnan(gap))), f"no pressure value was invented while chip1 was silent ({len(gap)} failed reads recorded as NaN)")
tq, q = series(f, "channels", "pump1.flow")
n = ((tq > tf) & (tq < tr)).sum()
want = (tr - tf) * 2.0          # pump1.flow is sampled at 2 Hz
expect(abs(n - want) <= 1.5, f"pump1 on another bus kept its 2 Hz through the fault ({n} samples in {tr - tf:.2f} s)")
sys.exit(1 if fails else 0)
PY
check "the file records the fault and the recovery (see above)" test $? -eq 0

cat >"$T/abort.yaml" <<'P'
perfuse: 1
name: fault stops
on_fault: abort
safe_state: {pump1: 0 uL/min}
steps:
  - {set: {pump1: 10 uL/min}, for: 30 s}
P
file=$(ctl run "$T/abort.yaml" | sed -n 's/^file //p')
sim_cmd "$ctl_path" "fault timeout:chip2" >/dev/null
res=$(ctl --json wait)
check "on_fault: abort stops the run" grep -q '"state": "faulted"' <<<"$res"
codes=$("$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run('$file'); print(' '.join(text(c) for c in f['events']['code'])); print(text(f.attrs['state']))")
check "the file records run_faulted" grep -qw run_faulted <<<"$codes"
check "the file records the safe state" grep -qw safe_state <<<"$codes"
check "the file's state says the run faulted" test "$(tail -n 1 <<<"$codes")" = faulted
sim_cmd "$ctl_path" "clear all" >/dev/null

# perfusectl abort: the run stops, the safe state is applied, and who asked is recorded.
file=$(ctl run "$T/abort.yaml" | sed -n 's/^file //p')
out=$(ctl --json abort --reason "chip leaking"); rc=$?
check "abort is accepted (exit $rc)" grep -q '"state": "aborted"' <<<"$out"
ctl --json wait >/dev/null
ev=$("$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run('$file')
print(text(f.attrs['state']))
for e in f['events'][:]: print(text(e['code']), text(e['message']))")
check "the file's state is aborted" grep -q "^aborted$" <<<"$ev"
check "the abort is recorded with the user and the reason" grep -q "^cmd_abort abort by uid [0-9]* ([a-z0-9_-]*): chip leaking" <<<"$ev"
check "the safe state is applied on abort" grep -q "^safe_state" <<<"$ev"
ctl abort >/dev/null 2>&1; rc=$?
check "abort with no run active is refused (exit $rc)" test "$rc" -eq 1

# perfusectl set: manual control, with its refusals.
refused() { [ "$1" -eq 1 ] && grep -qF -- "$3" <<<"$2"; }
out=$(ctl set pump1 12 uL/min); rc=$?
check "set pump1 12 uL/min with no run ($out)" test "$rc" -eq 0
flow=""
for i in $(seq 100); do   # the pump's read-back follows at 2 Hz: poll status, bounded
    flow=$(ctl --json status | "$PYTHON" -c "import json,sys; print([c.get('value') for c in json.load(sys.stdin)['channels'] if c['name']=='pump1.flow'][0])")
    [ "$flow" = "12.0" ] && break
    sleep 0.05
done
check "the pump delivers what was set (read back: $flow)" test "$flow" = "12.0"
out=$(ctl set chip1.pressure 5 mbar 2>&1); rc=$?
check "setting a measurement is refused ($out)" refused "$rc" "$out" "is a measurement"
out=$(ctl set pump1 5000 uL/min 2>&1); rc=$?
check "a value beyond the device's limit is refused, naming it ($out)" refused "$rc" "$out" "outside the limits of pump1.flow (-1000 to 1000 uL/min)"
out=$(ctl set pump1 10 ul/mn 2>&1); rc=$?
check "a wrong unit is refused ($out)" refused "$rc" "$out" "did you mean 'uL/min'"
file=$(ctl run "$T/abort.yaml" | sed -n 's/^file //p')
out=$(ctl set pump1 3 uL/min 2>&1); rc=$?
check "set is refused while a run is active ($out)" refused "$rc" "$out" "pause it first"
ctl pause >/dev/null
out=$(ctl set pump1 3 uL/min); rc=$?
check "set is allowed while the run is paused" test "$rc" -eq 0
ctl abort --reason done >/dev/null; ctl wait >/dev/null
ev=$("$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, series, text
f = open_run('$file')
for e in f['events'][:]: print(text(e['code']), text(e['message']))
t, v = series(f, 'setpoints', 'pump1.flow'); print('setpoints', list(v))")
check "the manual set is in the run file with its user" grep -q "^cmd_set manual set pump1.flow = 3 uL/min by uid" <<<"$ev"
check "and in /setpoints" grep -q "setpoints .*3.0" <<<"$ev"
evs=$(ctl events)
check "perfusectl events lists the run's events" grep -q "cmd_set .*manual set pump1.flow = 3 uL/min" <<<"$evs"
n_all=$(ctl --json events | grep -c '"code"'); n_late=$(ctl --json events --since 1000000 | grep -c '"code"')
check "events --since filters by run time ($n_all, then $n_late)" sh -c "[ $n_all -gt 3 ] && [ $n_late -eq 0 ]"
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 15
finish
