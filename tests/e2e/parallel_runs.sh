#!/bin/bash
# Several runs on one rig at once: four protocols on pump1 and pump2 (one
# shared New Era line), a Reglo channel and a Harvard pump. One is paused and
# resumed, one aborted, one stops on its own safe-stop limit, one completes;
# each file holds its own steps, events and setpoints only, and the others go
# on untouched. A run that needs an actuator another run holds is refused,
# naming the holder; a run-scoped command without --run is refused while
# several runs go, listing them.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig.yaml" --lab-devices || { not_ok "perfuse-sim starts"; finish; }
start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" ||
    { not_ok "daemon starts"; finish; }

cat >"$T/a.yaml" <<'P'
perfuse: 1
name: dose A
safe_state: {pump1: 0 uL/min}
steps:
  - {name: a1, set: {pump1: 11 uL/min}, for: 4 s}
  - {name: a2, set: {pump1: 12 uL/min}, for: 2 s}
P
cat >"$T/b.yaml" <<'P'
perfuse: 1
name: dose B
safe_state: {pump2: 0 uL/min}
steps:
  - {name: b1, set: {pump2: 21 uL/min}, for: 60 s}
P
cat >"$T/c.yaml" <<'P'
perfuse: 1
name: perfusion C
safe_state: {perist1: 0 uL/min}
limits:
  - {channel: incubator.temp, max: 1 degC, for: 2 s, action: safe-stop}
steps:
  - {name: c1, set: {perist1: 300 uL/min}, for: 60 s}
P
cat >"$T/d.yaml" <<'P'
perfuse: 1
name: control D
safe_state: {hpump1: 0 uL/min}
record: [incubator.temp]
steps:
  - {name: d1, set: {hpump1: 31 uL/min}, for: 3 s}
  - {name: d2, set: {hpump1: 32 uL/min}, for: 2 s}
P
cat >"$T/e.yaml" <<'P'
perfuse: 1
name: clash
steps:
  - {set: {pump1: 5 uL/min}, for: 1 s}
P

runfile() { sed -n 's/^file //p' <<<"$1"; }
# js EXPR: evaluate EXPR on `status --json` as s (bounded: 10 s until true).
js() {
    for i in $(seq 100); do
        ctl --json status 2>/dev/null | "$PYTHON" -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" && return 0
        sleep 0.1
    done
    return 1
}
# run_state NAME: the state of run NAME in the status list.
run_state() {
    ctl --json status | "$PYTHON" -c "import json,sys
print([r['state'] for r in json.load(sys.stdin)['runs'] if r['name'] == sys.argv[1]][0])" "$1"
}
# setpoint CH: the setpoint status shows for channel CH.
setpoint() {
    ctl --json status | "$PYTHON" -c "import json,sys
print([c.get('setpoint') for c in json.load(sys.stdin)['channels'] if c['name'] == sys.argv[1]][0])" "$1"
}

out_a=$(ctl run "$T/a.yaml" --name dose-a); fa=$(runfile "$out_a")
check "run A starts with its name" grep -q "^name dose-a$" <<<"$out_a"
fb=$(runfile "$(ctl run "$T/b.yaml")")
fc=$(runfile "$(ctl run "$T/c.yaml" --name perf-c)")
fd=$(runfile "$(ctl run "$T/d.yaml")")
check "four runs start, four files" test -n "$fa" -a -n "$fb" -a -n "$fc" -a -n "$fd"
check "four different files" test "$(printf '%s\n' "$fa" "$fb" "$fc" "$fd" | sort -u | wc -l)" -eq 4
check "status lists four runs going, named" js "len(s['runs']) == 4 and s['state'] == 'several' and \
sorted(r['name'] for r in s['runs']) == ['control-d', 'dose-a', 'dose-b', 'perf-c']"
ida=$(ctl --json status --run dose-a | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['run_id'])")

ctl run "$T/e.yaml" >/dev/null 2>"$T/clash.err"; rc=$?
check "a run on pump1 while dose-a holds it is refused (exit $rc)" test "$rc" -ne 0
check "  ... naming the channel and the holder" grep -q "pump1.flow is held by run dose-a (${ida:0:4}) until it ends" "$T/clash.err"
ctl run "$T/b.yaml" --name dose-a >/dev/null 2>"$T/dup.err"
check "a second run called dose-a is refused" grep -q "a run called 'dose-a' is going" "$T/dup.err"

ctl pause >/dev/null 2>"$T/norun.err"; rc=$?
check "pause without --run is refused while four runs go (exit $rc)" test "$rc" -ne 0
check "  ... and the message lists the runs" grep -q "4 runs are going: .*dose-a (.*perf-c" "$T/norun.err"

check "pump1 and pump2 run at their setpoints" js "[c.get('setpoint') for c in s['channels'] if c['name'] in ('pump1.flow', 'pump2.flow')] == [11.0, 21.0]"
check "pause dose-a" sh -c "'$BUILD/perfusectl' --socket '$SOCK' pause --run dose-a --reason bubble >/dev/null"
check "  ... dose-a is paused" test "$(run_state dose-a)" = paused
check "  ... dose-b still runs, pump2 still at 21" sh -c "test '$(run_state dose-b)' = running && test '$(setpoint pump2.flow)' = 21.0"
check "abort dose-b" sh -c "'$BUILD/perfusectl' --socket '$SOCK' abort --run dose-b --reason unneeded >/dev/null"
check "  ... pump2 goes to its safe state 0" js "[c.get('setpoint') for c in s['channels'] if c['name'] == 'pump2.flow'] == [0.0]"
check "  ... dose-a is still paused at 11 on pump1, hpump1 and perist1 untouched" \
    js "[r['state'] for r in s['runs'] if r['name'] == 'dose-a'] == ['paused'] and \
{c['name']: c.get('setpoint') for c in s['channels']}['pump1.flow'] == 11.0 and \
{c['name']: c.get('setpoint') for c in s['channels']}['perist1.flow'] in (300.0, 0.0)"
check "resume dose-a" sh -c "'$BUILD/perfusectl' --socket '$SOCK' resume --run dose-a >/dev/null"
check "perf-c stops on its own safe-stop limit" js "[r['state'] for r in s['runs'] if r['name'] == 'perf-c'] == ['faulted']"
check "  ... perist1 is in its safe state, pump1 and hpump1 still driven" \
    js "{c['name']: c.get('setpoint') for c in s['channels']}['perist1.flow'] == 0.0 and \
{c['name']: c.get('setpoint') for c in s['channels']}['hpump1.flow'] in (31.0, 32.0) and \
[r['state'] for r in s['runs'] if r['name'] in ('dose-a', 'control-d')] == ['running', 'running']"
check "wait --run control-d: completed" sh -c "'$BUILD/perfusectl' --socket '$SOCK' --json wait --run control-d | grep -q '\"state\": \"completed\"'"
check "wait --run dose-a: completed after its pause" sh -c "'$BUILD/perfusectl' --socket '$SOCK' --json wait --run dose-a | grep -q '\"state\": \"completed\"'"
check "status --run dose-b shows it aborted" sh -c "'$BUILD/perfusectl' --socket '$SOCK' --json status --run dose-b | grep -q '\"state\": \"aborted\"'"
check "events --run perf-c has its limit trip" sh -c "'$BUILD/perfusectl' --socket '$SOCK' --json events --run perf-c | grep -q 'incubator.temp'"
# A run's own limit alarm is that run's: listed with its name, shown to it and not to the others.
"$BUILD/perfusectl" --socket "$SOCK" --json status --run perf-c >"$T/st-c.json"
"$BUILD/perfusectl" --socket "$SOCK" --json status --run control-d >"$T/st-d.json"
check "perf-c's limit alarm names its run, and status --run perf-c lists it" "$PYTHON" -c "
import json, sys
a = [x for x in json.load(open(sys.argv[1]))['alarms'] if x['source'] == 'incubator.temp']
sys.exit(0 if a and all(x.get('run') == 'perf-c' for x in a) else 1)" "$T/st-c.json"
check "  ... status --run control-d does not list it" "$PYTHON" -c "
import json, sys
sys.exit(1 if any(x['source'] == 'incubator.temp' for x in json.load(open(sys.argv[1]))['alarms']) else 0)" "$T/st-d.json"

# Each file: its own steps, its outcome, and setpoints only on its own channel.
check_file() {
    "$PYTHON" - "$@" <<'PY'
import h5py, sys
path, state, chan, steps, code = sys.argv[1:6]
f = h5py.File(path, "r")
ok = True
got = f.attrs["state"]
got = got.decode() if isinstance(got, bytes) else str(got)
if got != state:
    print(path, "state", got, "not", state); ok = False
names = [r["name"].decode() for r in f["steps"]]
if names != steps.split(","):
    print(path, "steps", names); ok = False
for ch in f["setpoints"]:
    vals = f["setpoints"][ch]["value"][:]
    if ch != chan and len(vals) > 0:
        print(path, "has setpoints on", ch, list(vals[:5])); ok = False
if len(f["setpoints"][chan]["value"][:]) == 0:
    print(path, "no setpoint on", chan); ok = False
codes = [e["code"].decode() for e in f["events"]]
if code not in codes:
    print(path, "no", code, "event"); ok = False
sys.exit(0 if ok else 1)
PY
}
check "dose-a's file: completed, a1 a2, setpoints only on pump1, its pause" check_file "$fa" completed pump1.flow a1,a2 cmd_pause
check "dose-b's file: aborted, b1, setpoints only on pump2, its abort" check_file "$fb" aborted pump2.flow b1 cmd_abort
check "perf-c's file: faulted, c1, setpoints only on perist1, its limit" check_file "$fc" faulted perist1.flow c1 alarm_raised
check "control-d's file: completed, d1 d2, setpoints only on hpump1" check_file "$fd" completed hpump1.flow d1,d2 run_completed
check "the files record their claims; control-d only its own channels and its 'record:'" "$PYTHON" - "$fa" "$fc" "$fd" <<'PY'
import h5py, sys
def s(v): return v.decode() if isinstance(v, bytes) else str(v)
a, c, d = (h5py.File(p, "r") for p in sys.argv[1:4])
assert s(a.attrs["claims"]) == "pump1.flow" and s(a.attrs["sensors"]) == "", dict(a.attrs)
assert s(c.attrs["claims"]) == "perist1.flow" and s(c.attrs["sensors"]) == "incubator.temp", dict(c.attrs)
assert "chip1.pressure" in a["channels"] and "hpump1.flow" in a["channels"], list(a["channels"])
chans = sorted(k for k in d["channels"] if not k.endswith(".fill"))
assert chans == ["hpump1.flow", "incubator.temp"], chans
assert sorted(d["setpoints"]) == ["hpump1.flow"], list(d["setpoints"])
PY
check "no other run's pause or abort in control-d's file" "$PYTHON" -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r')
codes = [e['code'].decode() for e in f['events']]
sys.exit(1 if 'cmd_pause' in codes or 'cmd_abort' in codes else 0)" "$fd"
check "perf-c's limit alarm is in its own file only, not in dose-a's or control-d's" "$PYTHON" -c "
import h5py, sys
def trips(p):
    f = h5py.File(p, 'r')
    return [e for e in f['events'] if e['source'].decode() == 'incubator.temp' and e['code'].decode() == 'alarm_raised']
sys.exit(0 if trips(sys.argv[1]) and not trips(sys.argv[2]) and not trips(sys.argv[3]) else 1)" "$fc" "$fa" "$fd"

# A version-1 client, which knows nothing of several runs, works with one run going.
ctl run "$T/b.yaml" >/dev/null
check "a version-1 client: greeting, status, pause and abort of the one run" "$PYTHON" - "$SOCK" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
f = s.makefile("rw")
hello = json.loads(f.readline())
assert hello["protocol"] == 1 and 2 in hello["protocols"], hello
def call(req):
    f.write(json.dumps(req) + "\n"); f.flush()
    r = json.loads(f.readline())
    assert r["ok"], r
    return r["result"]
st = call({"id": 1, "cmd": "status"})
assert st["state"] == "running" and st["protocol"] == "dose B" and st["run_active"], st
assert call({"id": 2, "cmd": "pause", "reason": "v1"})["state"] == "paused"
assert call({"id": 3, "cmd": "abort", "reason": "v1"})["state"] == "aborted"
PY
finish
