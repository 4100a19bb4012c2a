#!/bin/bash
# Interlock latency on the simulator: a clog raises chip1's pressure (sampled
# at 10 Hz) past a safe-stop limit; the daemon records how long after the
# offending sample arrived the safe state left on the wire. INTERLOCK_TRIALS
# trials (default 20; `make bench-interlock` runs 50); the distribution is
# printed, not asserted.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

cat >"$T/clog.yaml" <<'P'
perfuse: 1
name: interlock latency
rig: sim
safe_state: {pump1: 0 uL/min}
limits:
  - {channel: chip1.pressure, max: 80 mbar, action: safe-stop}
steps:
  - {name: perfuse, set: {pump1: 20 uL/min}, for: 60 s}
P
# INTERLOCK_LINE_RATE=off measures without the simulator's line-rate emulation
# (bytes instantly, as on ptys), for comparison with figures taken that way.
start_daemon il ${INTERLOCK_LINE_RATE:+--line-rate "$INTERLOCK_LINE_RATE"} || { not_ok "daemon starts"; finish; }
simsock=$(sed -n 's/.*"control": "\([^"]*\)".*/\1/p' "$T/il/perfused.log" | head -1)
trials=${INTERLOCK_TRIALS:-20}
: >"$T/lat"
for i in $(seq 1 "$trials"); do
    sim_cmd "$simsock" "clear chip1" >/dev/null
    file=$(ctl run "$T/clog.yaml" | sed -n 's/^file //p')
    sim_cmd "$simsock" "fault clog:chip1,at=1500ms" >/dev/null
    ctl wait >/dev/null
    # The safe-stop holds pump1 until its alarm is acknowledged and the pressure is back.
    sim_cmd "$simsock" "clear chip1" >/dev/null
    for _ in $(seq 1 100); do
        ctl ack all >/dev/null 2>&1
        ctl --json status | grep -q '"alarms": \[\]' && break
        sleep 0.1
    done
    timeout 60 "$PYTHON" -c "
import re, sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run('$file')
codes = [text(e['code']) for e in f['events']]
m = [re.search(r'on the wire ([0-9.]+) ms', text(e['message'])) for e in f['events'] if text(e['code']) == 'interlock_latency']
ok = 'run_faulted' in codes and 'safe_state' in codes and m and m[0]
print(m[0].group(1) if ok else 'missing')" >>"$T/lat"
done
timeout 60 "$PYTHON" - "$T/lat" "$trials" <<'PY'
import sys
import numpy as np
vals = [l.strip() for l in open(sys.argv[1])]
ms = np.array([float(v) for v in vals if v != "missing"])
print(f"interlock latency over {len(ms)} trials (ms): min {ms.min():.2f}, median {np.median(ms):.2f}, "
      f"p90 {np.percentile(ms, 90):.2f}, max {ms.max():.2f}")
print("all:", " ".join(f"{x:.2f}" for x in ms))
sys.exit(0 if len(ms) == int(sys.argv[2]) else 1)
PY
check "every trial stopped the run, applied the safe state and recorded its latency" test $? -eq 0
finish
