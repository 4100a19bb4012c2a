#!/bin/bash
# A crash in the first moment of a run: its journal is on disk, its run file
# is not yet (the recorder had not flushed its structure). The file is made
# so after kill -9: emptied (as such a crash leaves it) or deleted. After the
# restart the run goes on (on_restart: resume) or is closed as interrupted
# (safe-stop) in a new file, FILE-continued.h5, of the same run, with a
# restart event, a run_file_replaced event and alarm naming both files; the
# empty file is kept as FILE.h5.unreadable; a second crash goes on in the new
# file, as the journal now says.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig.yaml" --trace "$T/trace" || { not_ok "perfuse-sim starts"; finish; }
start() { start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs"; }
# js EXPR: wait (bounded, 15 s) until EXPR holds for `status --json` as s.
js() {
    for _ in $(seq 150); do
        ctl --json status 2>/dev/null | "$PYTHON" -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" && return 0
        sleep 0.1
    done
    return 1
}
# journal_names SUFFIX: wait (bounded, 10 s) until run.journal names a file ending in SUFFIX.
journal_names() {
    timeout 10 sh -c "until grep -q '\"file\": \".*$1\"' '$T/runs/run.journal' 2>/dev/null; do sleep 0.1; done"
}
# crash_first_moment PROTOCOL EDIT: start PROTOCOL, kill -9 perfused once its
# journal is written, then EDIT the run file ("empty" or "delete"), restart.
# Sets FILE (the run's first file), ID (its run id), LINE (the trace's length then).
crash_first_moment() {
    FILE=$(ctl run "$1" | sed -n 's/^file //p')
    journal_names "$(basename "$FILE")" || echo "no journal for $FILE" >&2
    kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
    ID=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['run_id'])" "$T/runs/run.journal")
    case $2 in
        empty) : >"$FILE" ;;
        delete) rm -f "$FILE" ;;
    esac
    LINE=$(wc -l <"$T/trace")
    start
}
# newfile_ok PATH STATE ID OLD ONR: PATH is a run file of run ID in STATE, continued
# from OLD (its name), with a restart event (on_restart ONR), a run_file_replaced
# warning and alarm naming OLD and PATH, and the protocol's steps.
newfile_ok() {
    "$PYTHON" - "$@" <<'PY'
import h5py, os, sys
path, state, rid, old, onr = sys.argv[1:6]
s = lambda v: v.decode() if isinstance(v, bytes) else str(v)
f = h5py.File(path, "r")
a = {k: s(v) for k, v in f.attrs.items() if isinstance(v, (bytes, str))}
ev = [(s(e["severity"]), s(e["code"]), s(e["message"])) for e in f["events"]]
bad = []
if a.get("state") != state: bad.append("state %s" % a.get("state"))
if a.get("run_id") != rid: bad.append("run_id %s" % a.get("run_id"))
if a.get("continued_from") != os.path.basename(old): bad.append("continued_from %s" % a.get("continued_from"))
if "protocol" not in f or not s(f["protocol"].attrs.get("sha256", "")): bad.append("no /protocol@sha256")
# The restart into this file counts the gap from the journal; a later one from the file.
rs = [m for v, c, m in ev if c == "restart"]
if not rs or "counted from the journal's last write" not in rs[0] or \
        any("on_restart: " + onr not in m for m in rs) or any("journal" in m for m in rs[1:]):
    bad.append("restart %s" % rs)
o, n = os.path.basename(old), os.path.basename(path)
rep = [m for v, c, m in ev if c == "run_file_replaced" and v == "warning"]
if len(rep) != 1 or not rep[0].startswith(o + " ") or "goes on in this file, " + n not in rep[0]:
    bad.append("run_file_replaced %s" % rep)
al = [m for v, c, m in ev if c == "alarm_raised" and "run_file_replaced" in m]
if len(al) != 1 or o not in al[0] or n not in al[0]: bad.append("alarm %s" % al)
if bad:
    print(path, bad, ev)
sys.exit(1 if bad else 0)
PY
}

start || { not_ok "daemon starts"; finish; }

# --- on_restart: resume, the file emptied; a second crash goes on in the new file.
cat >"$T/resume.yaml" <<'P'
perfuse: 1
name: first moment
on_restart: resume
safe_state: {pump1: 0 uL/min}
steps:
  - {name: one, set: {pump1: 10 uL/min}, for: 4 s}
  - {name: two, set: {pump1: 12 uL/min}, for: 2 s}
P
crash_first_moment "$T/resume.yaml" empty || { not_ok "daemon restarts after kill -9"; finish; }
NEW=${FILE%.h5}-continued.h5
check "the run goes on in $(basename "$NEW"), naming the file before" \
    js "s['run_active'] and s['file'] == '$NEW' and s['replaced_file'] == '$FILE' and s['run_id'] == '$ID' and [r['replaced_file'] for r in s['runs']] == ['$FILE']"
check "alarm run_file_replaced names both files" \
    js "any(a['code'] == 'run_file_replaced' and a['message'] == 'run ${ID:0:8} goes on in $(basename "$NEW"): $(basename "$FILE") is empty (nothing reached the disk), kept as .unreadable' for a in s['alarms'])"
check "no journal_unusable, no safe state" js "not any(a['code'] == 'journal_unusable' for a in s['alarms'])"
check "the empty file is kept as .unreadable, untouched" sh -c "[ ! -e '$FILE' ] && [ -f '$FILE.unreadable' ] && [ ! -s '$FILE.unreadable' ]"
check "the journal now names the new file" journal_names "$(basename "$NEW")"
check "the new file holds its run_file_replaced event on disk" timeout 15 "$PYTHON" -c "
import sys, time, h5py
while True:
    try:
        with h5py.File(sys.argv[1], 'r', swmr=True) as f:
            if any(e['code'] == b'run_file_replaced' for e in f['events'][:]):
                break
    except (OSError, KeyError):
        pass
    time.sleep(0.1)" "$NEW"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
start || { not_ok "daemon restarts after a second kill -9"; finish; }
check "after a second crash the run goes on in the same new file" js "s['run_active'] and s['file'] == '$NEW'"
check "the run completes" sh -c "ctl() { timeout 30 '$BUILD/perfusectl' --socket '$SOCK' \"\$@\"; }; ctl --json wait | grep -q '\"state\": \"completed\"'"
check "the new file: completed, same run id, continued_from, two restarts, run_file_replaced and its alarm" \
    newfile_ok "$NEW" completed "$ID" "$FILE" resume
check "its /steps: one and two done" "$PYTHON" -c "
import h5py, sys
rows = [(r['name'].decode(), r['outcome'].decode()) for r in h5py.File(sys.argv[1], 'r')['steps']]
print(rows)
sys.exit(0 if rows == [('one', 'done'), ('two', 'done')] else 1)" "$NEW"
check "no third file: nothing but the .unreadable and the new one" \
    test "$(ls "$T/runs" | grep -c "^$(basename "${FILE%.h5}")")" -eq 2
ctl ack all >/dev/null

# --- on_restart: safe-stop, the file deleted: closed as interrupted in a new file.
cat >"$T/stop.yaml" <<'P'
perfuse: 1
name: first moment stop
on_restart: safe-stop
safe_state: {pump1: 0 uL/min}
steps:
  - {name: pump, set: {pump1: 20 uL/min}, for: 10 min}
P
crash_first_moment "$T/stop.yaml" delete || { not_ok "daemon restarts after kill -9"; finish; }
NEW=${FILE%.h5}-continued.h5
check "the run is closed, in $(basename "$NEW")" js "not s['run_active'] and s['file'] == '$NEW' and s['state'] == 'interrupted'"
check "its safe state stops pump1 (STP on the wire)" \
    timeout 10 sh -c "until tail -n +$((LINE + 1)) '$T/trace' | grep -q '^ne 0STP'; do sleep 0.1; done"
check "alarm run_file_replaced says the file was missing" \
    js "any(a['code'] == 'run_file_replaced' and a['message'] == 'run ${ID:0:8} closed as interrupted in $(basename "$NEW"): $(basename "$FILE") is missing' for a in s['alarms'])"
check "the new file: interrupted, restart (safe-stop), run_file_replaced and its alarm" \
    newfile_ok "$NEW" interrupted "$ID" "$FILE" safe-stop
check "no journal is left, none kept as unusable" sh -c "! ls '$T/runs/' | grep -q journal"
finish
