#!/bin/bash
# The Reglo ICC peristaltic pump through the whole stack: perfuse-sim serves a
# 4-channel pump on its own pty (--lab-devices), perfused drives two channels
# of its head (perist1 on channel 1, perist2 on channel 2, counter-clockwise
# forward) as independent devices on one line. A protocol sets both; the run
# file must hold what the simulator saw on the wire. Then wire faults on the
# reglo line: the daemon survives, the faults and recoveries are events, and
# the channels resume by themselves.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig.yaml" --lab-devices --trace "$T/trace" || { not_ok "perfuse-sim starts"; finish; }
CTL=$SIM_CTL
check "the simulator's control socket is known ($CTL)" test -S "$CTL"
check "the rig lists the reglo line and both channels" \
    sh -c "grep -q 'name: reglo, type: serial' '$T/rig.yaml' && grep -q 'name: perist2, driver: reglo' '$T/rig.yaml'"

start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" || { not_ok "daemon starts"; finish; }

# flow DEV: the value status reports for DEV.flow ("None" while it has none).
flow() {
    ctl --json status | "$PYTHON" -c "import json,sys; print([c.get('value') for c in json.load(sys.stdin)['channels'] if c['name']=='$1.flow'][0])"
}
# wait_flow DEV VALUE: until DEV.flow reads VALUE (bounded, 10 s).
wait_flow() {
    for i in $(seq 100); do
        [ "$(flow "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# wait_event CODE SOURCE N: until the current run has N events CODE from SOURCE (bounded, 15 s).
wait_event() {
    for i in $(seq 150); do
        [ "$(ctl --json events 2>/dev/null | "$PYTHON" -c "import json,sys
print(sum(e['code'] == sys.argv[1] and e['source'] == sys.argv[2] for e in json.load(sys.stdin)['events']))" "$1" "$2")" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}

cat >"$T/two.yaml" <<'P'
perfuse: 1
name: two channels of one head
rig: sim
safe_state: {perist1: 0 uL/min, perist2: 0 uL/min}
steps:
  - {name: both, set: {perist1: 1000 uL/min, perist2: 500 uL/min}, for: 3 s}
  - {name: reverse, set: {perist1: 0 uL/min, perist2: -250 uL/min}, for: 3 s}
P
file=$(ctl run "$T/two.yaml" | sed -n 's/^file //p')
res=$(ctl --json wait)
check "the protocol completes" grep -q '"state": "completed"' <<<"$res"

# What the simulator saw on the wire ("reglo COMMAND REPLY").
tr() { grep -q "^reglo $1\$" "$T/trace"; }
check "channel addressing is switched on at the pump's address" tr "1~1 \*"
check "both channels are put in flow-rate mode" sh -c "grep -q '^reglo 1M \*$' '$T/trace' && grep -q '^reglo 2M \*$' '$T/trace'"
check "perist1: 1 mL/min in volume type 2, the pump answers the rate it set" tr "1f1000+0 1000E+0"
check "perist2: forward is counter-clockwise" tr "2K \*"
check "perist2: 0.5 mL/min" tr "2f5000-1 5000E-1"
check "perist2: -250 uL/min turns it clockwise at 0.25 mL/min" \
    sh -c "grep -q '^reglo 2J \*$' '$T/trace' && grep -q '^reglo 2f2500-1 2500E-1$' '$T/trace'"
check "perist1: 0 stops channel 1" tr "1I \*"
check "the safe state stops channel 2 at the end" sh -c "grep '^reglo ' '$T/trace' | tail -n 40 | grep -q '^reglo 2I \\*$'"

"$PYTHON" - "$file" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
f = open_run(sys.argv[1])
fails = 0
def expect(c, w):
    global fails
    print(("ok - " if c else "not ok - ") + w)
    fails += not c
steps = {text(e["code"]): e["time"] for e in f["events"][:]}
t1, s1 = series(f, "setpoints", "perist1.flow")
t2, s2 = series(f, "setpoints", "perist2.flow")
expect(list(s1[:2]) == [1000.0, 0.0], f"perist1 setpoints recorded: {list(s1)}")
expect(list(s2[:2]) == [500.0, -250.0], f"perist2 setpoints recorded: {list(s2)}")
tv1, v1 = series(f, "channels", "perist1.flow")
tv2, v2 = series(f, "channels", "perist2.flow")
sw = t2[1]                      # the second step begins
def vals(t, v, a, b):
    m = (t > a) & (t < b) & ~np.isnan(v)
    return set(np.round(v[m], 6))
expect(vals(tv1, v1, t1[0] + 0.6, sw) == {1000.0}, f"perist1 read back 1000 uL/min in step 1: {vals(tv1, v1, t1[0] + 0.6, sw)}")
expect(vals(tv2, v2, t2[0] + 0.6, sw) == {500.0}, f"perist2 read back 500 uL/min in step 1: {vals(tv2, v2, t2[0] + 0.6, sw)}")
expect(vals(tv1, v1, sw + 0.6, sw + 2.9) == {0.0}, f"perist1 read back 0 once stopped: {vals(tv1, v1, sw + 0.6, sw + 2.9)}")
expect(vals(tv2, v2, sw + 0.6, sw + 2.9) == {-250.0}, f"perist2 read back -250 uL/min, independent of channel 1: {vals(tv2, v2, sw + 0.6, sw + 2.9)}")
expect(set(np.round(v1[~np.isnan(v1)], 6)) <= {0.0, 1000.0} and set(np.round(v2[~np.isnan(v2)], 6)) <= {0.0, 500.0, -250.0},
       "no value the pump did not deliver was recorded")
sys.exit(1 if fails else 0)
PY
check "the run file matches the wire (see above)" test $? -eq 0

# Wire faults on the reglo line during a run that carries on through them.
cat >"$T/long.yaml" <<'P'
perfuse: 1
name: reglo faults
rig: sim
on_fault: continue
safe_state: {perist1: 0 uL/min, perist2: 0 uL/min}
steps:
  - {name: pump, set: {perist1: 300 uL/min, perist2: 200 uL/min}, for: 5 min}
P
file=$(ctl run "$T/long.yaml" | sed -n 's/^file //p')
check "perist1 delivers 300 uL/min" wait_flow perist1 300.0
# What each fault looks like from the daemon: a silent or garbled line faults the
# device; the pump refusing every command is an error on its channel; a line
# that goes away is the link going down. Each must end by itself once cleared.
fault_round() {
    kind=$1 down=$2 up=$3 src=$4 n=$5
    check "inject $kind on the reglo line" test "$(sim_cmd "$CTL" "fault $kind:reglo")" = ok
    check "$kind: $down from $src (event $n)" wait_event "$down" "$src" "$n"
    check "clear reglo" test "$(sim_cmd "$CTL" "clear reglo")" = ok
    check "$kind: $up from $src, by itself" wait_event "$up" "$src" "$n"
    check "$kind: the daemon is alive" kill -0 "$DAEMON_PID"
    check "$kind: perist1 delivers 300 uL/min again" wait_flow perist1 300.0
    check "$kind: perist2 delivers 200 uL/min again" wait_flow perist2 200.0
}
fault_round timeout device_faulted device_recovered perist1 1
fault_round garbage device_faulted device_recovered perist1 2
fault_round exception device_error device_error_cleared perist1.flow 1
fault_round disconnect link_down link_up reglo 1
n_stop=$(grep -c "^reglo [12]I \\*$" "$T/trace")
ctl abort --reason done >/dev/null; ctl wait >/dev/null
check "the abort sends a stop to both channels" test "$(grep -c "^reglo [12]I \\*$" "$T/trace")" -ge $((n_stop + 2))
ev=$("$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run('$file')
for e in f['events'][:]: print(text(e['code']), text(e['source']), text(e['message']))")
check "the file has the faults and recoveries of perist1" \
    sh -c "[ \$(grep -c '^device_faulted perist1 ' <<'E'
$ev
E
) -ge 2 ] && [ \$(grep -c '^device_recovered perist1 ' <<'E'
$ev
E
) -ge 2 ]"
check "a silent line names the device and the command" grep -q "^device_faulted perist[12] perist[12]: no reply to '[12]E' within" <<<"$ev"
check "a garbled reply names the device and the command" grep -q "^device_faulted perist[12] perist[12]: garbled reply to '[12]" <<<"$ev"
check "a refusal is reported as the pump's" grep -q "^device_error perist1.flow perist1: pump refused '1E' (#: not executed)" <<<"$ev"
check "the lost line is in the file" grep -q "^link_down reglo " <<<"$ev"
check "after the abort perist1 reads 0" wait_flow perist1 0.0
check "and perist2 reads 0" wait_flow perist2 0.0
check "the safe state stopped both channels on the wire" \
    sh -c "grep '^reglo 1E ' '$T/trace' | tail -n 1 | grep -q ' -$' && grep '^reglo 2E ' '$T/trace' | tail -n 1 | grep -q ' -$'"
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 15
finish
