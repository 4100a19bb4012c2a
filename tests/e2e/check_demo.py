#!/usr/bin/python3
"""Check the run file of protocols/demo.yaml the way a researcher reads it.

usage: check_demo.py RUN.h5 PROTOCOL.yaml
Exits non-zero and prints every failed check.
"""
import hashlib
import sys

import numpy as np

sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text  # noqa: E402

# The simulated chips' hydraulic model (drivers/sim/physics.c):
# pressure = R x flow + p0, with R1 = 2.5 and R2 = 3.0 mbar per uL/min, p0 = 4 mbar.
R = {"chip1": 2.5, "chip2": 3.0}
P0 = 4.0

# What protocols/demo.yaml commands, as (time s, pump1, pump2).
STEPS = [("prime", 0.0, 50.0, 50.0), ("settle", 8.0, 5.0, 5.0),
         ("shear ramp", 15.0, None, None), ("hold", 30.0, 20.0, 15.0)]
RAMP = {"pump1.flow": (5.0, 20.0), "pump2.flow": (5.0, 15.0)}
END = 45.0

failures = []


def expect(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def check_root(f, protocol_path):
    a = f.attrs
    expect(text(a["format"]) == "perfuse-run", "root format attribute")
    expect(int(a["format_version"]) == 2, "format_version is 2 (the NeXus tree)")
    expect(text(a["state"]) == "completed", f"state is completed (got {text(a['state'])})")
    expect(text(a["rig_name"]) == "sim", "rig_name is sim")
    expect(text(a["operator"]) == "e2e", "operator recorded")
    for k in ("software_version", "run_id", "protocol_name", "host", "start_time"):
        expect(k in a and text(a[k]) != "", f"root attribute {k}")
    proto = open(protocol_path, "rb").read()
    stored = f["protocol"][()]
    stored = stored if isinstance(stored, bytes) else stored.encode()
    expect(stored.rstrip(b"\0") == proto, "/protocol holds the protocol text")
    expect(text(f["protocol"].attrs["sha256"]) == hashlib.sha256(proto).hexdigest(), "/protocol sha256")
    expect("sha256" in f["rig"].attrs, "/rig sha256")


def check_channels(f):
    want = ["pump1.flow", "pump2.flow", "valve1.position", "chip1.pressure", "chip2.pressure",
            "chip1.flow", "chip2.flow", "chip1.o2", "incubator.temp"]
    for name in want:
        expect(name in f["channels"], f"/channels/{name} exists")
        if name not in f["channels"]:
            continue
        g = f["channels"][name]
        expect(text(g.attrs["NX_class"]) == "NXlog", f"{name} is an NXlog")
        expect(text(g.attrs["units"]) != "" or name == "valve1.position", f"{name} has units")
        for k in ("device", "driver", "kind"):
            expect(k in g.attrs, f"{name} has attribute {k}")
        expect(text(g["time"].attrs["units"]) == "s", f"{name}/time units s")
        expect("start" in g["time"].attrs, f"{name}/time has start")
        expect("units" in g["value"].attrs, f"{name}/value has units")
        t, v = series(f, "channels", name)
        expect(len(t) > 0, f"{name} has samples")
        expect(bool(np.all(np.diff(t) >= 0)), f"{name} time is monotonic")
        expect(len(t) == 0 or (t[0] >= 0 and t[-1] <= END + 2), f"{name} times lie inside the run")
    t, v = series(f, "channels", "chip1.pressure")
    rate = len(t) / END
    expect(rate > 5, f"chip1.pressure sampled at about 10 Hz (got {rate:.1f} Hz)")
    expect(text(f["channels"]["chip1.pressure"].attrs["units"]) == "mbar", "pressure in mbar")
    expect(text(f["channels"]["pump1.flow"].attrs["units"]) == "uL/min", "pump flow in uL/min")


def value_at(t, v, when):
    """The last commanded value at or before `when`."""
    idx = np.searchsorted(t, when + 1e-9, side="right") - 1
    return v[idx] if idx >= 0 else None


def check_setpoints(f):
    for col, pump in ((2, "pump1.flow"), (3, "pump2.flow")):
        t, v = series(f, "setpoints", pump)
        expect(len(t) > 0, f"/setpoints/{pump} has rows")
        for name, start, *vals in STEPS:
            want = vals[col - 2]
            if want is None:
                continue
            got = value_at(t, v, start + 0.001)
            expect(got is not None and abs(got - want) < 1e-9,
                   f"{pump} is set to {want} at {start} s ({name}); file says {got}")
        lo, hi = RAMP[pump]
        mask = (t >= 15.0 - 1e-9) & (t < 30.0 - 1e-9)
        expected = lo + (hi - lo) * (t[mask] - 15.0) / 15.0
        expect(mask.sum() == 30, f"{pump} ramp has 30 updates at 2 Hz (got {mask.sum()})")
        expect(bool(np.allclose(v[mask], expected, atol=1e-9)), f"{pump} ramp values follow the line")
        expect(abs(v[-1]) < 1e-9 and abs(t[-1] - END) < 0.5, f"{pump} ends at 0 (safe state) at {END} s")


TAU_P = 1.5   # the pressure's first-order lag in the model, seconds


def check_physics(f):
    """Run the measured chip flow through the model's pressure equation and
    compare with the measured pressure over the whole run."""
    for chip, q_hold in (("chip1", 20.0), ("chip2", 15.0)):
        tp, p = series(f, "channels", f"{chip}.pressure")
        tq, q = series(f, "channels", f"{chip}.flow")
        expect(len(tp) > 100 and len(tq) > 100, f"{chip} has pressure and flow samples")
        if len(tp) < 100 or len(tq) < 100:
            continue
        qi = np.interp(tp, tq, q)
        model = np.empty_like(p)
        model[0] = p[0]
        for k in range(1, len(p)):
            a = 1.0 - np.exp(-(tp[k] - tp[k - 1]) / TAU_P)
            model[k] = model[k - 1] + (R[chip] * qi[k] + P0 - model[k - 1]) * a
        resid = p[tp > 2] - model[tp > 2]
        rms = float(np.sqrt(np.mean(resid ** 2)))
        expect(rms < 1.5, f"{chip} pressure follows R x flow + p0 through the model's lag "
                          f"(rms residual {rms:.2f} mbar)")
        hold = (tp > 38) & (tp < 44.5)
        expect(abs(np.mean(p[hold]) - (R[chip] * q_hold + P0)) < 1.5,
               f"{chip} steady pressure {np.mean(p[hold]):.2f} mbar = R x {q_hold} + p0 = "
               f"{R[chip] * q_hold + P0:.2f}")


def check_events_and_steps(f):
    ev = f["events"][:]
    codes = [text(c) for c in ev["code"]]
    expect(codes.count("step_start") == 4, f"one step_start event per step (got {codes.count('step_start')})")
    expect(codes.count("step_end") == 4, f"one step_end event per step (got {codes.count('step_end')})")
    expect("run_started" in codes and "run_completed" in codes, "run start and completion events")
    sev = {text(s) for s in ev["severity"]}
    expect(sev <= {"info", "warning", "alarm", "fault"}, f"severities are from the contract: {sev}")
    expect(bool(np.all(np.diff(ev["time"]) >= -1e-9)), "event times are monotonic")
    steps = f["steps"][:]
    expect(len(steps) == 4, f"/steps has 4 rows (got {len(steps)})")
    for row, (name, start, *_r) in zip(steps, STEPS):
        expect(text(row["name"]) == name, f"step name {text(row['name'])} == {name}")
        expect(abs(row["planned_start"] - start) < 1e-9, f"{name} planned start {row['planned_start']} == {start}")
        late = row["start"] - row["planned_start"]
        expect(0 <= late < 0.05, f"{name} started {late * 1000:.2f} ms after its planned start")
        expect(text(row["outcome"]) == "done", f"{name} outcome done")
        expect(not np.isnan(row["end"]), f"{name} has an end time")


def main():
    path, protocol = sys.argv[1], sys.argv[2]
    with open_run(path) as f:
        check_root(f, protocol)
        check_channels(f)
        check_setpoints(f)
        check_physics(f)
        check_events_and_steps(f)
    print(f"{len(failures)} failed checks")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
