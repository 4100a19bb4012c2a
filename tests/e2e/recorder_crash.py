"""kill -9 perfused at random moments of a run, recover each file, and check it.

usage: recorder_crash.py BUILD WORKDIR KILLS [SEED]

One perfuse-sim serves the whole test and traces every value it sends. For
each kill a fresh perfused starts a run of tests/e2e/crash.yaml and is killed
with SIGKILL after a random 1-4 s. Odd-numbered files are recovered with
`perfusectl recover` (twice: it must be safe to repeat); the others by the next
daemon's automatic recovery at start. Then every file is checked, each in a
child process under a time limit (a damaged file can hang h5py):
opens plainly in h5py and h5dump, state is "interrupted", time stamps
increase, every channel's last sample is within 1 s of the kill, and every
recorded value is one the simulator sent, in order."""
import json
import os
import random
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from perfused import perfusectl, start_perfused, stop_all  # noqa: E402

build, work, kills = sys.argv[1], sys.argv[2], int(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else int(time.time())
rng = random.Random(seed)
print(f"crash test: {kills} kills, seed {seed}")
py = sys.executable
procs = []
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("not ok -", msg, flush=True)


def start_daemon(rig, sock, data):
    log = open(os.path.join(work, "perfused.log"), "a")
    return start_perfused(build, ["--rig", rig, "--socket", sock, "--data-dir", data, "--sample-hz", "10"],
                          log, procs)


def ctl(sock, *args, timeout=60):
    return perfusectl(build, sock, *args, timeout=timeout)


try:
    trace = os.path.join(work, "trace")
    rig = os.path.join(work, "rig.yaml")
    sim = subprocess.Popen([f"{build}/perfuse-sim", "--rig-out", rig, "--trace", trace,
                            "--control", os.path.join(work, "sim.sock")],
                           stdout=subprocess.PIPE, stderr=open(os.path.join(work, "sim.log"), "w"), text=True)
    procs.append(sim)
    json.loads(sim.stdout.readline())          # the ready line: endpoints are up
    sock, data = os.path.join(work, "sock"), os.path.join(work, "runs")
    crashes = []                               # (file, kill wall time)
    for i in range(kills):
        d = start_daemon(rig, sock, data)
        r = ctl(sock, "run", os.path.join(HERE, "crash.yaml"))
        path = next((l.split(" ", 1)[1] for l in r.stdout.splitlines() if l.startswith("file ")), None)
        if r.returncode != 0 or path is None:
            fail(f"kill {i}: run did not start: {r.stdout} {r.stderr}")
            d.kill(); d.wait()
            continue
        # The moment of the kill is what is random here, not a synchronisation.
        time.sleep(rng.uniform(1.0, 4.0))
        t_kill = time.time()
        d.send_signal(signal.SIGKILL)
        d.wait()
        crashes.append((path, t_kill))
        if i % 2 == 1:
            for _ in range(2):
                r = ctl(sock, "recover", path)
                if r.returncode != 0:
                    fail(f"perfusectl recover {path}: {r.stdout} {r.stderr}")
    # The last even-numbered file is recovered by one more daemon start.
    d = start_daemon(rig, sock, data)
    d.send_signal(signal.SIGTERM)
    d.wait(timeout=30)
    for n, (path, t_kill) in enumerate(crashes):
        r = subprocess.run(["h5dump", "-H", path], capture_output=True, timeout=60)
        if r.returncode != 0:
            fail(f"{path}: h5dump -H fails: {r.stderr[-300:]}")
        r = subprocess.run(["h5dump", "-o", "/dev/null", path], capture_output=True, timeout=120)
        if r.returncode != 0:
            fail(f"{path}: h5dump of all data fails")
        r = subprocess.run([py, os.path.join(HERE, "check_crash.py"), path, trace, repr(t_kill)],
                           capture_output=True, text=True, timeout=120)
        sys.stdout.write(r.stdout)
        if r.returncode != 0:
            fail(f"{path}: {r.stderr.strip()[-500:]}")
        else:
            print(f"ok - crash {n}: {os.path.basename(path)} recovered and checked", flush=True)
finally:
    stop_all(procs)
print(f"{failures} failures")
sys.exit(1 if failures else 0)
