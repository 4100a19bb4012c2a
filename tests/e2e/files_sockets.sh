#!/bin/bash
# Files and sockets perfused cannot be tricked by: a link planted at the
# journal's temporary name, a --socket path that is a file, a socket directory
# others may write, a server of another user answering perfusectl; the modes of
# what the daemon creates whatever the umask; and an alert command that
# inherits no descriptor but 0, 1 and 2.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

mode() { stat -c %a "$1"; }

# --- modes and the journal's temporary file, under umask 000
cat >"$T/p.yaml" <<'P'
perfuse: 1
name: files
rig: sim
on_restart: resume
safe_state: {pump1: 0 uL/min}
steps:
  - {name: first, set: {pump1: 10 uL/min}, for: 2 s}
  - {name: second, set: {pump1: 20 uL/min}, for: 2 s}
P
mkdir -m 0700 "$T/p" "$T/p/runs"
echo "not the journal" >"$T/victim"
ln -s "$T/victim" "$T/p/runs/run.journal.tmp"
umask 000
start_daemon p --socket "$T/p/sockdir/sock" || { not_ok "daemon starts"; finish; }
umask 022
SOCK="$T/p/sockdir/sock"
check "a missing socket directory is created 0755 ($(mode "$T/p/sockdir"))" test "$(mode "$T/p/sockdir")" = 755
check "the socket is 0660 ($(mode "$SOCK"))" test "$(mode "$SOCK")" = 660
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
timeout 10 sh -c "until [ -f '$T/p/runs/run.journal' ]; do sleep 0.1; done"
check "the run file is 0640 under umask 000 ($(mode "$file"))" test "$(mode "$file")" = 640
check "the journal is 0640 ($(mode "$T/p/runs/run.journal"))" test "$(mode "$T/p/runs/run.journal")" = 640
check "the journal is a regular file holding the run" sh -c "[ ! -L '$T/p/runs/run.journal' ] && grep -q '\"run_id\"' '$T/p/runs/run.journal'"
check "the link planted at run.journal.tmp was not written through" test "$(cat "$T/victim")" = "not the journal"
check "nothing is left at run.journal.tmp" test ! -e "$T/p/runs/run.journal.tmp" -a ! -L "$T/p/runs/run.journal.tmp"
ctl wait >/dev/null
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 20 >/dev/null
mkdir -m 0700 "$T/q"
umask 000
start_daemon q || { not_ok "daemon q starts"; finish; }
umask 022
check "a missing data directory is created 0750 under umask 000 ($(mode "$T/q/runs"))" test "$(mode "$T/q/runs")" = 750
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 20 >/dev/null

# --- the socket's path and directory; each refusal: exit 1, the reason, nothing removed
refused() {   # refused NAME SOCKET PATTERN: perfused must refuse SOCKET, saying PATTERN
    mkdir -p "$T/$1"
    timeout 30 "$BUILD/perfused" --sim --socket "$2" --data-dir "$T/$1/runs" 2>"$T/$1/perfused.log"
    local rc=$?
    check "$1: perfused refuses to start (exit $rc)" test $rc -eq 1
    check "$1: it says why" grep -qF "$3" "$T/$1/perfused.log"
    grep -F "$3" "$T/$1/perfused.log" | head -n 1 | cut -c1-220
}
mkdir -m 0700 "$T/file"
echo "precious" >"$T/file/data"
refused file "$T/file/data" "$T/file/data exists and is not a socket (a regular file)"
check "file: the file at --socket is kept" test "$(cat "$T/file/data")" = "precious"
mkdir -m 0777 "$T/world"
refused world "$T/world/sock" "run 'chmod go-w $T/world'"
check "world: no socket was made" test ! -e "$T/world/sock"
mkdir -m 0770 "$T/group"
refused group "$T/group/sock" "is writable by its group (mode 0770)"
mkdir -m 0700 "$T/other"
chown nobody "$T/other"
refused other "$T/other/sock" "belongs to nobody"

# --- perfusectl and a server of another user
mkdir -m 0755 "$T/cred"
cat >"$T/fake.py" <<'PY'
# A server that binds as root, then listens as nobody: SO_PEERCRED says nobody.
import os, pwd, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
pw = pwd.getpwnam("nobody")
os.setgid(pw.pw_gid)
os.setuid(pw.pw_uid)
s.listen(4)
s.settimeout(30)
print("ready", flush=True)
for _ in range(2):
    c, _ = s.accept()
    c.settimeout(3)
    got = b""
    try:
        c.sendall(b'{"perfused": "0.1.0", "protocol": 1}\n')
        while True:
            d = c.recv(4096)
            if not d:
                break
            got += d
            if b"\n" in got:
                c.sendall(b'{"id": 1, "ok": false, "error": {"code": "refused", "message": "fake"}}\n')
    except (socket.timeout, OSError):
        pass
    print("received", len(got), flush=True)
    c.close()
PY
"$PYTHON" "$T/fake.py" "$T/cred/sock" >"$T/fake.out" 2>"$T/fake.err" &
FAKE=$!; PIDS="$PIDS $FAKE"
timeout 10 sh -c "until grep -q ready '$T/fake.out'; do sleep 0.05; done"
timeout 20 "$BUILD/perfusectl" --socket "$T/cred/sock" abort --reason test >"$T/cred.out" 2>"$T/cred.err"
rc=$?
cat "$T/cred.err"
check "perfusectl refuses a server running as another user (exit $rc)" test $rc -eq 3
check "it names the server's user" grep -q "runs as nobody" "$T/cred.err"
timeout 10 sh -c "until grep -q received '$T/fake.out'; do sleep 0.05; done"
check "nothing was sent to that server ($(grep received "$T/fake.out" | head -n 1))" grep -qx "received 0" <(grep received "$T/fake.out" | head -n 1)
timeout 20 "$BUILD/perfusectl" --server-user nobody --socket "$T/cred/sock" status >/dev/null 2>&1
timeout 10 sh -c "until [ \$(grep -c received '$T/fake.out') -ge 2 ]; do sleep 0.05; done"
check "--server-user nobody names the expected user: the request goes out" \
    grep -qE "received [1-9]" <(grep received "$T/fake.out" | sed -n 2p)

# --- the alert command inherits only 0, 1 and 2: not the run file, not a
# descriptor perfused itself inherited without close-on-exec (fd 9 here)
start_sim sim --rig-out "$T/rig0.yaml" --control "$T/sim.sock" || { not_ok "perfuse-sim starts"; finish; }
sed "s|^rig: sim$|rig: sim\nalerts: {command: \"exec sleep 17.25\", min_interval: 1 s, max_per_hour: 100}|" \
    "$T/rig0.yaml" >"$T/rig.yaml"
mkdir -m 0700 "$T/al"
mkfifo "$T/al/ready"
# perfused inherits 0, 1, 2, the ready pipe (3) and fd 9, without close-on-exec,
# and nothing else (whatever this shell holds is closed on the way).
"$PYTHON" -c 'import os, sys; os.closerange(4, 9); os.closerange(10, 65536); os.execv(sys.argv[1], sys.argv[1:])' \
    "$BUILD/perfused" --rig "$T/rig.yaml" --socket "$T/al/sock" --data-dir "$T/al/runs" --ready-fd 3 \
    3>"$T/al/ready" 9>"$T/al/inherited" 2>"$T/al/perfused.log" &
DAEMON_PID=$!; PIDS="$PIDS $DAEMON_PID"; SOCK="$T/al/sock"
timeout 20 sh -c "read -r line <'$T/al/ready'"
cat >"$T/ask.yaml" <<'P'
perfuse: 1
name: ask
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {name: flow, set: {pump1: 10 uL/min}, for: 1 s}
  - {name: ask, prompt: Look at the chip}
P
file=$(ctl run "$T/ask.yaml" | sed -n 's/^file //p')
alert=""
for _ in $(seq 1 100); do alert=$(pgrep -P "$DAEMON_PID" -f "sleep 17.25" | head -n 1); [ -n "$alert" ] && break; sleep 0.1; done
check "the prompt's alert command runs" test -n "$alert"
fds=$(ls /proc/"$alert"/fd 2>/dev/null | sort -n | tr '\n' ' ')
echo "alert command's descriptors: $fds"
ls -l /proc/"$alert"/fd 2>/dev/null | sed 's/.*[0-9] //' | tail -n +2
check "only 0, 1 and 2 are open in it" test "$fds" = "0 1 2 "
check "the run file is not among them" sh -c "! ls -l /proc/$alert/fd | grep -qF '$file'"
[ -n "$alert" ] && kill -KILL "$alert" 2>/dev/null
# Every descriptor perfused opened itself (all but 0, 1, 2 and the inherited
# fd 9) carries close-on-exec (O_CLOEXEC is 02000000 in fdinfo's flags).
inherited=" 9 "
n=0; bad=""; h5=no
for f in /proc/"$DAEMON_PID"/fdinfo/*; do
    fd=${f##*/}
    [ "$fd" -le 2 ] && continue
    case "$inherited" in *" $fd "*) continue ;; esac
    flags=$(awk '/^flags:/ {print $2}' "$f" 2>/dev/null) || continue
    [ -n "$flags" ] || continue
    n=$((n + 1))
    [ "$(readlink /proc/"$DAEMON_PID"/fd/"$fd")" = "$file" ] && h5=yes
    [ $(( 0$flags & 02000000 )) -ne 0 ] || bad="$bad $fd:$(readlink /proc/"$DAEMON_PID"/fd/"$fd")"
done
check "every descriptor perfused opened is close-on-exec ($n checked, the run file among them: $h5)" \
    test -z "$bad" -a "$h5" = yes
[ -n "$bad" ] && echo "not close-on-exec:$bad"
ctl abort >/dev/null
finish
