"""Every fault the simulator can put on a wire, one after another during one
run: the daemon survives each, records the fault and the recovery in /events,
the device resumes by itself, and a healthy device on another bus keeps its
sample rate within 5 % through the whole fault. The rig is perfuse-sim's with
its extra lab lines (--lab-devices), so the serial lab devices (Reglo ICC,
Harvard, Hamilton) are faulted and watched the same way.

usage: fault_matrix.py BUILD WORKDIR"""
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import numpy as np  # noqa: E402
from h5run import open_run, series, text  # noqa: E402
from perfused import perfusectl, start_perfused  # noqa: E402

build, work = sys.argv[1], sys.argv[2]
failures = []
HZ = 10.0

# (fault, the event that marks it (source, code, message pattern), the one that
#  ends it, a channel of the faulted device, healthy channels on other buses)
CASES = [
    ("timeout:chip1", ("chip1", "device_faulted", ""), ("chip1", "device_recovered", ""),
     "chip1.pressure", ["pump1.flow", "incubator.temp"]),
    ("garbage:chip1", ("chip1", "device_faulted", ""), ("chip1", "device_recovered", ""),
     "chip1.pressure", ["pump1.flow", "incubator.temp"]),
    ("crc:chip1", ("chip1", "device_faulted", "CRC"), ("chip1", "device_recovered", ""),
     "chip1.pressure", ["pump1.flow", "incubator.temp"]),
    ("exception:chip1", ("chip1.pressure", "device_error", "failure"),
     ("chip1.pressure", "device_error_cleared", ""), "chip1.pressure", ["pump1.flow", "incubator.temp"]),
    ("nan:chip1", ("chip1.pressure", "alarm_raised", "sensor_nan"), ("chip1.pressure", "alarm_cleared", "sensor_nan"),
     "chip1.pressure", ["pump1.flow", "incubator.temp"]),
    ("disconnect:chip1", ("sensors", "link_down", ""), ("sensors", "link_up", ""),
     "chip1.pressure", ["pump1.flow", "incubator.temp"]),
    ("timeout:pump1", ("pump1", "device_faulted", ""), ("pump1", "device_recovered", ""),
     "pump1.flow", ["chip1.pressure", "incubator.temp"]),
    ("timeout:incubator", ("incubator", "device_faulted", ""), ("incubator", "device_recovered", ""),
     "incubator.temp", ["pump1.flow", "chip2.pressure"]),
    ("disconnect:incubator", ("plc", "link_down", ""), ("plc", "link_up", ""),
     "incubator.temp", ["pump1.flow", "chip2.pressure"]),
]

# A silent or garbling device shares its line with these: they keep sampling,
# losing at most one timeout (200 ms) per cycle to it, and every reading stays
# their own (an RTU reply does not say which registers it holds: one read out
# of step would record chip2's flow as its pressure).
SAME_LINE = {"timeout:chip1": ["chip2.pressure"], "garbage:chip1": ["chip2.pressure", "chip2.flow"],
             "timeout:pump1": ["pump2.flow"]}
TIMEOUT = 0.2
# A fault lasts 2 s. The device is probed 0.5, 1, 2 and 4 s apart once faulted,
# so it answers again within about 4 s of the fault's end; 10 s leaves room
# for a busy machine.
FAULT_S = 2.0
RECOVERY_S = 10

# The lab lines: (fault device, bus, a device on it, its channel). Each gets the
# four wire faults a serial line can have; the refusal is the device's own.
LAB = [
    ("reglo", "reglo", "perist1", "flow"),
    ("harvard", "syringes", "hpump1", "flow"),
    ("hamilton", "valves", "selector1", "position"),
]
for line, bus, dev, ch in LAB:
    own = f"{dev}.{ch}"
    healthy = ["pump1.flow", "chip1.pressure"]
    CASES += [
        (f"timeout:{line}", (dev, "device_faulted", ""), (dev, "device_recovered", ""), own, healthy),
        (f"garbage:{line}", (dev, "device_faulted", ""), (dev, "device_recovered", ""), own, healthy),
        (f"exception:{line}", (own, "device_error", ""), (own, "device_error_cleared", ""), own, healthy),
        (f"disconnect:{line}", (bus, "link_down", ""), (bus, "link_up", ""), own, healthy),
    ]
# A lab device on its own line must not notice the contract rig's faults either.
LAB_LINES = {line for line, _, _, _ in LAB}
CASES = [(fault, start, end, own, healthy if fault.split(":")[1] in LAB_LINES else healthy + ["perist1.flow"])
         for fault, start, end, own, healthy in CASES]


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures.append(what)


def ctl(*args):
    return perfusectl(build, sock, *args, timeout=30)


def sim_cmd(line):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sim_sock)
    s.sendall((line + "\n").encode())
    reply = s.recv(4096).decode().strip()
    s.close()
    return reply


def events():
    r = ctl("--json", "events")
    return json.loads(r.stdout)["events"] if r.returncode == 0 else []


def matches(e, spec):
    src, code, pat = spec
    return e["source"] == src and e["code"] == code and pat in e["message"]


def wait_event(spec, after, seconds):
    """The first event matching spec among those after index `after`, waiting (bounded) for it."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ev = events()
        for e in ev[after:]:
            if matches(e, spec):
                return e
        time.sleep(0.2)     # the control protocol pushes events only to watchers; poll, bounded
    return None


os.makedirs(work, exist_ok=True)
sock, data = os.path.join(work, "sock"), os.path.join(work, "runs")
log = open(os.path.join(work, "perfused.log"), "w")
procs = []
try:
    rig = os.path.join(work, "rig.yaml")
    sim = subprocess.Popen([f"{build}/perfuse-sim", "--rig-out", rig, "--lab-devices"],
                           stdout=subprocess.PIPE, stderr=log, text=True)
    procs.append(sim)
    sim_sock = json.loads(sim.stdout.readline())["control"]    # printed once everything listens
    daemon = start_perfused(build, ["--rig", rig, "--sample-hz", str(int(HZ)), "--socket", sock,
                                    "--data-dir", data], log, procs)
    proto = os.path.join(work, "p.yaml")
    open(proto, "w").write("""perfuse: 1
name: fault matrix
rig: sim
on_fault: continue
safe_state: {pump1: 0 uL/min, pump2: 0 uL/min, perist1: 0 uL/min, hpump1: 0 uL/min}
steps:
  - {name: flow, set: {pump1: 10 uL/min, pump2: 10 uL/min, perist1: 300 uL/min,
                      hpump1: 10 uL/min, selector1: 3}, for: 10 min}
""")
    out = ctl("run", proto).stdout
    path = next(l.split(" ", 1)[1] for l in out.splitlines() if l.startswith("file "))
    time.sleep(2)           # a baseline of samples before the first fault; not a synchronisation
    marks = []
    for fault, start, end, own, healthy in CASES:
        n = len(events())
        t_inject = time.monotonic()
        check(sim_cmd(f"fault {fault},for={FAULT_S:g}s") == "ok", f"{fault}: injected for {FAULT_S:g} s")
        e0 = wait_event(start, n, 15)
        e1 = wait_event(end, n, t_inject + FAULT_S + RECOVERY_S - time.monotonic())
        check(e0 is not None, f"{fault}: the fault is an event ({start[1]} from {start[0]})")
        check(e1 is not None, f"{fault}: the recovery is an event ({end[1]} from {end[0]}) "
              f"within {RECOVERY_S} s of the fault's end")
        if e1 is not None:
            print(f"# {fault}: recovery seen {time.monotonic() - t_inject - FAULT_S:.1f} s after the fault's end "
                  f"(polled every 0.2 s)", flush=True)
        check(daemon.poll() is None and ctl("status").returncode == 0, f"{fault}: the daemon survives and answers")
        time.sleep(1.0)     # let the recovered device sample again before the next fault
        marks.append((fault, e0, e1, own, healthy))
    ctl("abort", "--reason", "end of the fault matrix")
    ctl("wait")

    f = open_run(path)
    for fault, e0, e1, own, healthy in marks:
        if e0 is None or e1 is None:
            continue
        t0, t1 = e0["time"] - 0.5, e1["time"] + 0.5
        # The device resumes by itself: valid readings soon after the recovery.
        t, v = series(f, "channels", own)
        after = v[(t > e1["time"]) & (t < e1["time"] + 3)]
        check(len(after) > 0 and bool((after == after).any()), f"{fault}: {own} reads valid values again after the recovery")
        for ch in healthy:
            t, v = series(f, "channels", ch)
            sel = (t >= t0) & (t <= t1)
            n_s, span = int(sel.sum()), t1 - t0
            rate = n_s / span if span > 0 else 0
            bad = int((v[sel] != v[sel]).sum())
            check(abs(rate - HZ) <= 0.05 * HZ and bad == 0,
                  f"{fault}: {ch} on another bus kept {rate:.2f} Hz (nominal {HZ:g}) over the {span:.1f} s of the fault, {bad} invalid")
        for ch in SAME_LINE.get(fault, []):
            t, v = series(f, "channels", ch)
            sel = (t >= t0) & (t <= t1)
            gap = float((t[sel][1:] - t[sel][:-1]).max()) if sel.sum() > 1 else float("inf")
            bad = int((v[sel] != v[sel]).sum())
            limit = 1 / HZ + TIMEOUT + 0.15
            check(gap <= limit and bad == 0,
                  f"{fault}: {ch} on the same line sampled {sel.sum() / (t1 - t0):.2f} Hz, longest gap {gap * 1000:.0f} ms "
                  f"(at most a period and one timeout, {limit * 1000:.0f} ms with slack), {bad} invalid")
            # Its own readings: the pump's flow is set, so the channel is steady
            # or still settling from the run's start; each reading stays within
            # 25 % of the band between its medians of the second before the
            # fault and the second after the recovery (a reading out of step
            # would be chip2's other channel, far outside it).
            before = v[(t >= t0 - 1.0) & (t < t0) & (v == v)]
            later = v[(t > t1) & (t <= t1 + 1.0) & (v == v)]
            if len(before) and len(later):
                lo, hi = sorted((float(np.median(before)), float(np.median(later))))
                own_v = v[sel & (v == v)]
                far = int(((own_v < lo - 0.25 * abs(lo)) | (own_v > hi + 0.25 * abs(hi))).sum())
            else:
                lo = hi = float("nan")
                far = -1
            check(far == 0,
                  f"{fault}: {ch} on the same line kept its own readings ({far} more than 25 % outside "
                  f"{lo:.3g}..{hi:.3g}, its medians of the second before the fault and after the recovery)")
    codes = [(text(e["source"]), text(e["code"])) for e in f["events"]]
    check(all(any(c == (spec[0], spec[1]) for c in codes) for _, spec, _, _, _ in CASES),
          "every fault's event is in the run file's /events")
    check(all(any(c == (spec[0], spec[1]) for c in codes) for _, _, spec, _, _ in CASES),
          "every recovery's event is in the run file's /events")
finally:
    for daemon in reversed(procs):     # perfused first: its orderly stop still talks to the rig
        if daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
