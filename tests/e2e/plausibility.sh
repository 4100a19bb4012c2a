#!/bin/bash
# Sensors that cannot be believed, on the simulator: NaN, out of physical
# range, stuck, lost. Each is a fault of the channel with its own alarm that
# clears when the sensor reads plausibly again; none is taken as a value: a
# safe-stop limit (min and max) does not trip, a wait_until does not fire, and
# the run file holds NaN, not the implausible number.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig0.yaml" --control "$T/sim.sock" || { not_ok "perfuse-sim starts"; finish; }
# chip1: stuck after 2 s of identical readings, lost after 1 s without a valid one.
sed 's/^\(  - {name: chip1, .*\)}$/\1, stuck_after: 2 s, lost_after: 1 s}/' "$T/rig0.yaml" >"$T/rig.yaml"
check "the rig sets chip1's stuck and lost times" grep -q "stuck_after: 2 s, lost_after: 1 s" "$T/rig.yaml"
start_perfused "$T/plaus" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" || { not_ok "daemon starts"; finish; }

cat >"$T/p.yaml" <<'P'
perfuse: 1
name: implausible sensors
rig: sim
safe_state: {pump1: 0 uL/min}
limits:
  - {channel: chip1.pressure, min: 1 mbar, max: 500 mbar, action: safe-stop}
steps:
  - {name: flow, set: {pump1: 10 uL/min}, for: 2 s}
  - {name: wait for 1 bar, wait_until: chip1.pressure >= 1000 mbar, timeout: 14 s, on_timeout: continue}
  - {name: review, prompt: Acknowledge the sensor alarms}
  - {name: after, set: {pump1: 10 uL/min}, for: 1 s}
P
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
check "run started" test -n "$file"
for f in nan:chip1,at=2500ms,for=3s range:chip1,at=6500ms,for=2s stuck:chip1,at=9500ms,for=4s; do
    check "inject $f" test "$(sim_cmd "$T/sim.sock" "fault $f")" = ok
done
# The prompt comes once every fault is over; poll status for it (bounded).
for _ in $(seq 1 300); do
    ctl --json status | grep -q '"prompt": "Acknowledge' && break
    sleep 0.1
done
out=$(ctl --json status)
n=$("$PYTHON" -c "import json,sys; print(len(json.loads(sys.argv[1])['alarms']))" "$out")
echo "$out" | "$PYTHON" -c "import json,sys; [print(a['code'], a['source'], a['state'], a['message'][:80]) for a in json.load(sys.stdin)['alarms']]"
check "the cleared alarms stay listed until acknowledged ($n listed)" test "$n" -eq 4
ctl ack all >/dev/null
out=$(ctl status)
check "status shows the prompt with its id" grep -q "^PROMPT    \[3\] Acknowledge the sensor alarms   (answer with: perfusectl confirm 3)" <<<"$out"
ctl confirm 9 2>"$T/conf.err" >/dev/null; rc=$?
check "confirm with another prompt's id is refused (exit $rc)" sh -c "[ $rc -eq 1 ] && grep -q 'the prompt waiting is 3' '$T/conf.err'"
ctl confirm 3 >/dev/null
check "confirm with the prompt's id answers it" test $? -eq 0
res=$(ctl --json wait)
check "the run completes: no limit tripped on an implausible value" grep -q '"state": "completed"' <<<"$res"
check "no alarm is listed after the acknowledgement" "$PYTHON" -c "import json,sys; sys.exit(len(json.loads(sys.argv[1])['alarms']))" "$res"

timeout 60 "$PYTHON" - "$file" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
f = open_run(sys.argv[1])
ev = [(float(e["time"]), text(e["code"]), text(e["source"]), text(e["message"])) for e in f["events"]]
bad = 0
def need(cond, what):
    global bad
    print(("ok - " if cond else "not ok - ") + what)
    bad += not cond
def first(code, kind):
    return next((t for t, c, s, m in ev if c == code and s == "chip1.pressure" and f"sensor_{kind}" in m), None)
for kind in ("nan", "lost", "range", "stuck"):
    r, c = first("alarm_raised", kind), first("alarm_cleared", kind)
    need(r is not None and c is not None and c > r, f"sensor_{kind}: alarm raised at {r} s and cleared at {c} s")
    need(first("alarm_acked", kind) is not None, f"sensor_{kind}: acknowledged")
need(not any(c.startswith("limit") or "limit_m" in m for t, c, s, m in ev), "no limit alarm: NaN is not 0, 65000 is not a value")
need(any(c == "prompt_confirmed" and "confirmed by uid" in m for t, c, s, m in ev), "the confirmation is recorded with the user")
need(any(c == "alarm_acked" and "acknowledged by uid" in m for t, c, s, m in ev), "the acknowledgements are recorded with the user")
steps = {text(s["name"]): text(s["outcome"]) for s in f["steps"]}
need(steps.get("wait for 1 bar") == "timeout", f"the wait_until did not fire on 65000 mbar (outcome {steps.get('wait for 1 bar')})")
t, v = series(f, "channels", "chip1.pressure")
rng = (t > 6.9) & (t < 8.1)
need(np.all(np.isnan(v[rng])) and np.sum(rng) > 5, "the file holds NaN while the sensor read out of range, not 65000")
nan = (t > 2.9) & (t < 5.1)
need(np.all(np.isnan(v[nan])), "and NaN while it read NaN")
ok = (t > 0.5) & (t < 2.4)
need(np.all(np.isfinite(v[ok])), "plausible readings are recorded as they are")
sys.exit(1 if bad else 0)
PY
check "every plausibility fault is an alarm and never a value (see above)" test $? -eq 0
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
finish
