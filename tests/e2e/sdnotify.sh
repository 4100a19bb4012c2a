#!/bin/bash
# perfused under systemd's notify protocol, with a socket standing in for
# systemd: READY=1 with a status once the control socket is up, WATCHDOG=1
# pings at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
mkdir -p "$T/n"
timeout 60 "$PYTHON" - "$BUILD" "$T" <<'PY'
import os, signal, socket, subprocess, sys, time
build, T = sys.argv[1], sys.argv[2]
path = os.path.join(T, "notify")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(15)
env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
p = subprocess.Popen([f"{build}/perfused", "--sim", "--socket", os.path.join(T, "n", "sock"),
                      "--data-dir", os.path.join(T, "n", "runs")], env=env,
                     stderr=open(os.path.join(T, "n", "perfused.log"), "w"))
bad = 0
def need(cond, what):
    global bad
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    bad += not cond
try:
    first = s.recv(4096).decode()
    need(first.startswith("READY=1") and "STATUS=rig sim; control socket" in first, f"READY=1 with a status: {first!r}")
    need(os.path.exists(os.path.join(T, "n", "sock")), "the control socket exists when READY is sent")
    t0 = time.monotonic()
    pings = 0
    while time.monotonic() - t0 < 1.5:
        if s.recv(4096).decode() == "WATCHDOG=1":
            pings += 1
    need(5 <= pings <= 10, f"WATCHDOG=1 every 200 ms ({pings} in 1.5 s)")
    p.send_signal(signal.SIGTERM)
    msgs = []
    while True:
        m = s.recv(4096).decode()
        msgs.append(m)
        if m.startswith("STOPPING=1"):
            break
    need(True, "STOPPING=1 on SIGTERM")
    need(p.wait(timeout=20) == 0, "perfused exits 0")
finally:
    if p.poll() is None:
        p.kill()
sys.exit(1 if bad else 0)
PY
check "the systemd notify protocol (see above)" test $? -eq 0
if command -v systemd-analyze >/dev/null; then
    sed "s|/usr/local/bin/perfused|$PWD/$BUILD/perfused|" scripts/perfused.service >"$T/perfused.service"
    out=$(systemd-analyze verify "$T/perfused.service" 2>&1)
    check "the shipped unit file verifies (${out:-no complaints})" test -z "$out"
fi
finish
