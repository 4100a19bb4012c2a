"""kill -9 perfused in the middle of each kind of step, inside a repeat, restart
it, and check in the run file that the run went on where it was.

usage: resume.py BUILD WORKDIR

For each case: a protocol (pre, then a repeat of 2 passes of [the step under
test, a set], then post) runs on perfused --sim; it is killed 3 s into the
second pass of the step under test and restarted after about 2 s. The file
must show a restart event with the gap, the step's second pass keeping its
repeat counter and its remaining time (a wait or prompt counts the gap as
waiting), the protocol's total time preserved apart from the gap, setpoints
of a ramp or waveform continuing on their curve, samples before and after,
and the file completed. Then the same after SIGTERM (the pumps stopped as
on_shutdown says): the journal stays, and the restart continues the run. Last,
on_restart: safe-stop: the restart applies the safe state and ends the run as
interrupted, and a killed paused run stays paused."""
import json
import math
import os
import re
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from h5run import open_run, series, text  # noqa: E402
from perfused import perfusectl, start_perfused, stop_all  # noqa: E402

build, work = sys.argv[1], sys.argv[2]
failures = []
procs = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures.append(what)


def start(sock, data, log):
    return start_perfused(build, ["--sim", "--socket", sock, "--data-dir", data], log, procs)


def ctl(sock, *args):
    return perfusectl(build, sock, *args, timeout=120)


STEP = {
    "set": "{name: x, set: {pump1: 30 uL/min}, for: 6 s}",
    "ramp": "{name: x, ramp: {pump1: [10 uL/min, 40 uL/min]}, over: 6 s, update_rate: 2 Hz}",
    "waveform": "{name: x, waveform: {pump1: {shape: sine, mean: 20 uL/min, amplitude: 10 uL/min, "
                "period: 4 s}}, update_rate: 5 Hz, for: 6 s}",
    "wait_until": "{name: x, wait_until: chip1.pressure >= 1500 mbar, timeout: 6 s, on_timeout: continue}",
    "prompt": "{name: x, prompt: Check the chip}",
}


def protocol(kind, on_restart="resume"):
    return f"""perfuse: 1
name: resume {kind}
rig: sim
on_restart: {on_restart}
safe_state: {{pump1: 0 uL/min}}
steps:
  - {{name: pre, set: {{pump1: 10 uL/min}}, for: 2 s}}
  - name: loop
    repeat: 2
    steps:
      - {STEP[kind]}
      - {{name: y, set: {{pump1: 15 uL/min}}, for: 1 s}}
  - {{name: post, set: {{pump1: 5 uL/min}}, for: 1 s}}
"""


def wait_for(sock, pred, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r = ctl(sock, "--json", "status")
        if r.returncode == 0 and pred(r.stdout):
            return True
        time.sleep(0.1)
    return False


def run_case(kind, sig=signal.SIGKILL):
    name = kind if sig == signal.SIGKILL else f"{kind} after SIGTERM"
    print(f"# {name}", flush=True)
    d = os.path.join(work, name.replace(" ", "-"))
    os.makedirs(d)
    sock, data = os.path.join(d, "sock"), os.path.join(d, "runs")
    log = open(os.path.join(d, "perfused.log"), "w")
    open(os.path.join(d, "p.yaml"), "w").write(protocol(kind))
    p = start(sock, data, log)
    r = ctl(sock, "run", os.path.join(d, "p.yaml"))
    path = next(l.split(" ", 1)[1] for l in r.stdout.splitlines() if l.startswith("file "))
    if kind == "prompt":
        # Answer the first pass's prompt after 6 s, then wait in the second pass.
        check(wait_for(sock, lambda s: '"prompt": "Check' in s, 20), f"{kind}: first prompt shown")
        time.sleep(6.0)     # the operator's answer time; any value would do
        ctl(sock, "confirm")
        check(wait_for(sock, lambda s: '"path": "2.1"' in s and "[2/2]" in s, 20), f"{kind}: second prompt shown")
    else:
        check(wait_for(sock, lambda s: '"name": "x [2/2]"' in s, 30), f"{kind}: second pass reached")
    time.sleep(3.0)         # 3 s into the step: where the kill lands, not a synchronisation
    p.send_signal(sig)
    p.wait()
    if sig == signal.SIGTERM:
        check(os.path.exists(os.path.join(data, "run.journal")), f"{name}: SIGTERM leaves the journal")
        g = open_run(path)
        check(text(g.attrs["state"]) == "interrupted", f"{name}: the file is closed as interrupted")
        g.close()
    time.sleep(2.0)         # the downtime under test
    p = start(sock, data, log)
    if kind == "prompt":
        check(wait_for(sock, lambda s: '"prompt": "Check' in s, 20), f"{kind}: the prompt is asked again after the restart")
        time.sleep(1.0)
        ctl(sock, "confirm")
    r = ctl(sock, "--json", "wait")
    check('"state": "completed"' in r.stdout, f"{kind}: the run completes after the restart")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)

    f = open_run(path)
    check(text(f.attrs["state"]) == "completed", f"{kind}: the file says completed")
    ev = [(float(e["time"]), text(e["code"]), text(e["message"])) for e in f["events"]]
    restart = [e for e in ev if e[1] == "restart"]
    check(len(restart) == 1, f"{kind}: one restart event")
    gap = float(re.search(r"gap ([0-9.]+) s", restart[0][2]).group(1)) if restart else 0.0
    t_restart = restart[0][0] if restart else 0.0
    check(1.5 < gap < 4.0, f"{kind}: the gap is recorded ({gap:.3f} s)")
    steps = {text(s["name"]): s for s in f["steps"]}
    x2 = steps.get("x [2/2]")
    check(x2 is not None and text(x2["outcome"]) in ("done", "timeout", "confirmed"),
          f"{kind}: the second pass's row ({text(x2['outcome']) if x2 is not None else None}) keeps its repeat counter")
    dur = float(x2["end"] - x2["start"])
    if kind in ("set", "ramp", "waveform"):
        check(abs(dur - (6.0 + gap)) < 0.15, f"{kind}: the step lasted 6 s + the gap ({dur:.3f} s)")
    elif kind == "wait_until":
        check(abs(dur - 6.0) < 0.15, f"{kind}: the wait timed out after 6 s, the gap counting as waiting ({dur:.3f} s)")
    else:
        prompts = [e for e in ev if e[1] == "prompt"]
        check(len(prompts) == 3, f"{kind}: the pending prompt was asked again ({len(prompts)} prompt events)")
    if kind != "prompt":
        end = float(steps["post"]["end"])
        planned = 2 + 2 * (6 + 1) + 1
        extra = gap if kind != "wait_until" else 0.0
        check(abs(end - (planned + extra)) < 0.2, f"{kind}: total {end:.3f} s = planned {planned} s + gap {extra:.3f} s")
    t, v = series(f, "channels", "chip1.pressure")
    check(((t < t_restart - gap) & (t > t_restart - gap - 3)).sum() > 10 and
          ((t > t_restart) & (t < t_restart + 3)).sum() > 10, f"{kind}: samples before the kill and after the restart")
    check(bool(all(b > a for a, b in zip(t, t[1:]))), f"{kind}: time stamps increase across the restart")
    if kind in ("ramp", "waveform"):
        st, sv = series(f, "setpoints", "pump1.flow")
        t0 = float(x2["start"])
        after = [(a, b) for a, b in zip(st, sv) if t_restart + 0.4 < a < float(x2["end"]) - 0.01]
        worst = 0.0
        for a, b in after:
            local = a - t0 - gap        # step time runs without the downtime
            want = (10 + 30 * local / 6) if kind == "ramp" else 20 + 10 * math.sin(2 * math.pi * local / 4)
            worst = max(worst, abs(b - want))
        check(len(after) > 3 and worst < 1.0,
              f"{kind}: after the restart the setpoints continue on the curve ({len(after)} points, worst {worst:.3f} uL/min)")


def paused_case():
    """Killed while paused, with a manual setpoint: still paused after the restart,
    holding that setpoint; resumed by the operator, it completes."""
    print("# paused", flush=True)
    d = os.path.join(work, "paused")
    os.makedirs(d)
    sock, data = os.path.join(d, "sock"), os.path.join(d, "runs")
    log = open(os.path.join(d, "perfused.log"), "w")
    open(os.path.join(d, "p.yaml"), "w").write(protocol("set"))
    p = start(sock, data, log)
    r = ctl(sock, "run", os.path.join(d, "p.yaml"))
    path = next(l.split(" ", 1)[1] for l in r.stdout.splitlines() if l.startswith("file "))
    check(wait_for(sock, lambda s: '"name": "x [1/2]"' in s, 20), "paused: first pass reached")
    ctl(sock, "pause", "--reason", "line blocked")
    ctl(sock, "set", "pump1", "7", "uL/min")
    jpath = os.path.join(data, "run.journal")
    end = time.monotonic() + 10         # the journal is written in the background: poll it
    while time.monotonic() < end:
        j = open(jpath).read() if os.path.exists(jpath) else ""
        if '"paused": true' in j and '"pump1.flow": 7.0' in j:
            break
        time.sleep(0.05)
    check('"paused": true' in j and '"pump1.flow": 7.0' in j, "paused: the journal holds the pause and the manual setpoint")
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = start(sock, data, log)
    st = ctl(sock, "--json", "status").stdout
    check('"state": "paused"' in st, "paused: still paused after the restart")
    check(wait_for(sock, lambda s: '"setpoint": 7.0' in s, 10), "paused: the manual setpoint is held again")
    ctl(sock, "resume")
    r = ctl(sock, "--json", "wait")
    check('"state": "completed"' in r.stdout, "paused: resumed by the operator, the run completes")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    f = open_run(path)
    codes = [text(e["code"]) for e in f["events"]]
    check("restart" in codes and "paused" in codes and "resumed" in codes, "paused: the restart, the pause and the resume are in the file")


def safe_stop_case():
    """on_restart: safe-stop: the restart stops the pump with the safe state, the run
    ends as interrupted in its own file, and no journal is left to continue."""
    print("# safe-stop", flush=True)
    d = os.path.join(work, "safe-stop")
    os.makedirs(d)
    sock, data = os.path.join(d, "sock"), os.path.join(d, "runs")
    log = open(os.path.join(d, "perfused.log"), "w")
    open(os.path.join(d, "p.yaml"), "w").write(protocol("set", "safe-stop"))
    p = start(sock, data, log)
    r = ctl(sock, "run", os.path.join(d, "p.yaml"))
    path = next(l.split(" ", 1)[1] for l in r.stdout.splitlines() if l.startswith("file "))
    check(wait_for(sock, lambda s: '"name": "x [1/2]"' in s, 20), "safe-stop: first pass reached")
    time.sleep(2.0)         # into the step at 30 uL/min: where the kill lands
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = start(sock, data, log)
    r = ctl(sock, "--json", "wait")
    check('"state": "interrupted"' in r.stdout and path in r.stdout,
          "safe-stop: the killed run is ended by the restart as interrupted, not continued")
    st = json.loads(ctl(sock, "--json", "status").stdout)
    pump = next((c for c in st["channels"] if c["name"] == "pump1.flow"), {})
    check(pump.get("setpoint") == 0.0, f"safe-stop: pump1's setpoint shown after the restart is the safe state 0 ({pump.get('setpoint')})")
    check(not os.path.exists(os.path.join(data, "run.journal")), "safe-stop: no journal is left")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    check(len([n for n in os.listdir(data) if n.endswith(".h5")]) == 1, "safe-stop: no second run file")
    f = open_run(path)
    check(text(f.attrs["state"]) == "interrupted", f"safe-stop: the file says interrupted ({text(f.attrs['state'])})")
    ev = [(float(e["time"]), text(e["code"]), text(e["message"])) for e in f["events"]]
    restart = [e for e in ev if e[1] == "restart"]
    check(len(restart) == 1 and "on_restart: safe-stop" in restart[0][2], "safe-stop: one restart event naming on_restart")
    t_restart = restart[0][0] if restart else 0.0
    check(any(c == "safe_state" and t >= t_restart for t, c, _ in ev), "safe-stop: the safe state is applied after the restart")
    st, sv = series(f, "setpoints", "pump1.flow")
    check(len(sv) > 0 and sv[-1] == 0.0 and st[-1] >= t_restart, f"safe-stop: pump1's last setpoint is 0, sent at the restart ({sv[-1] if len(sv) else None})")
    steps = {text(s["name"]): s for s in f["steps"]}
    check("x [2/2]" not in steps or not math.isfinite(float(steps["x [2/2]"]["start"])),
          "safe-stop: the rest of the protocol did not run")


try:
    for kind in STEP:
        run_case(kind)
    run_case("set", signal.SIGTERM)
    paused_case()
    safe_stop_case()
finally:
    stop_all(procs)
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
