#!/bin/bash
# Steering a run and seeing why it waits: next, extend and note (each with
# --help, --json, and who in the file's /events); status shows a step's
# extension, a wait_until's condition with the live value and the distance,
# a prompt's countdown and the pause reason (an operator's, a device fault's);
# events carry clock times (UTC and local); abort asks on a terminal.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

# jget JSON EXPR: evaluate EXPR on the parsed JSON (as s), print the result.
jget() { "$PYTHON" -c "import json,sys; s=json.loads(sys.argv[1]); print($2)" "$1"; }
# wait_for STATE: status says STATE (bounded poll of the wait-free status).
wait_for() {
    for _ in $(seq 1 100); do
        [ "$(jget "$(ctl --json status)" 's["state"]')" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
# wait_step PATH: the run is in step PATH (bounded).
wait_step() {
    for _ in $(seq 1 100); do
        [ "$(jget "$(ctl --json status)" 's.get("step", {}).get("path")')" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
# on_tty ANSWER ARGS...: perfusectl ARGS with a terminal on stdin, answering ANSWER; prints its output.
on_tty() {
    local answer=$1
    shift
    timeout 30 "$PYTHON" - "$answer" "$BUILD/perfusectl" --socket "$SOCK" "$@" <<'PY'
import os, pty, subprocess, sys
answer, cmd = sys.argv[1], sys.argv[2:]
master, slave = pty.openpty()
p = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=slave)
os.close(slave)
out = b""
while b"Type yes" not in out:
    try:
        chunk = os.read(master, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.write(master, (answer + "\n").encode())
so, _ = p.communicate(timeout=20)
while True:
    try:
        chunk = os.read(master, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
print(out.decode(errors="replace") + so.decode(errors="replace"))
sys.exit(p.returncode)
PY
}

for c in next extend note; do
    out=$("$BUILD/perfusectl" "$c" --help); rc=$?
    if [ $rc -eq 0 ] && grep -q "^usage: perfusectl $c" <<<"$out" && grep -q "^example: perfusectl $c" <<<"$out"; then
        ok "$c --help has a usage line and an example"
    else
        not_ok "$c --help ($rc): $out"
    fi
done

start_daemon steer || { not_ok "daemon starts"; finish; }
cat >"$T/steer.yaml" <<'P'
perfuse: 1
name: steering
safe_state: {pump1: 0 uL/min}
steps:
  - {name: seeding, set: {pump1: 1 uL/min}, for: 1 h}
  - {name: warm, wait_until: incubator.temp >= 90 degC, timeout: 1 h, on_timeout: continue}
  - {name: change medium, prompt: Change the medium, timeout: 10 min, on_timeout: continue}
  - {name: flow, set: {pump1: 2 uL/min}, for: 1 h}
P
file=$(ctl run "$T/steer.yaml" --operator alice | sed -n 's/^file //p')
check "the run starts" test -n "$file"
wait_step 1 || not_ok "the run reaches step 1"

txt=$(ctl status)
check "a step just begun reads in whole units, not 0.00045 s" sh -c "grep '^step' <<'E' | grep -vq 'e-0\|0\.000'
$txt
E"
out=$(ctl --json extend "30 min"); rc=$?
check "extend 30 min is accepted (exit $rc)" test "$rc" -eq 0
check "status: the step lasts 1 h 30 min, 30 min of it extended" test "$(jget "$out" 's["step"]["duration_s"], s["step"]["extended_s"]')" = "5400.0 1800.0"
check "the text status says the step was extended" grep -q 'extended by 30 min' <<<"$(ctl status)"
ctl extend "0 s" >/dev/null 2>"$T/err"; rc=$?
check "extend by nothing is refused (exit $rc)" sh -c "[ $rc -eq 1 ] && grep -q 'positive duration' '$T/err'"
ctl extend "2 days" >/dev/null 2>"$T/err"; rc=$?
check "extend '2 days' suggests 'd' (exit $rc)" sh -c "[ $rc -eq 1 ] && grep -q \"did you mean 'd'\" '$T/err'"
ctl extend >/dev/null 2>&1; rc=$?
check "extend without a duration is a usage error (exit $rc)" test "$rc" -eq 2

out=$(ctl --json next); rc=$?
check "next ends the seeding step (exit $rc)" test "$rc" -eq 0
check "next: status is in the wait_until step" test "$(jget "$out" 's["step"]["path"]')" = 2
wait_for running
st=$(ctl --json status)
check "status: the wait's condition, target and unit" test "$(jget "$st" 's["step"]["condition"]["text"], s["step"]["condition"]["target"], s["step"]["condition"]["unit"]')" = "incubator.temp >= 90 degC 90.0 degC"
for _ in $(seq 50); do
    st=$(ctl --json status)
    [ "$(jget "$st" 's["step"]["condition"]["value"] is not None')" = True ] && break
    sleep 0.1
done
check "status: the live value and the distance to go" "$PYTHON" -c "
import json,sys; c=json.loads(sys.argv[1])['step']['condition']
sys.exit(0 if isinstance(c['value'], float) and abs(c['distance'] - (90 - c['value'])) < 1e-9 else 1)" "$st"
check "status: the wait's timeout counts down" "$PYTHON" -c "
import json,sys; t=json.loads(sys.argv[1])['step']; sys.exit(0 if t['timeout_s'] == 3600 and 3500 < t['timeout_left_s'] <= 3600 else 1)" "$st"
check "the text status shows the condition with the value" grep -q '^waiting   until incubator.temp >= 90 degC: now .* degC (.* degC to go)' <<<"$(ctl status)"

ctl next >/dev/null
wait_step 3 || not_ok "the run reaches the prompt"
st=$(ctl --json status)
check "status: the prompt's countdown" "$PYTHON" -c "
import json,sys; s=json.loads(sys.argv[1]); t=s['step']
sys.exit(0 if s['prompt'] == 'Change the medium' and t['timeout_s'] == 600 and 590 < t['timeout_left_s'] <= 600 else 1)" "$st"
check "the text status shows the prompt's timeout" grep -q '^timeout   in \(9\|10\) min' <<<"$(ctl status)"

ctl pause --reason "bubble in line 2" >/dev/null
st=$(ctl --json status)
check "status: the pause reason" test "$(jget "$st" 's["pause_reason"]')" = "bubble in line 2"
check "the text status shows the pause reason" grep -q '^paused    bubble in line 2' <<<"$(ctl status)"
ctl next >/dev/null 2>"$T/err"; rc=$?
check "next while paused is refused, saying to resume (exit $rc)" sh -c "[ $rc -eq 1 ] && grep -q 'resume it first' '$T/err'"
ctl resume >/dev/null
check "status: no pause reason once running" test "$(jget "$(ctl --json status)" 's["pause_reason"]')" = None

out=$(ctl --json note "medium changed, lot 2211" --operator alice); rc=$?
check "note --json answers with its times (exit $rc)" "$PYTHON" -c "
import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s['utc'].endswith('Z') and s['local'][19:20] == '.' and s['text'] == 'medium changed, lot 2211' else 1)" "$out"
out=$(ctl note "second note"); rc=$?
check "note prints when it was recorded (exit $rc)" grep -q "^note recorded at 20" <<<"$out"
ctl note "$(printf 'two\nlines')" >/dev/null 2>&1; rc=$?
check "a note of two lines is refused (exit $rc)" test "$rc" -eq 1
ctl note "$(head -c 300 /dev/zero | tr '\0' x)" >/dev/null 2>"$T/err"; rc=$?
check "a note longer than 200 bytes is refused (exit $rc)" sh -c "[ $rc -eq 1 ] && grep -q 'at most 200 bytes' '$T/err'"

ev=$(ctl --json events)
check "events --json carry UTC and local clock times" "$PYTHON" -c "
import json,sys,datetime
evs=json.loads(sys.argv[1])['events']
ok=all(e['utc'].endswith('Z') and len(e['local']) == 29 for e in evs)
a=datetime.datetime.fromisoformat(evs[0]['utc'].replace('Z','+00:00')); b=datetime.datetime.fromisoformat(evs[0]['local'])
sys.exit(0 if ok and abs((a-b).total_seconds()) < 0.002 else 1)" "$ev"
check "events show the date and clock time" grep -q '^20[0-9-]* [0-9:]*  *[0-9].* note ' <<<"$(ctl events)"

out=$(on_tty no abort --reason test); rc=$?
check "abort on a terminal asks, and 'no' does not abort (exit $rc)" test "$rc" -eq 1
check "abort on a terminal names the run and step" grep -q "Abort run .* step 3 change medium" <<<"$out"
check "abort on a terminal says it did not abort" grep -q "not aborted" <<<"$out"
check "the run still runs after 'no'" test "$(jget "$(ctl --json status)" 's["state"]')" = running
ctl abort --yes --reason "steering test done" >/dev/null </dev/null; rc=$?
check "abort --yes does not ask (exit $rc)" test "$rc" -eq 0
ctl --json wait >/dev/null

res=$("$PYTHON" - "$file" 2>&1 <<'PY'
import sys
sys.path.insert(0, "tests/lib")
from h5run import open_run, text
f = open_run(sys.argv[1])
ev = [(text(e["code"]), text(e["source"]), text(e["message"])) for e in f["events"]]
steps = [(text(s["path"]), text(s["outcome"])) for s in f["steps"]]
def has(code, needle):
    return any(c == code and needle in m for c, _, m in ev)
checks = [
    ("the file records extend with who", has("cmd_extend", "extend 30 min by uid")),
    ("the file records the refused extend", has("cmd_extend", "refused")),
    ("the file records next with who", has("cmd_next", "next by uid")),
    ("the file records the refused next while paused", any(c == "cmd_next" and "refused" in m for c, _, m in ev)),
    ("the step ended by next is 'skipped'", steps[0] == ("1", "skipped") and steps[1] == ("2", "skipped")),
    ("the note is in /events with who", has("note", "medium changed, lot 2211 (by alice (uid")),
]
for name, good in checks:
    print(("ok - " if good else "not ok - ") + name + ("" if good else ": %r %r" % (steps, ev)))
PY
)
while read -r line; do
    case $line in "ok - "*) ok "${line#ok - }";; "not ok - "*) not_ok "${line#not ok - }";; *) not_ok "reading the file: $line";; esac
done <<<"$res"

# A device fault's pause: the reason names the device.
cat >"$T/fault.yaml" <<'P'
perfuse: 1
name: fault pause
on_fault: pause
safe_state: {pump1: 0 uL/min}
steps:
  - {set: {pump1: 1 uL/min}, for: 1 h}
P
ctl_path=$(sed -n 's/.*"control": "\([^"]*\)".*/\1/p' "$T/steer/perfused.log" | head -1)
ctl run "$T/fault.yaml" >/dev/null
wait_step 1
check "inject: chip1 goes silent" test "$(sim_cmd "$ctl_path" "fault timeout:chip1,for=2s")" = ok
wait_for paused || not_ok "the fault pauses the run"
st=$(ctl --json status)
check "status: the pause reason names the faulted device" grep -q 'device chip1 faulted' <<<"$(jget "$st" 's["pause_reason"]')"
ctl abort --yes >/dev/null
finish
