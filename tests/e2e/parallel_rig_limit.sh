#!/bin/bash
# A rig limit's safe-stop with three runs going stops every run, each to its
# own safe state, and each run's file says which limit; a run's own device
# fault pauses only the runs that use that device.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig0.yaml" --lab-devices --control "$T/sim.sock" || { not_ok "perfuse-sim starts"; finish; }
sed "s|^rig: sim$|rig: sim\nlimits: [{channel: chip2.pressure, max: 60 mbar, action: safe-stop}]|" \
    "$T/rig0.yaml" >"$T/rig.yaml"
start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" ||
    { not_ok "daemon starts"; finish; }

# js EXPR: wait (bounded, 15 s) until EXPR holds for `status --json` as s.
js() {
    for i in $(seq 150); do
        ctl --json status 2>/dev/null | "$PYTHON" -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" && return 0
        sleep 0.1
    done
    return 1
}
mk() {  # NAME CHANNEL STEPS...
    local name=$1 ch=$2
    shift 2
    { printf 'perfuse: 1\nname: %s\nsafe_state: {%s: 0 uL/min}\nsteps:\n' "$name" "$ch"; printf '  - %s\n' "$@"; } >"$T/$name.yaml"
}
mk a pump1 "{name: a1, set: {pump1: 5 uL/min}, for: 60 s}"
mk b hpump1 "{name: b1, set: {hpump1: 20 uL/min}, for: 60 s}"
mk c perist1 "{name: c1, set: {perist1: 100 uL/min}, for: 60 s}"
fa=$(ctl run "$T/a.yaml" | sed -n 's/^file //p')
fb=$(ctl run "$T/b.yaml" | sed -n 's/^file //p')
fc=$(ctl run "$T/c.yaml" | sed -n 's/^file //p')
check "three runs going" js "sorted(r['state'] for r in s['runs']) == ['running'] * 3"

# A fault of the Harvard line's pump pauses run b only (a and c do not use it).
check "inject: the Harvard line goes silent" test "$(sim_cmd "$T/sim.sock" "fault timeout:harvard,for=3s")" = ok
check "a Harvard fault pauses b only" js "{r['name']: r['state'] for r in s['runs']} == {'a': 'running', 'b': 'paused', 'c': 'running'}"

check "  ... and a and c were never paused" "$PYTHON" -c "
import json, subprocess, sys
for n in ('a', 'c'):
    ev = json.loads(subprocess.run([sys.argv[1] + '/perfusectl', '--socket', sys.argv[2], '--json', 'events', '--run', n],
                                   capture_output=True, text=True).stdout)['events']
    assert not [e for e in ev if e['code'] == 'paused'], (n, ev)" "$BUILD" "$SOCK"

# The rig limit: pump2 too fast for chip2 (set by hand; no run holds pump2).
ctl set pump2 50 uL/min >/dev/null
check "the rig limit stops every run" js "sorted(r['state'] for r in s['runs']) == ['faulted'] * 3"
check "  ... each run's actuator goes to its own safe state" \
    js "all({c['name']: c.get('desired') for c in s['channels']}[k] == 0.0 for k in ('pump1.flow', 'hpump1.flow', 'perist1.flow'))"
check "every run's file is closed" js "not [r for r in s['runs'] if r['run_active']]"
check "  ... and each file says why: the rig limit" "$PYTHON" - "$fa" "$fb" "$fc" <<'PY'
import h5py, sys
for p in sys.argv[1:]:
    f = h5py.File(p, "r")
    st = f.attrs["state"]; st = st.decode() if isinstance(st, bytes) else str(st)
    msgs = [e["message"].decode() for e in f["events"]]
    assert st == "faulted", (p, st)
    assert any("chip2.pressure" in m and "rig limit" in m for m in msgs), (p, msgs[-8:])
PY
finish
