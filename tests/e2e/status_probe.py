"""The well-behaved client of hostile_clients.py, in a process of its own.

It asks the daemon for its status every 100 ms until the run leaves
'running'. It prints 'connected' once it has the greeting, then one JSON
line: the latency of every request and the last state. It runs apart from the test's hostile threads so that their
work (which shares one interpreter lock) cannot delay its measurements.

usage: status_probe.py SOCKET
"""
import json
import socket
import sys
import time

s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rb")
json.loads(f.readline())            # the greeting
print("connected", flush=True)      # the test starts its abuse only now
latencies, state = [], "running"
while state == "running":
    t0 = time.monotonic()
    s.sendall(b'{"id": "st", "cmd": "status"}\n')
    while True:
        m = json.loads(f.readline())
        if "id" in m:
            break
    latencies.append(time.monotonic() - t0)
    state = m["result"]["state"]
    time.sleep(0.1)
print(json.dumps({"latencies": latencies, "state": state}), flush=True)
