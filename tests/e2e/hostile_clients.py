"""Hostile clients during a 10 Hz waveform run (hostile_clients.sh).

Two identical runs on one perfused --sim: a quiet one, then one during which
clients misbehave: an alias-bomb run request, a 60 KB deep-nesting run
request, 200 non-blocking connects in a burst, 100 clients that ask for the
event log three times and never read, and a client holding half a line. A
well-behaved client asks for the status every 100 ms throughout. The daemon
runs under a stand-in for systemd (NOTIFY_SOCKET, WATCHDOG_USEC) so that its
watchdog pings are observed.

Checked: every hostile request is accepted or refused cleanly; the
well-behaved client is answered within 50 ms every time; the watchdog pings
keep their period; the hostile run's sample rates and dispatch lateness stay
within 5 % and 5 ms of the quiet run's.

usage: hostile_clients.py BUILD SCRATCH_DIR
"""
import errno
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text  # noqa: E402
from perfused import start_perfused, stop_all  # noqa: E402

build, T = sys.argv[1], sys.argv[2]
# Bounds are for a normal build; `make asan` sets PERFUSE_TEST_SLOWDOWN (the
# sanitizers make every request several times slower) and they scale with it.
SLOWDOWN = float(os.environ.get("PERFUSE_TEST_SLOWDOWN", "1"))
MAX_CLIENTS = int(os.environ.get("HOSTILE_MAX_CLIENTS", "256"))
failures = 0


def check(cond, what):
    global failures
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    failures += not cond


PROTOCOL = """perfuse: 1
name: hostile clients
safe_state: {pump1: 0 uL/min}
steps:
  - name: tick
    repeat: 600
    steps:
      - {name: t, set: {valve1.position: 2}, for: 5 ms}
  - name: wave
    waveform: {pump1: {shape: sine, mean: 10 uL/min, amplitude: 5 uL/min, period: 2 s}}
    update_rate: 10 Hz
    for: 8 s
"""
# The tick steps fill the event log (1200 events), so that `events` replies are large.


def alias_bomb(keys=400, steps=300):
    """A YAML anchor on a map of many unknown channels, aliased in every step's set: (~13 KB)."""
    m = ", ".join(f"nochan{i}: 1" for i in range(keys))
    lines = ["perfuse: 1", "name: bomb", "safe_state: {pump1: 0 uL/min}", "steps:",
             f"  - {{set: &a {{{m}}}, for: 1 s}}"]
    lines += ["  - {set: *a, for: 1 s}"] * steps
    return "\n".join(lines) + "\n"


def deep_nesting(n=60000):
    return "perfuse: 1\nname: deep\nsteps: " + "[" * n + "\n"


d = os.path.join(T, "hostile")
os.makedirs(d, exist_ok=True)
sock_path = os.path.join(d, "sock")
notify_path = os.path.join(T, "notify")
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(notify_path)
pings = []
stop_pings = threading.Event()


def read_pings():
    ns.settimeout(0.5)
    while not stop_pings.is_set():
        try:
            if ns.recv(4096) == b"WATCHDOG=1":
                pings.append(time.monotonic())
        except socket.timeout:
            pass


os.environ.update(NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="400000")   # pings every 200 ms
procs = []
log = open(os.path.join(d, "perfused.log"), "w")
args = ["--sim", "--socket", sock_path, "--data-dir", os.path.join(d, "runs")]
if MAX_CLIENTS > 0:
    args += ["--max-clients", str(MAX_CLIENTS)]
daemon = start_perfused(build, args, log, procs)
pinger = threading.Thread(target=read_pings, daemon=True)
pinger.start()


def connect(timeout=10):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock_path)
    f = s.makefile("rb")
    json.loads(f.readline())        # the greeting
    return s, f


def call(s, f, req):
    s.sendall((json.dumps(req) + "\n").encode())
    while True:
        m = json.loads(f.readline())
        if "id" in m:
            return m


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as st:
        for line in st:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- hostile acts
results = {}


def bad_run(name, textp):
    """A run request with a hostile protocol: must come back refused as invalid, quickly."""
    t0 = time.monotonic()
    try:
        s, f = connect(timeout=30)
        m = call(s, f, {"id": name, "cmd": "run", "protocol_text": textp, "protocol_path": name + ".yaml"})
        s.close()
    except (OSError, ValueError) as e:
        m = {"error": {"message": f"no reply: {e}"}}
    results[name] = (m, time.monotonic() - t0)


def burst(n=200):
    """n non-blocking connects at once: each is accepted (greeting) or refused (busy)."""
    socks, connect_errors = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        e = s.connect_ex(sock_path)
        if e not in (0, errno.EINPROGRESS):
            connect_errors.append(errno.errorcode.get(e, str(e)))
            s.close()
            continue
        socks.append(s)
    accepted = refused = other = 0
    pending = {s: b"" for s in socks}
    deadline = time.monotonic() + 10
    while pending and time.monotonic() < deadline:
        r, _, _ = select.select(list(pending), [], [], 0.5)
        for s in r:
            try:
                chunk = s.recv(4096)
            except OSError:
                chunk = b""
            pending[s] += chunk
            if b"\n" in pending[s] or not chunk:
                line = pending.pop(s).split(b"\n")[0]
                try:
                    m = json.loads(line)
                except ValueError:
                    m = {}
                if "perfused" in m:
                    accepted += 1
                elif m.get("error", {}).get("code") == "busy":
                    refused += 1
                else:
                    other += 1
    other += len(pending)
    for s in socks:
        s.close()
    results["burst"] = (accepted, refused, other, connect_errors)


def silent_readers(n=100):
    """n clients that ask for the event log three times and never read a byte."""
    held = []
    req = b"".join(b'{"id": %d, "cmd": "events"}\n' % i for i in range(3))
    errors = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            s.connect(sock_path)
            s.sendall(req)
        except OSError as e:
            errors.append(e.strerror)
            s.close()
            continue
        held.append(s)
    results["readers"] = (len(held), errors)
    return held


# ---------------------------------------------------------------- one run
def one_run(hostile):
    s, f = connect()
    m = call(s, f, {"id": "run", "cmd": "run", "protocol_text": PROTOCOL, "protocol_path": "hostile.yaml"})
    if not m.get("ok"):
        print("run refused:", m)
        return None
    path = m["result"]["file"]
    # Wait (bounded) for the waveform step; the protocol has no step-change notification.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = call(s, f, {"id": "st", "cmd": "status"})["result"]
        if (st.get("step") or {}).get("name") == "wave":
            break
        time.sleep(0.05)
    t_wave = time.monotonic()
    held, threads = [], []
    rss0 = rss_kb(daemon.pid)
    # The well-behaved client: its own process, started before the abuse.
    probe = subprocess.Popen([sys.executable, "tests/e2e/status_probe.py", sock_path],
                             stdout=subprocess.PIPE)
    if probe.stdout.readline() != b"connected\n":
        print("the status probe did not connect")
    if hostile:
        half = socket.socket(socket.AF_UNIX)
        half.connect(sock_path)
        half.sendall(b'{"id": 1, "cmd": "sta')
        held.append(half)
        held += silent_readers()
        threads = [threading.Thread(target=bad_run, args=("alias_bomb", alias_bomb())),
                   threading.Thread(target=bad_run, args=("deep_nesting", deep_nesting())),
                   threading.Thread(target=burst)]
        for t in threads:
            t.start()
    probe_out = probe.communicate(timeout=600)[0] or b"{}"
    t_end = time.monotonic()
    m = json.loads(probe_out)
    latencies, state = m.get("latencies", []), m.get("state", "no answer from the status probe")
    for t in threads:
        t.join(timeout=30)
    rss1 = rss_kb(daemon.pid)
    m = call(s, f, {"id": "w", "cmd": "wait"})       # the file is closed
    timing = m["result"]["timing"]["dispatch"]
    for h in held:
        h.close()
    s.close()
    win = [p for p in pings if t_wave + 0.5 <= p <= t_end]
    gaps = [b - a for a, b in zip(win, win[1:])]
    return dict(path=path, state=state, latencies=latencies, timing=timing, gaps=gaps,
                rss=(rss0, rss1))


def rates(path):
    """Sample rates of the 10 Hz channels during the waveform step."""
    f = open_run(path)
    steps = f["steps"][:]
    wave = [s_ for s_ in steps if text(s_["name"]) == "wave"][0]
    out = {}
    for ch in ("chip1.pressure", "chip2.pressure", "chip1.flow"):
        t, _ = series(f, "channels", ch)
        inner = t[(t >= wave["start"] + 0.5) & (t <= wave["end"] - 0.5)]
        out[ch] = (len(inner) - 1) / (inner[-1] - inner[0]) if len(inner) > 2 else 0.0
    ev = [text(e["code"]) + " " + text(e["message"]) for e in f["events"][:]]
    f.close()
    return out, ev


try:
    quiet = one_run(False)
    check(quiet is not None and quiet["state"] == "completed", "the quiet run completes")
    hostile = one_run(True)
    check(hostile is not None and hostile["state"] == "completed", "the hostile run completes")
    if quiet and hostile:
        for name, want in (("alias_bomb", "aliases"), ("deep_nesting", "nested more than 64")):
            m, dt = results.get(name, ({"error": {"message": "not run"}}, 0))
            err = m.get("error", {})
            check(err.get("code") == "invalid" and want in err.get("message", ""),
                  f"the {name} run is refused cleanly in {dt * 1e3:.0f} ms: {str(err.get('message', m))[:100]!r}")
        nr, rerr = results.get("readers", (0, []))
        check(nr == 100, f"100 clients that never read are connected, each with 3 events requests "
                         f"({nr}; errors {rerr[:2]})")
        acc, ref, other, cerr = results.get("burst", (0, 0, 200, []))
        check(other == 0 and not cerr and acc + ref == 200,
              f"200 non-blocking connects: {acc} accepted, {ref} refused (busy), {other} neither, "
              f"connect errors {cerr[:3]}")
        lat = sorted(hostile["latencies"])
        bound = 0.050 * SLOWDOWN
        check(lat and lat[-1] < bound,
              f"the well-behaved client was answered within {bound * 1e3:.0f} ms every time ({len(lat)} requests; "
              f"median {lat[len(lat) // 2] * 1e3:.1f} ms, max {lat[-1] * 1e3:.1f} ms; "
              f"quiet max {max(quiet['latencies']) * 1e3:.1f} ms)")
        g = hostile["gaps"]
        qg = quiet["gaps"]
        check(len(g) > 10 and max(g) < 0.300,
              f"watchdog pings kept their 200 ms period under abuse (longest gap {max(g or [0]) * 1e3:.0f} ms, "
              f"{len(g)} pings; quiet run longest {max(qg or [0]) * 1e3:.0f} ms)")
        qr, _ = rates(quiet["path"])
        hr, hev = rates(hostile["path"])
        for ch in qr:
            check(qr[ch] > 0 and abs(hr[ch] - qr[ch]) / qr[ch] <= 0.05,
                  f"{ch}: {hr[ch]:.2f} Hz under abuse vs {qr[ch]:.2f} Hz quiet (within 5 %)")
        qt, ht = quiet["timing"], hostile["timing"]
        # p99, not the single worst command: one wake-up of a shared CI machine can make either
        # run's maximum (printed) tens of ms without the daemon being at fault.
        check(ht["p99_us"] <= qt["p99_us"] + 5000,
              f"dispatch lateness p99 {ht['p99_us'] / 1e3:.2f} ms under abuse vs {qt['p99_us'] / 1e3:.2f} ms "
              f"quiet (within 5 ms); max {ht['max_us'] / 1e3:.2f} ms vs {qt['max_us'] / 1e3:.2f} ms")
        lost = [e for e in hev if "sensor_lost" in e]
        check(not lost, f"no sensor_lost during the hostile run ({lost[:1]})")
        r0, r1 = hostile["rss"]
        print(f"  daemon RSS {r0 / 1024:.1f} MiB before the abuse, {r1 / 1024:.1f} MiB at its end")
    check(daemon.poll() is None, "the daemon is still running")
finally:
    stop_pings.set()
    stop_all(procs)
sys.exit(1 if failures else 0)
