"""Helpers for Python end-to-end tests that drive the real programs."""
import os
import subprocess


def start_perfused(build, args, log, procs):
    """Start perfused with ARGS (plus --ready-fd), log to the open file LOG, record the
    process in PROCS for cleanup, and return it once it says READY=1. The line is an
    event: a daemon that dies first closes the pipe, and this raises."""
    r, w = os.pipe()
    p = subprocess.Popen([f"{build}/perfused", *args, "--ready-fd", str(w)], pass_fds=(w,),
                         stdout=log, stderr=log)
    os.close(w)
    procs.append(p)
    with os.fdopen(r) as f:
        line = f.readline().strip()
    if line != "READY=1":
        raise RuntimeError(f"perfused did not become ready (see {getattr(log, 'name', 'its log')})")
    return p


def perfusectl(build, sock, *args, timeout=60):
    """Run perfusectl against the daemon on SOCK; the completed process, output as text."""
    return subprocess.run([f"{build}/perfusectl", "--socket", sock, *args], capture_output=True,
                          text=True, timeout=timeout)


def stop_all(procs):
    """Kill whatever of PROCS is still running, and reap it."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
