#!/bin/bash
# perfuse-plot and perfuse-export on a simulated run with an alarm: the PNG is
# a real image with one panel per quantity and the alarm marked; the
# CSV files hold exactly what the run file holds.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

# The demo with an alarm limit that its prime step trips: a real alarm, raised
# and cleared by the simulated run, to be marked on the plot.
sed 's/^steps:/limits:\n  - {channel: chip1.pressure, max: 100 mbar, for: 1 s, action: alarm}\nsteps:/' \
    protocols/demo.yaml >"$T/demo-alarm.yaml"
"$BUILD/perfusectl" simulate "$T/demo-alarm.yaml" -o "$T/run.h5" --seed 3 >/dev/null
check "simulated run file written" test -s "$T/run.h5"
codes=$(timeout 60 "$PYTHON" -c "import h5py, sys; print(' '.join(c.decode() for c in h5py.File(sys.argv[1])['events']['code']))" "$T/run.h5")
check "the simulated run raised the alarm" grep -qw alarm_raised <<<"$codes"

out=$(timeout 120 "$PYTHON" scripts/perfuse-plot "$T/run.h5" -o "$T/run.png")
echo "$out"
check "perfuse-plot reports what it drew" grep -q "panels" <<<"$out"
check "perfuse-plot marks the alarm" grep -q "1 alarms/faults marked" <<<"$out"
check "the PNG is written" test -s "$T/run.png"
timeout 60 "$PYTHON" - "$T/run.png" <<'PY'
import sys
import matplotlib.image as mpimg
import numpy as np
img = mpimg.imread(sys.argv[1])
h, w = img.shape[:2]
# A real figure: big enough, and not a blank canvas (many distinct colours).
colours = len(np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0))
print(f"png {w}x{h}, {colours} colours")
sys.exit(0 if w >= 800 and h >= 600 and colours > 50 else 1)
PY
check "the PNG decodes as a non-blank image of at least 800x600" test $? -eq 0
check "perfuse-plot draws valve1.busy as a state band, not a panel" grep -q "1 state bands" <<<"$out"
# A slow phase beside a fast top-up: the flow panel gets a log axis; a syringe
# that runs empty is marked by name.
cat >"$T/wide.yaml" <<'P'
perfuse: 1
name: slow and fast
on_fault: pause
safe_state: {pump1: 0 uL/min}
steps:
  - {name: slow, set: {pump1: 0.5 uL/min}, for: 10 min}
  - {name: top-up, set: {pump1: 100 uL/min}, for: 1 min}
  - {name: slow again, set: {pump1: 1.5 uL/min}, for: 10 min}
P
"$BUILD/perfusectl" simulate "$T/wide.yaml" -o "$T/wide.h5" --fill pump1=80uL --seed 1 >/dev/null
out=$(timeout 120 "$PYTHON" scripts/perfuse-plot "$T/wide.h5" -o "$T/wide.png")
echo "$out"
check "a 0.5 to 100 uL/min panel gets a log axis" grep -qE "log axis for (.*, )?uL/min(,|$)" <<<"$out"
check "an empty syringe is marked" grep -q "pump1: SYRINGE EMPTY" <<<"$out"
out=$(timeout 120 "$PYTHON" scripts/perfuse-plot "$T/wide.h5" -o "$T/wide.png" --log off)
check "--log off keeps linear axes" test "$(grep -c "log axis" <<<"$out")" -eq 0
timeout 60 "$PYTHON" scripts/perfuse-plot "$T/missing.h5" -o "$T/x.png" 2>"$T/err"
check "perfuse-plot on a missing file fails with a message" test -s "$T/err"

out=$(timeout 120 "$PYTHON" scripts/perfuse-export "$T/run.h5" --csv "$T/csv")
check "perfuse-export runs" test $? -eq 0
timeout 120 "$PYTHON" - "$T/run.h5" "$T/csv" <<'PY'
import csv, os, sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, text
f = open_run(sys.argv[1]); d = sys.argv[2]
bad = 0
n_series = 0
for group, prefix in (("channels", ""), ("setpoints", "setpoint-"), ("confirmed", "confirmed-")):
    if group == "confirmed" and group not in f:
        print("no /confirmed group in the run file"); bad += 1
        continue
    for name, g in f[group].items():
        n_series += 1
        rows = list(csv.reader(open(os.path.join(d, f"{prefix}{name}.csv"))))
        t = np.array([float(r[0]) for r in rows[1:]])
        v = np.array([float(r[2]) if r[2] else np.nan for r in rows[1:]])
        units = text(g.attrs["units"])
        if rows[0] != ["run_time_s", "time_utc", "value", "unit"] or any(r[3] != units for r in rows[1:]):
            print("bad header or unit column", name, rows[0]); bad += 1
        if not (np.array_equal(t, g["time"][:]) and np.array_equal(v, g["value"][:], equal_nan=True)):
            print("values differ", name); bad += 1
for table in ("events", "steps"):
    rows = list(csv.reader(open(os.path.join(d, f"{table}.csv"))))
    if len(rows) - 1 != len(f[table]):
        print("row count differs", table); bad += 1
codes = [r[3] for r in csv.reader(open(os.path.join(d, "events.csv")))][1:]
if "alarm_raised" not in codes:
    print("the alarm is not in events.csv", codes); bad += 1
print(f"{n_series} series compared")
sys.exit(1 if bad else 0)
PY
check "every CSV holds exactly the run file's series, events and steps" test $? -eq 0
# The same simulation (same seed) on a rig that compresses: the same values,
# compressed with shuffle + deflate.
sed -e 's/^rig: sim$/rig: sim\nrecorder: {compression: 6}/' \
    -e "s#\.\./profiles/#$PWD/protocols/profiles/#" protocols/rigs/sim.yaml >"$T/zrig.yaml"
"$BUILD/perfusectl" simulate protocols/demo.yaml --rig "$T/zrig.yaml" -o "$T/z.h5" --seed 3 >/dev/null
timeout 60 "$PYTHON" - "$T/run.h5" "$T/z.h5" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run
a, b = open_run(sys.argv[1]), open_run(sys.argv[2])
bad = 0
for name, g in a["channels"].items():
    h = b["channels"][name]
    if h["value"].compression != "gzip" or not h["value"].shuffle:
        print("not compressed:", name); bad += 1
    if not (np.array_equal(g["time"][:], h["time"][:]) and np.array_equal(g["value"][:], h["value"][:], equal_nan=True)):
        print("values differ:", name); bad += 1
sys.exit(1 if bad else 0)
PY
check "a compressing rig records the same values, compressed" test $? -eq 0
# The researchers' guide's Python examples run as written on a real run file.
timeout 120 "$PYTHON" - "$T/run.h5" <<'PY'
import re, sys
doc = open("scripts/README.md").read()
# The examples that read a run file; the broker subscriber needs a broker
# (mqtt_telemetry.sh runs scripts/perfuse-mqtt-series, which it sketches).
blocks = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "h5py" in b]
assert len(blocks) >= 2, "expected the h5py and pandas examples"
ns = {}
for code in blocks:
    exec(re.sub(r'"[^"]*\.h5"', repr(sys.argv[1]), code), ns)
import pandas as pd
steps = ns["steps"]
assert len(steps) > 0 and all(isinstance(v, str) for v in steps["name"]), "steps are not decoded to str"
assert all(isinstance(v, str) for v in ns["events"]["code"]), "events are not decoded to str"
print(f"{len(blocks)} examples ran; steps and events decoded to str")
PY
check "the guide's h5py and pandas examples run on a fresh file, steps decoded to str" test $? -eq 0
finish
