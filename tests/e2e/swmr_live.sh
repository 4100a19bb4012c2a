#!/bin/bash
# Following a live run the way a researcher does: h5py.File(path, 'r',
# swmr=True) and refresh() while perfused writes. The series grow at every
# refresh, and what was read live is exactly what the finished file holds.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

cat >"$T/live.yaml" <<'P'
perfuse: 1
name: live reading
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {name: one, set: {pump1: 20 uL/min}, for: 6 s}
  - {name: two, ramp: {pump1: [20 uL/min, 40 uL/min]}, over: 6 s, update_rate: 2 Hz}
P
start_daemon live || { not_ok "daemon starts"; finish; }
file=$(ctl run "$T/live.yaml" | sed -n 's/^file //p')
check "run started" test -n "$file"

# The reader: every h5py call runs under an alarm (a SWMR open of a damaged file
# has been seen to hang). The pauses pace the reader, as a person's would; the
# test does not depend on their length.
timeout 60 "$PYTHON" - "$file" "$T/live.npz" <<'PY'
import signal, sys, time
import numpy as np
import h5py
signal.signal(signal.SIGALRM, lambda *a: sys.exit("h5py call timed out"))
signal.alarm(10)
f = h5py.File(sys.argv[1], "r", swmr=True)
signal.alarm(0)
t = f["channels/chip1.pressure/time"]
v = f["channels/chip1.pressure/value"]
sp = f["setpoints/pump1.flow/value"]
ev = f["events"]
lengths, sps, evs = [], [], []
for i in range(8):
    signal.alarm(10)
    for d in (t, v, sp, ev):
        d.refresh()
    n = min(len(t), len(v))
    lengths.append(n)
    sps.append(len(sp))
    evs.append(len(ev))
    tt = t[:n]
    if n > 1 and np.any(np.diff(tt) <= 0):
        sys.exit(f"time stamps read live do not increase (refresh {i})")
    signal.alarm(0)
    time.sleep(1.0)
np.savez(sys.argv[2], t=t[:lengths[-1]], v=v[:lengths[-1]])
f.close()
grew = sum(b > a for a, b in zip(lengths, lengths[1:]))
print("samples seen:", lengths, "setpoints:", sps, "events:", evs)
sys.exit(0 if grew >= 6 and sps[-1] > sps[0] and evs[-1] > evs[0] else "the series did not grow while the run went on")
PY
check "a SWMR reader sees samples, setpoints and events grow while the run goes on" test $? -eq 0
ctl wait >/dev/null
timeout 60 "$PYTHON" - "$file" "$T/live.npz" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series
live = np.load(sys.argv[2])
f = open_run(sys.argv[1])
t, v = series(f, "channels", "chip1.pressure")
n = len(live["t"])
ok = n > 0 and len(t) > n and np.array_equal(t[:n], live["t"]) and np.array_equal(v[:n], live["v"])
print(f"{n} samples read live, {len(t)} in the finished file")
sys.exit(0 if ok else 1)
PY
check "what was read live is exactly what the finished file holds" test $? -eq 0
finish
