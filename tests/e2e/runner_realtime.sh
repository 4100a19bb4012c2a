#!/bin/bash
# The runner in real time on perfused --sim: every step kind, a pause in the
# middle of a ramp, and a prompt answered with perfusectl confirm. Planned
# against actual times are checked in the HDF5 file within a stated tolerance
# (TOL = 50 ms for a step start: one control-loop wake-up on a loaded CI
# machine; the measured lateness is normally well under 1 ms, see make bench).
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

cat >"$T/kinds.yaml" <<'P'
perfuse: 1
name: real-time step kinds
safe_state: {pump1: 0 uL/min}
steps:
  - {name: prime, set: {pump1: 30 uL/min, valve1.position: 2}, for: 2 s}
  - {name: warm, wait_until: incubator.temp > 20 degC, timeout: 30 s}
  - {name: ramp, ramp: {pump1: [10 uL/min, 20 uL/min]}, over: 6 s, update_rate: 2 Hz}
  - name: wave
    waveform: {pump1: {shape: square, mean: 10 uL/min, amplitude: 5 uL/min, period: 1 s}}
    for: 2 s
  - name: cycle
    repeat: 2
    steps:
      - {name: hold, set: {pump1: 5 uL/min}, for: 1 s}
  - {name: ask, prompt: Confirm to finish}
  - {name: last, set: {pump1: 2 uL/min}, for: 1 s}
P
start_daemon rt || { not_ok "daemon starts"; finish; }
out=$(ctl run "$T/kinds.yaml")
file=$(echo "$out" | sed -n 's/^file //p')
check "run started" test -n "$file"

# Pause 2 s into the ramp. Status is polled (bounded) because the control
# protocol has no step-change notification yet.
step_is() { ctl --json status | "$PYTHON" -c "import json,sys; s=json.load(sys.stdin); print((s.get('step') or {}).get('name',''), s.get('prompt') or '')"; }
for i in $(seq 200); do case "$(step_is)" in ramp*) break;; esac; sleep 0.05; done
sleep 2
ctl pause --reason "line blocked" >/dev/null && ok "pause accepted" || not_ok "pause accepted"
sleep 3   # the length of the pause: the test's input, not a synchronisation
ctl resume >/dev/null && ok "resume accepted" || not_ok "resume accepted"
for i in $(seq 400); do case "$(step_is)" in ask*) break;; esac; sleep 0.05; done
check "the prompt is shown in status" test "$(step_is)" = "ask Confirm to finish"
ctl confirm >/dev/null && ok "confirm answers the prompt" || not_ok "confirm answers the prompt"
res=$(ctl --json wait)
check "the run completes" grep -q '"state": "completed"' <<<"$res"

"$PYTHON" - "$file" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
TOL = 0.05
f = open_run(sys.argv[1])
st = f["steps"][:]
fails = 0
def expect(c, w):
    global fails
    print(("ok - " if c else "not ok - ") + w)
    fails += not c
names = [text(s["name"]) for s in st]
expect(names == ["prime", "warm", "ramp", "wave", "hold [1/2]", "hold [2/2]", "ask", "last"], f"steps in order: {names}")
for s in st:
    late = s["start"] - s["planned_start"]
    expect(0 <= late < TOL, f"{text(s['name'])} started {late * 1000:.2f} ms after its planned time")
ramp = st[2]
ev = f["events"][:]
tp = [e["time"] for e in ev if text(e["code"]) == "paused"][0]
tr = [e["time"] for e in ev if text(e["code"]) == "resumed"][0]
pause = ramp["end"] - ramp["start"] - 6.0
expect(abs(pause - (tr - tp)) < 0.02, f"the ramp ended late by the pause (plus its own end-timer lateness): {pause:.4f} s vs {tr - tp:.4f} s paused")
expect(abs(st[3]["planned_start"] - (ramp["planned_start"] + 6.0 + pause)) < TOL, "the rest of the plan moved by the pause")
t, v = series(f, "setpoints", "pump1.flow")
before = v[t <= tp + 1e-9][-1]
after = v[t >= tr - 1e-9][0]
expect(abs(after - before) < 10 / 6 * 0.5 + 1e-6, f"the ramp resumed from where it stopped ({before:.3f} -> {after:.3f})")
w0, w1 = st[3]["planned_start"], st[4]["planned_start"]
expect(20.0 in v[np.abs(t - w0) < 1e-9], "the ramp set its end value at its deadline")
w = (t > w0 + 1e-9) & (t < w1 - 1e-9)
expect(set(np.round(v[w], 6)) == {15.0, 5.0}, f"the square wave took only mean +- amplitude ({sorted(set(np.round(v[w], 6)))})")
hold = [s for s in st if text(s["name"]).startswith("hold")]
expect(abs(hold[1]["planned_start"] - hold[0]["planned_start"] - 1.0) < 1e-9, "repeat passes follow exactly")
ask = st[6]
expect(text(ask["outcome"]) == "confirmed" and abs(st[7]["planned_start"] - ask["end"]) < TOL, "the prompt waited for confirm and shifted what follows")
codes = [text(e["code"]) for e in ev]
for c in ("paused", "resumed", "prompt", "prompt_confirmed", "condition_met", "run_completed"):
    expect(c in codes, f"event {c} recorded")
print(f"{fails} failed")
sys.exit(1 if fails else 0)
PY
check "run file shows the timing (see above)" test $? -eq 0
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 15
finish
