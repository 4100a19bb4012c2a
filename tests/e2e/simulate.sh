#!/bin/bash
# perfusectl simulate: every step kind in virtual time with exact planned and
# actual times in the HDF5 file; the same seed gives the same samples to the
# bit; injected faults show in the data; prompts are confirmed and say so.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
CTL="$BUILD/perfusectl"

cat >"$T/kinds.yaml" <<'P'
perfuse: 1
name: every step kind
safe_state: {pump1: 0 uL/min}
steps:
  - {name: prime, set: {pump1: 50 uL/min, valve1.position: 2}, for: 30 s}
  - {name: warm, wait_until: incubator.temp >= 36.9 degC, timeout: 1 h}
  - {name: ramp, ramp: {pump1: [1 uL/min, 10 uL/min]}, over: 10 min}
  - name: pulses
    waveform: {pump1: {shape: sine, mean: 10 uL/min, amplitude: 5 uL/min, period: 2 s}}
    for: 1 min
  - name: cycle
    repeat: 3
    steps:
      - {name: hold, set: {pump1: 5 uL/min}, for: 1 h}
      - {name: exchange, prompt: Replace the reservoir}
P
out=$("$CTL" simulate "$T/kinds.yaml" -o "$T/a.h5" --seed 5 --prompt-delay 2min --json)
check "the simulation completes ($out)" grep -q '"state": "completed"' <<<"$out"
"$CTL" simulate "$T/kinds.yaml" -o "$T/b.h5" --seed 5 --prompt-delay 2min >/dev/null
"$CTL" simulate "$T/kinds.yaml" -o "$T/c.h5" --seed 6 --prompt-delay 2min >/dev/null
"$CTL" simulate "$T/kinds.yaml" -o "$T/clog.h5" --seed 5 --prompt-delay 2min --fault clog:chip1,at=1h,for=30min >/dev/null

"$PYTHON" - "$T" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text

T = sys.argv[1]
fails = 0
def expect(cond, what):
    global fails
    print(("ok - " if cond else "not ok - ") + what)
    fails += not cond

a, b, c = open_run(f"{T}/a.h5"), open_run(f"{T}/b.h5"), open_run(f"{T}/c.h5")
steps = a["steps"][:]
names = [text(s["name"]) for s in steps]
expect(len(steps) == 10, f"10 step rows (got {len(steps)}: {names})")
expect(all(s["start"] == s["planned_start"] for s in steps), "every step starts exactly at its planned time")
expect(all(text(s["outcome"]) in ("done", "confirmed") for s in steps), "every step ends done or confirmed")
warm = steps[1]
expect(warm["end"] > warm["start"], f"the wait took {warm['end'] - warm['start']:.1f} s of virtual time")
expect(steps[2]["planned_start"] == warm["end"], "the ramp starts when the wait ended (the wait shifts what follows)")
expect(abs(steps[4]["planned_start"] - (steps[2]["planned_start"] + 660)) < 1e-9, "fixed steps follow at exact offsets")
ex = [s for s in steps if text(s["name"]).startswith("exchange")]
expect(all(abs(s["end"] - s["start"] - 120) < 1e-9 for s in ex), "prompts are confirmed after the 2 min delay")
codes = [text(x) for x in a["events"]["code"]]
expect(codes.count("prompt_simulated") == 3, "the file records that each prompt was simulated")
expect("simulated" in codes, "the file records that the run was simulated")
t, v = series(a, "setpoints", "pump1.flow")
r0 = steps[2]["planned_start"]
m = (t >= r0) & (t < r0 + 600)
expect(np.allclose(v[m], 1 + 9 * (t[m] - r0) / 600), "ramp setpoints follow the line from their deadlines")
w0 = steps[3]["planned_start"]
m = (t >= w0) & (t < w0 + 60)
# 600 waveform updates at 10 Hz, plus the ramp's final value written at the same instant w0.
expect(m.sum() == 601 and np.allclose(v[m], 10 + 5 * np.sin(2 * np.pi * (t[m] - w0) / 2)),
       f"the waveform has 600 updates at 10 Hz on the sine ({m.sum() - 1})")
same = all(np.array_equal(a["channels"][ch]["value"][:], b["channels"][ch]["value"][:], equal_nan=True)
           and np.array_equal(a["channels"][ch]["time"][:], b["channels"][ch]["time"][:])
           for ch in a["channels"])
expect(same, "two runs with the same seed give the same samples, to the bit")
expect(not np.array_equal(a["channels/chip1.pressure/value"][:], c["channels/chip1.pressure/value"][:]),
       "another seed gives other noise")
cl = open_run(f"{T}/clog.h5")
# The clog lasts from 1 h to 1 h 30 min of simulated time, while pump1 holds 5 uL/min.
tp, p = series(cl, "channels", "chip1.pressure")
before = p[(tp > 1500) & (tp < 3500)].mean()
during = p[(tp > 4700) & (tp < 5300)].mean()
after = p[(tp > 5500) & (tp < 8000)].mean()
expect(abs(before - (2.5 * 5 + 4)) < 0.5 and abs(during - (5 * 2.5 * 5 + 4)) < 1 and abs(after - before) < 0.5,
       f"a clog fault raises the pressure five-fold in R, then it returns ({before:.1f} -> {during:.1f} -> {after:.1f} mbar)")
print(f"{fails} failed")
sys.exit(1 if fails else 0)
PY
check "simulated files read as expected (see above)" test $? -eq 0
# Several protocols together on the one model: a file each, shared sensors,
# each one's setpoints on its own pump only; a claim overlap is refused.
cat >"$T/sa.yaml" <<'P'
perfuse: 1
name: chip a
safe_state: {pump1: 0 uL/min}
steps:
  - {name: a1, set: {pump1: 10 uL/min}, for: 10 min}
  - {name: a2, wait_until: chip2.pressure > 10 mbar, timeout: 1 h, on_timeout: abort}
P
cat >"$T/sb.yaml" <<'P'
perfuse: 1
name: chip b
safe_state: {pump2: 0 uL/min}
steps:
  - {name: b1, set: {pump2: 20 uL/min}, for: 20 min}
P
cat >"$T/sc.yaml" <<'P'
perfuse: 1
name: chip c
safe_state: {pump1: 0 uL/min}
steps:
  - {set: {valve1: 2}, for: 1 min}
P
CTLA=$PWD/$CTL
(cd "$T" && "$CTLA" simulate sa.yaml sb.yaml --json >two.json 2>two.err)
check "two protocols simulated together, both complete" test "$(grep -c '"state": "completed"' "$T/two.json")" -eq 2
check "  ... one file each, each with its own steps and setpoints on its own pump only" "$PYTHON" - "$T" <<'PY'
import h5py, json, sys
T = sys.argv[1]
files = [json.loads(l)["file"] for l in open(T + "/two.json")]
want = [("pump1.flow", ["a1", "a2"]), ("pump2.flow", ["b1"])]
for rel, (chan, steps) in zip(files, want):
    f = h5py.File(T + "/" + rel, "r")
    names = [r["name"].decode() for r in f["steps"]]
    used = sorted(k for k in f["setpoints"] if len(f["setpoints"][k]["value"]) > 0)
    assert names == steps and used == [chan], (rel, names, used)
# chip a waited on chip2's pressure, which only chip b's pump raises: the sensor is shared.
PY
(cd "$T" && "$CTLA" simulate sa.yaml sc.yaml >/dev/null 2>clash.err); rc=$?
check "a protocol on a pump another one claims is refused (exit $rc)" test "$rc" -ne 0
check "  ... naming the channel and the holder" grep -q "^sc.yaml: error: cannot run alongside sa.yaml: pump1.flow is held by run chip-a until it ends" "$T/clash.err"
finish
