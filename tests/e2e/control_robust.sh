#!/bin/bash
# The control socket under abuse during a run (control_robust.py), then the
# run file: the sample rate held within 5 % and the steps started on time.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

cat >"$T/steady.yaml" <<'P'
perfuse: 1
name: steady under abuse
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {name: a, set: {pump1: 10 uL/min}, for: 8 s}
  - {name: b, set: {pump1: 20 uL/min}, for: 8 s}
  - {name: c, set: {pump1: 10 uL/min}, for: 8 s}
P
start_daemon robust || { not_ok "daemon starts"; finish; }
timeout 120 "$PYTHON" tests/e2e/control_robust.py "$SOCK" "$T/file" "$T/steady.yaml"
check "the control socket survives every abuse (see above)" test $? -eq 0
ctl wait >/dev/null
check "the daemon is still running" kill -0 "$DAEMON_PID"
check "it logged why it dropped the client that did not read" grep -q "does not read its replies" "$T/robust/perfused.log"
file=$(cat "$T/file")
timeout 60 "$PYTHON" - "$file" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
f = open_run(sys.argv[1])
ok = text(f.attrs["state"]) == "completed"
for ch, hz in (("chip1.pressure", 10.0), ("chip2.pressure", 10.0), ("pump1.flow", 2.0)):
    t, v = series(f, "channels", ch)
    inner = t[(t >= 1.0) & (t <= 23.0)]
    rate = (len(inner) - 1) / (inner[-1] - inner[0])
    gap = np.max(np.diff(t))
    print(f"{ch}: {rate:.2f} Hz (nominal {hz:g}), longest gap {gap * 1e3:.0f} ms")
    ok &= abs(rate - hz) / hz <= 0.05
late = [(s["start"] - s["planned_start"]) * 1e3 for s in f["steps"]]
print("step lateness (ms):", ", ".join(f"{x:.2f}" for x in late))
ok &= max(late) < 50
sys.exit(0 if ok else 1)
PY
check "sample rates within 5 % and steps on time through the abuse" test $? -eq 0
finish
