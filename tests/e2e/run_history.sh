#!/bin/bash
# A run's record for the people who read it: the protocol's description, a
# step's note, run --sample and --notes land in the run file (/sample as
# NXsample, root attributes); after a daemon restart `events` still lists the
# whole history with clock times, an extension survives, and a running watch
# reconnects by itself. The messages a technician meets in protocol and rig
# files (units, a decimal comma, tabs, a range, a typo, a line too slow).
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

# jget JSON EXPR: evaluate EXPR on the parsed JSON (as s), print the result.
jget() { "$PYTHON" -c "import json,sys; s=json.loads(sys.argv[1]); print($2)" "$1"; }
# status_until PYTHON-EXPR: poll the JSON status (bounded, 15 s) until EXPR holds for it (s).
status_until() {
    for _ in $(seq 1 150); do
        ctl --json status 2>/dev/null | "$PYTHON" -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" && return 0
        sleep 0.1
    done
    return 1
}
# check_msg NAME FILE PATTERN [ARGS...]: perfusectl check FILE [ARGS] fails, saying PATTERN.
check_msg() {
    local name=$1 file=$2 pat=$3 out rc
    shift 3
    out=$("$BUILD/perfusectl" check "$file" "$@" 2>&1); rc=$?
    if [ $rc -eq 1 ] && grep -qF -- "$pat" <<<"$out"; then ok "$name"; else not_ok "$name (exit $rc): $out"; fi
}

# --- messages in protocol and rig files
printf 'perfuse: 1\nname: t\nsteps:\n\t- {set: {pump1: 1 uL/min}, for: 1 s}\n' >"$T/tab.yaml"
check_msg "a tab: said in plain words, at 4:1" "$T/tab.yaml" \
    "tab.yaml:4:1: error: a tab character: tabs are not allowed for indentation in YAML; use spaces"
printf 'perfuse: 1\nname: t\nsteps:\n  - {repeat: 0, steps: [{set: {pump1: 1 uL/min}, for: 1 s}]}\n' >"$T/rep.yaml"
check_msg "repeat: 0 names its key and range" "$T/rep.yaml" "rep.yaml:4:14: error: repeat: 0 is out of range (repeat must be from 1 to"
printf 'perfuse: 1\nname: t\nsteps:\n  - set:\n      pump1: 1,5 uL/min\n    for: 2 days\n' >"$T/comma.yaml"
check_msg "a decimal comma gets a did-you-mean" "$T/comma.yaml" "'1,5 uL/min' has a decimal comma: did you mean 1.5 uL/min?"
check_msg "days gets a suggestion" "$T/comma.yaml" "unknown time unit 'days' (did you mean 'd'?"
printf 'perfuse: 1\nname: t\nsteps:\n  - {name: n\x01, set: {pump1: 1 uL/min}, for: 1 s}\n' >"$T/ctlchar.yaml"
check_msg "a control character: line and column, in plain words" "$T/ctlchar.yaml" "ctlchar.yaml:4:13: error: the text cannot be read here"
cat >"$T/units.yaml" <<'P'
perfuse: 1
name: units people type
description: Gut-on-chip, week 1; the apical channel only.
steps:
  - {set: {pump1: 30 µL/h}, for: 1 s, note: micro sign}
  - {set: {pump1: 30 μL/h}, for: 1 s, note: Greek mu}
  - {set: {pump1: 0.1 uL/s}, for: 1 s}
  - {set: {pump1: 1.44 mL/d}, for: 1 s}
  - {set: {incubator.setpoint: 37 °C}, for: 1 s}
P
out=$("$BUILD/perfusectl" check "$T/units.yaml" 2>&1); rc=$?
check "µL/h, μL/h, uL/s, mL/d, °C, description and note are accepted (exit $rc)" test "$rc" -eq 0 || echo "$out"
mkdir -p "$T/rigs"
cp -r protocols/profiles "$T/profiles"
sed 's/driver: newera, bus: pumps, address: 0/driver: new-era, bus: pumps, address: 0/; s/driver: modbus, bus: sensors, unit: 2/driver: modbus, bus: sensor, unit: 2/' \
    protocols/rigs/sim.yaml >"$T/rigs/typo.yaml"
check_msg "rig: driver new-era gets 'newera'" "$T/units.yaml" "unknown driver 'new-era' (did you mean 'newera'?" --rig "$T/rigs/typo.yaml"
check_msg "rig: bus sensor gets 'sensors'" "$T/units.yaml" "unknown bus 'sensor' (did you mean 'sensors'?" --rig "$T/rigs/typo.yaml"
sed 's|profile: ../profiles/chip-sensor-o2.yaml}|profile: ../profiles/chip-sensor-o2.yaml, sample_hz: 500}|' \
    protocols/rigs/sim.yaml >"$T/rigs/fast.yaml"
check_msg "rig: 500 Hz on a 19200-baud Modbus line is refused with the arithmetic" "$T/units.yaml" \
    "bus 'sensors' (modbus-rtu, 19200 baud) cannot carry its sample rates" --rig "$T/rigs/fast.yaml"
check_msg "rig: the arithmetic is shown" "$T/units.yaml" "x 22 x 10 = " --rig "$T/rigs/fast.yaml"

# --- metadata, history across a restart, watch reconnecting
start_sim sim --rig-out "$T/rig.yaml" || { not_ok "perfuse-sim starts"; finish; }
mkdir -p "$T/d"
start() { start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs"; }
start || { not_ok "daemon starts"; finish; }
cat >"$T/long.yaml" <<'P'
perfuse: 1
name: history
rig: sim
description: |
  Gut-on-chip, week 1.
  Caco-2 on the apical side.
on_restart: resume
safe_state: {pump1: 0 uL/min}
steps:
  - {name: seeding, set: {pump1: 1 uL/min}, for: 1 h, note: keep the lid closed}
  - {name: flow, set: {pump1: 2 uL/min}, for: 1 h}
  - {name: rest, set: {pump1: 0 uL/min}, for: 1 h}
P
out=$(ctl run "$T/long.yaml" --operator alice --sample chip_id=C-0142 --sample cell_line=Caco-2 \
      --sample passage=12 --notes "medium lot 2211")
file=$(sed -n 's/^file //p' <<<"$out")
check "run with --sample and --notes starts" test -n "$file"
ctl run "$T/long.yaml" --sample "chip id=1" >/dev/null 2>"$T/err"; rc=$?
check "a sample key with a space is refused (exit $rc)" sh -c "[ $rc -eq 1 ] && grep -q \"use letters, digits and '_'\" '$T/err'"
status_until "s.get('step', {}).get('name') == 'seeding'" || not_ok "the run reaches step 1"
st=$(ctl --json status)
check "status shows the step's note" test "$(jget "$st" 's["step"].get("note")')" = "keep the lid closed"
ctl note "before the restart" >/dev/null
ctl next >/dev/null
status_until "s.get('step', {}).get('name') == 'flow'" || not_ok "next reaches step 2"
ctl extend "30 min" >/dev/null
timeout 60 "$BUILD/perfusectl" --socket "$T/sock" watch --interval 0.5 >"$T/watch.out" 2>"$T/watch.err" &
WATCH=$!
PIDS="$PIDS $WATCH"
timeout 10 sh -c "until grep -q 'step 2' '$T/watch.out'; do sleep 0.1; done"
before=$(grep -c . "$T/watch.out")
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
start || { not_ok "daemon restarts"; finish; }
status_until "s.get('run_active') and s.get('state') == 'running'" || not_ok "the run continues after the restart"
ev=$(ctl --json events)
check "events after the restart still list the run's start and the note before it" "$PYTHON" -c "
import json,sys; e=json.loads(sys.argv[1])['events']; codes=[x['code'] for x in e]
sys.exit(0 if e[0]['seq'] == 0 and 'run_started' in codes and any(x['code'] == 'note' and 'before the restart' in x['message'] for x in e) and 'restart' in codes else 1)" "$ev"
check "the history's clock times are the run's (UTC and local)" "$PYTHON" -c "
import json,sys,datetime
e=json.loads(sys.argv[1])['events']; t0=datetime.datetime.fromisoformat(e[0]['utc'].replace('Z','+00:00'))
age=(datetime.datetime.now(datetime.timezone.utc)-t0).total_seconds()
sys.exit(0 if 0 <= age < 120 and all(x['local'][19] == '.' for x in e) else 1)" "$ev"
st=$(ctl --json status)
check "a run steered by next and extend continues in its step after the restart" test "$(jget "$st" 's["step"]["path"], s["step"]["duration_s"], s["step"]["extended_s"]')" = "2 5400.0 1800.0"
check "the time next took off stays off after the restart" "$PYTHON" -c "
import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s['shift_s'] < -3500 and s['planned_total_s'] == 12600 else 1)" "$st"
timeout 20 sh -c "until grep -q 'reconnected' '$T/watch.err'; do sleep 0.1; done"
check "watch says the daemon went and reconnects" sh -c "grep -q 'reconnecting' '$T/watch.err' && grep -q 'reconnected' '$T/watch.err'"
timeout 10 sh -c "until [ \$(grep -c . '$T/watch.out') -gt $((before + 2)) ]; do sleep 0.1; done"
check "watch goes on printing after the restart" test "$(grep -c . "$T/watch.out")" -gt "$((before + 2))"
check "watch is still running" kill -0 "$WATCH"
kill -TERM "$WATCH" 2>/dev/null
ctl abort --yes >/dev/null
ctl wait >/dev/null

res=$("$PYTHON" - "$file" 2>&1 <<'PY'
import sys
sys.path.insert(0, "tests/lib")
from h5run import open_run, text
f = open_run(sys.argv[1])
s = f["sample"]
ev = [(text(e["code"]), text(e["message"])) for e in f["events"]]
checks = [
    ("/sample is an NXsample group", text(s.attrs["NX_class"]) == "NXsample"),
    ("the sample fields are in /sample", {k: text(s[k][()]) for k in s} == {"chip_id": "C-0142", "cell_line": "Caco-2", "passage": "12"}),
    ("the protocol's description is a root attribute", text(f.attrs["description"]) == "Gut-on-chip, week 1.\nCaco-2 on the apical side.\n"),
    ("the notes are a root attribute", text(f.attrs["notes"]) == "medium lot 2211"),
    ("the step's note is an event", ("step_note", "step 1 note: keep the lid closed") in ev),
]
for name, good in checks:
    print(("ok - " if good else "not ok - ") + name)
PY
)
while read -r line; do
    case $line in "ok - "*) ok "${line#ok - }";; "not ok - "*) not_ok "${line#not ok - }";; *) not_ok "reading the file: $line";; esac
done <<<"$res"
finish
