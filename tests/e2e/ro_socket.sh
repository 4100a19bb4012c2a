#!/bin/bash
# The read-only socket beside the control socket: status, watch, events,
# devices and wait work there; everything that changes something is refused
# with a message naming the control socket, and the run goes on. Socket modes
# and groups; a read command falls back to it when the control socket refuses
# the user.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

cat >"$T/p.yaml" <<'P'
perfuse: 1
name: watched
safe_state: {pump1: 0 uL/min}
steps:
  - {name: hold, set: {pump1: 10 uL/min}, for: 60 s}
P
start_daemon ro --socket-group daemon --ro-socket-group nogroup || { not_ok "daemon starts"; finish; }
RO="$T/ro/perfused-ro.sock"
check "the read-only socket is beside the control socket" test -S "$RO"
check "the control socket is 0660, group daemon" test "$(stat -c '%a %G' "$SOCK")" = "660 daemon"
check "the read-only socket is 0660, group nogroup" test "$(stat -c '%a %G' "$RO")" = "660 nogroup"
ctl run "$T/p.yaml" >/dev/null
check "run started on the control socket" test "$(ctl --json status | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = running
rctl() { timeout 30 "$BUILD/perfusectl" --socket "$SOCK" --ro "$@"; }
check "status works on the read-only socket" test "$(rctl --json status | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = running
check "events works there" sh -c "'$BUILD/perfusectl' --socket '$SOCK' --ro events | grep -q run_started"
check "devices works there" sh -c "'$BUILD/perfusectl' --socket '$SOCK' --ro --json devices | grep -q '\"buses\"'"
"$PYTHON" - "$RO" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1]); f = s.makefile("rb")
hello = json.loads(f.readline())
ok = hello.get("read_only") is True
s.sendall(b'{"id": 1, "cmd": "watch", "interval": 0.2}\n')
ok &= json.loads(f.readline()).get("ok") is True
ok &= "watch" in json.loads(f.readline())
for cmd in ('{"id": 2, "cmd": "abort"}', '{"id": 3, "cmd": "set", "channel": "pump1", "value": "1 uL/min"}',
            '{"id": 4, "cmd": "ack", "alarm": "all"}', '{"id": 5, "cmd": "run", "protocol_text": "x", "protocol_path": "x"}'):
    s.sendall(cmd.encode() + b"\n")
    while True:
        m = json.loads(f.readline())
        if "watch" not in m:
            break
    ok &= m["ok"] is False and m["error"]["code"] == "refused" and "read-only socket" in m["error"]["message"]
print(("ok" if ok else "not ok") + " - greeting says read_only; watch streams; abort, set, ack and run refused there")
sys.exit(0 if ok else 1)
PY
check "the raw protocol on the read-only socket (see above)" test $? -eq 0
for cmd in abort pause "set pump1 1 uL/min" "ack all"; do
    out=$(rctl $cmd 2>&1); rc=$?
    check "perfusectl --ro $cmd is refused (exit 1) with a clear message" \
        sh -c "[ $rc -eq 1 ] && echo \"\$1\" | grep -q \"refused on the read-only socket .*use the control socket\"" _ "$out"
done
check "the run goes on" test "$(ctl --json status | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = running
# A user outside the operators' group: the control socket refuses them, the read commands
# fall back to the read-only socket (0666 here), the rest stays refused.
if [ "$(id -u)" = 0 ]; then
    ctl abort >/dev/null
    kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 20 >/dev/null
    start_daemon ro2 || { not_ok "daemon starts"; finish; }
    check "without --ro-socket-group the read-only socket is 0666" test "$(stat -c '%a' "$T/ro2/perfused-ro.sock")" = 666
    chmod 755 "$T" "$T/ro2"
    as_nobody() { PERFUSE_SOCKET="$SOCK" timeout 30 setpriv --reuid=nobody --regid=nogroup --clear-groups "$BUILD/perfusectl" "$@"; }
    check "status as another user falls back to the read-only socket" sh -c "$(declare -f as_nobody); SOCK='$SOCK' BUILD='$BUILD'; as_nobody status | grep -q '^state *idle'"
    out=$(as_nobody abort 2>&1)
    check "abort as another user is refused (cannot reach the control socket: exit 3)" test $? -eq 3
fi
# Viewers filling the read-only socket's connections never lock operators out:
# each socket has its own cap.
start_daemon ro3 --max-clients 2 || { not_ok "daemon starts with --max-clients 2"; finish; }
out=$(timeout 30 "$PYTHON" - "$T/ro3/perfused-ro.sock" "$SOCK" <<'PY'
import json, socket, sys
idle = []
for _ in range(3):
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
    idle.append((s, json.loads(s.makefile().readline())))
greet = [m.get("read_only") is True for _, m in idle[:2]]
busy = idle[2][1].get("error", {}).get("code")
c = socket.socket(socket.AF_UNIX); c.settimeout(5); c.connect(sys.argv[2])
f = c.makefile()
hello = json.loads(f.readline())
c.sendall(b'{"cmd":"status"}\n')
st = json.loads(f.readline())
print(all(greet), busy, "error" not in hello, st.get("ok"))
PY
)
check "two idle viewers fill the read-only socket, a third is refused busy, and the control socket still answers ($out)" \
    test "$out" = "True busy True True"
# An unknown group is refused at start, with the fix named.
out=$("$BUILD/perfused" --sim --socket "$T/bad.sock" --data-dir "$T/badruns" --socket-group no-such-group-x 2>&1)
check "an unknown --socket-group stops the start with a clear message" sh -c "echo \"\$1\" | grep -q \"unknown group 'no-such-group-x'.*groupadd\"" _ "$out"
finish
