# The regulation suite, shared by tests/e2e/regulation_ob1.sh (the OB1-style
# driver) and tests/e2e/regulation_modbus.sh (the Modbus pressure-controller
# profile). The caller sets REG (the regulator), MEAS (its measured channel),
# ACT (its actuator), ACT_READ (the channel reading the controller's own
# pressure), FDEV (the perfuse-sim device that takes the plant's faults), KP
# and KI (its gains in the rig), then sources this file after common.sh.
#
# A protocol sets, ramps and waves MEAS; a pause holds the output and the
# resume is bumpless; an inverted plant is safed and ends the run (on_fault:
# abort); an empty reservoir loses the setpoint and a clog saturates the
# output (on_fault: pause); a NaN reading holds the output; /regulators is
# checked with h5py.
"$BUILD/perfuse-sim" --rig-out "$T/rig0.yaml" >"$T/sim.json" 2>"$T/sim.log" &
PIDS="$PIDS $!"
timeout 10 sh -c "until [ -s '$T/sim.json' ]; do sleep 0.1; done"
SIMCTL=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['control'])" "$T/sim.json")
# Short fault timers, so that the suite stays short.
sed -e 's/saturated_for: 10 s/saturated_for: 2 s/' -e 's/for: 30 s}/for: 6 s}/' "$T/rig0.yaml" >"$T/rig.yaml"

mkdir -p "$T/a"
rm -f "$T/ready"; mkfifo "$T/ready"
"$BUILD/perfused" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" --ready-fd 3 \
    3>"$T/ready" 2>"$T/a/perfused.log" &
DAEMON_PID=$!; PIDS="$PIDS $DAEMON_PID"; SOCK="$T/sock"
timeout 20 sh -c "read -r line <'$T/ready'" || { not_ok "daemon starts"; finish; }

# reg KEY: a field of regulator $REG from status --json.
reg() {
    ctl --json status | "$PYTHON" -c "
import json,sys
g=[g for g in json.load(sys.stdin).get('regulators', []) if g['name']==sys.argv[2]][0]
print(g.get(sys.argv[1]))" "$1" "$REG"
}
# in_tol: $REG regulates and is within its tolerance.
in_tol() { [ "$(reg in_tolerance)" = True ]; }
# run_state_is STATE
run_state_is() { ctl --json status | grep -q "\"state\": \"$1\""; }
# status_has TEXT
status_has() { ctl --json status | grep -q "$1"; }
# vented: the controller's measured pressure reads below 5 mbar.
vented() {
    ctl --json status | "$PYTHON" -c "
import json,sys
c=[c for c in json.load(sys.stdin)['channels'] if c['name']==sys.argv[1]][0]
sys.exit(0 if c['value'] is not None and c['value'] < 5 else 1)" "$ACT_READ"
}
# wait_for COMMAND...: up to 10 s.
wait_for() { for _ in $(seq 1 100); do "$@" && return 0; sleep 0.1; done; return 1; }
near() { "$PYTHON" -c "import sys; a,b,t=map(float,sys.argv[1:]); sys.exit(0 if abs(a-b)<=t else 1)" "$@"; }

check "check refuses a setpoint beyond the regulator's reach" sh -c "
printf 'perfuse: 1\nname: too much\nsteps:\n  - {set: {$MEAS: 950 uL/min}, for: 1 s}\n' >'$T/bad.yaml'
! '$BUILD/perfusectl' check '$T/bad.yaml' --rig '$T/rig.yaml' 2>&1 | grep -q . ||
  '$BUILD/perfusectl' check '$T/bad.yaml' --rig '$T/rig.yaml' 2>&1 | grep -q \"outside what regulator '$REG' can reach\""

if [ "${TUNE:-0}" = 1 ]; then
    # The relay autotune on the live rig, idle: a rig snippet; the rig file stays as it was.
    sum0=$(sha256sum <"$T/rig.yaml")
    ctl tune "$REG" >"$T/tune.txt" 2>&1
    check "tune: the relay test prints the plant and a rig entry" \
        grep -q "^  - {name: $REG, measure: $MEAS, actuator: $ACT, kp: " "$T/tune.txt"
    check "tune: the plant's gain is identified" grep -q "^plant: gain 0\.[0-9]* uL/min per mbar" "$T/tune.txt"
    check "tune: the rig file is not changed" test "$(sha256sum <"$T/rig.yaml")" = "$sum0"
    sed 's/^/# /' "$T/tune.txt"
fi

cat >"$T/p.yaml" <<P
perfuse: 1
name: regulated chip3
on_fault: pause
safe_state: {$ACT: 0 mbar}
steps:
  - {name: hold, set: {$MEAS: 100 uL/min}, for: 5 s}
  - {name: ramp, ramp: {$MEAS: [100 uL/min, 60 uL/min]}, over: 3 s}
  - {name: wave, waveform: {$MEAS: {shape: sine, mean: 60 uL/min, amplitude: 10 uL/min, period: 4 s}}, for: 4 s}
  - {name: last, set: {$MEAS: 30 uL/min}, for: 3 s}
P
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
check "the regulated run starts" test -n "$file"
check "status shows $REG regulating 100 uL/min, in tolerance" wait_for in_tol
check "status: $REG in auto at 100 uL/min" test "$(reg mode) $(reg setpoint)" = "auto 100.0"
ctl status | grep -q "^  $REG .*setpoint 100.000 uL/min" && ok "status prints the regulator's line" \
    || not_ok "status prints the regulator's line"
ctl tune "$REG" >"$T/tune_busy.txt" 2>&1
check "tune is refused while the run regulates" grep -q "pause it first" "$T/tune_busy.txt"
ctl pause >/dev/null
out1=$(reg output); sleep 1; out2=$(reg output)
check "paused: the regulator holds its output ($out1 -> $out2 mbar)" test "$(reg mode)" = hold -a "$out1" = "$out2"
if [ "${TUNE_PAUSED:-0}" = 1 ]; then
    # A relay test in the paused run gives the actuator back where it was held.
    ctl tune "$REG" >"$T/tune_paused.txt" 2>&1
    check "tune in a paused run prints a rig entry" grep -q "^  - {name: $REG, " "$T/tune_paused.txt"
    check "after the test the output is back where it was held" near "$(reg output)" "$out2" 0.5
    # The actuator set by hand: manual; the resume takes it back to auto from there.
    ctl set "$ACT" "$out2 mbar" >/dev/null
    check "a manual set of the actuator puts the regulator in manual" test "$(reg mode)" = manual
fi
ctl resume >/dev/null
if [ "${TUNE_PAUSED:-0}" = 1 ]; then
    check "resume puts it back in auto" test "$(reg mode)" = auto
fi
res=$(ctl --json wait)
check "the regulated run completes" grep -q '"state": "completed"' <<<"$res"

timeout 60 "$PYTHON" - "$file" "$REG" "$MEAS" "$ACT" "$KP" "$KI" <<'PY' >"$T/h5.txt" 2>&1
import sys
import numpy as np
sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run(sys.argv[1])
reg, meas, act, kp, ki = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6])
g = f['regulators/' + reg]
assert text(g.attrs['measure']) == meas and text(g.attrs['actuator']) == act, dict(g.attrs)
assert g.attrs['kp'] == kp and g.attrs['ki'] == ki and text(g.attrs['kp_units']) == 'mbar per uL/min'
for s in ('setpoint', 'measurement', 'output', 'p', 'i', 'd'):
    assert g[s].attrs['NX_class'] in (b'NXlog', 'NXlog'), s
    assert len(g[s]['time']) == len(g[s]['value']) > 100, s
t = g['measurement/time'][:]; y = g['measurement/value'][:]; sp = g['setpoint/value'][:]
ot = g['output/time'][:]; out = g['output/value'][:]
print('series ok', len(t))
# In the last second of the first hold, the flow is within 5 % of 100 uL/min.
ev = {text(e['code']): e['time'] for e in f['events']}
tp, tr = ev['paused'], ev['resumed']
sel = (t > tp - 0.3) & (t < tp)
print('hold mean', y[sel].mean())
assert abs(y[sel].mean() - 100) < 5, y[sel].mean()
# Bumpless: no output step at the resume larger than ordinary ticks.
d = np.abs(np.diff(out))
k = np.searchsorted(ot, tr)
jump = d[max(0, k - 2):k + 3].max()
print('resume jump', jump, 'typical', np.median(d))
assert jump < 10, jump
# The ramp and the wave were followed (rms error below 10 % of the mean setpoint).
rows = [r for r in f['steps']]
st = {text(r['name']): (r['start'], r['end']) for r in rows}
for name, mean in (('ramp', 80.0), ('wave', 60.0)):
    a, b = st[name]
    m = (t > a + 0.5) & (t < b)
    err = np.sqrt(np.mean((y[m] - sp[m]) ** 2))
    print(name, 'rms error', err)
    assert err < 0.1 * mean, (name, err)
print('ok')
PY
check "run file: /regulators/$REG with its gains, series, tracking and a bumpless resume" grep -q "^ok$" "$T/h5.txt"
sed 's/^/# /' "$T/h5.txt"

# Faults. An inverted plant: safed within 5 s, and on_fault: abort ends the run.
sed -e 's/on_fault: pause/on_fault: abort/' -e 's/for: 5 s}/for: 20 s}/' "$T/p.yaml" >"$T/inv.yaml"
file=$(ctl run "$T/inv.yaml" | sed -n 's/^file //p')
wait_for in_tol
sim_cmd "$SIMCTL" "fault inverted:$FDEV" >/dev/null
t0=$(date +%s.%N)
res=$(ctl --json wait)
t1=$(date +%s.%N)
check "inverted plant: the run ends faulted" grep -q '"state": "faulted"' <<<"$res"
check "inverted plant: caught within 5 s ($("$PYTHON" -c "print(round($t1-$t0,2))") s)" \
    "$PYTHON" -c "import sys; sys.exit(0 if $t1 - $t0 < 5 else 1)"
ctl --json status >"$T/st.json"
check "inverted plant: alarm regulation_inverted" grep -q "regulation_inverted" "$T/st.json"
check "inverted plant: $ACT is vented" wait_for vented
sim_cmd "$SIMCTL" "clear $FDEV" >/dev/null
ctl ack all >/dev/null

# An empty reservoir: nothing flows whatever the pressure; the setpoint is lost, on_fault: pause.
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
wait_for in_tol
sim_cmd "$SIMCTL" "fault reservoir-empty:$FDEV" >/dev/null
check "empty reservoir: the run pauses (on_fault)" wait_for run_state_is paused
ctl --json status >"$T/st.json"
check "empty reservoir: regulation_lost or regulation_saturated" grep -q -E "regulation_(lost|saturated)" "$T/st.json"
check "empty reservoir: no inverted alarm" sh -c "! grep -q 'regulation_inverted' '$T/st.json'"
sim_cmd "$SIMCTL" "clear $FDEV" >/dev/null
ctl abort >/dev/null
ctl --json wait >/dev/null
ctl ack all >/dev/null

# A clog at 500 uL/min: the output saturates at 2000 mbar (regulation_saturated), on_fault: pause.
sed -e "s|$MEAS: 100 uL/min}, for: 5 s}|$MEAS: 500 uL/min}, for: 20 s}|" "$T/p.yaml" >"$T/clog.yaml"
file=$(ctl run "$T/clog.yaml" | sed -n 's/^file //p')
wait_for in_tol
sim_cmd "$SIMCTL" "fault clog:$FDEV" >/dev/null
check "clog: the run pauses (on_fault)" wait_for run_state_is paused
ctl --json status >"$T/st.json"
check "clog: regulation_saturated" grep -q "regulation_saturated" "$T/st.json"
check "clog: no inverted alarm" sh -c "! grep -q 'regulation_inverted' '$T/st.json'"
sim_cmd "$SIMCTL" "clear $FDEV" >/dev/null
ctl abort >/dev/null
ctl --json wait >/dev/null
ctl ack all >/dev/null

# A NaN reading: the regulator holds its output and raises regulation_measurement.
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
wait_for in_tol || echo "# not in tolerance before the NaN fault"
sim_cmd "$SIMCTL" "fault nan:$FDEV,for=2s" >/dev/null
check "NaN reading: regulation_measurement" wait_for status_has regulation_measurement
o1=$(reg output); sleep 0.5; o2=$(reg output)
check "NaN reading: the output is held ($o1 -> $o2)" test "$o1" = "$o2"
ctl abort >/dev/null
ctl --json wait >/dev/null

if [ "${TUNE:-0}" = 1 ]; then
    # Offline: perfusectl simulate regulates the same way, and tunes on the simulated chip.
    "$BUILD/perfusectl" simulate "$T/p.yaml" --rig "$T/rig.yaml" -o "$T/sim.h5" >/dev/null 2>&1
    check "simulate: the regulated protocol completes with /regulators/$REG" timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run(sys.argv[1]); g = f['regulators/' + sys.argv[2]]
y = g['measurement/value'][:]; t = g['measurement/time'][:]
sys.exit(0 if text(f.attrs['state']) == 'completed' and abs(y[(t > 4) & (t < 5)].mean() - 100) < 5 else 1)" "$T/sim.h5" "$REG"
    "$BUILD/perfusectl" simulate "$T/inv.yaml" --rig "$T/rig.yaml" -o "$T/siminv.h5" --fault "inverted:$FDEV,at=3s" >/dev/null 2>&1
    check "simulate: an inverted plant raises regulation_inverted and ends the run (on_fault: abort)" \
        timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run(sys.argv[1]); codes = [text(e['message']) for e in f['events']]
ok = text(f.attrs['state']) == 'faulted' and any('regulation_inverted' in c for c in codes)
sys.exit(0 if ok else 1)" "$T/siminv.h5"
    "$BUILD/perfusectl" simulate --tune "$REG" --rig "$T/rig.yaml" >"$T/simtune.txt" 2>&1
    check "simulate --tune prints the plant and a rig entry" \
        grep -q "^  - {name: $REG, measure: $MEAS, actuator: $ACT, kp: " "$T/simtune.txt"
fi
finish
