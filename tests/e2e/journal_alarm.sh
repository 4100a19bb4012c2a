#!/bin/bash
# A journal write that fails is an alarm, not only a log line: the daemon runs
# out of file descriptors during a run (RLIMIT_NOFILE lowered with prlimit
# below the descriptors it holds); the next journal write fails and raises
# journal_failed; with the limit restored, a later write works and clears it.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
command -v prlimit >/dev/null || { echo "prlimit not found: skipped"; echo "0 passed, 0 failed"; exit 0; }

cat >"$T/steps.yaml" <<'P'
perfuse: 1
name: journal under fd exhaustion
safe_state: {pump1: 0 uL/min}
steps:
  - {name: s1, set: {pump1: 10 uL/min}, for: 1 s}
  - {name: s2, set: {pump1: 11 uL/min}, for: 1 s}
  - {name: s3, set: {pump1: 12 uL/min}, for: 1 s}
  - {name: s4, set: {pump1: 13 uL/min}, for: 1 s}
  - {name: s5, set: {pump1: 14 uL/min}, for: 1 s}
  - {name: s6, set: {pump1: 15 uL/min}, for: 1 s}
P
start_daemon jfd || { not_ok "daemon starts"; finish; }
out=$(ctl run "$T/steps.yaml")
check "run started" grep -q "^run " <<<"$out"
hard=$(prlimit --pid "$DAEMON_PID" --nofile --output HARD --noheadings | tr -d ' ')
soft=$(prlimit --pid "$DAEMON_PID" --nofile --output SOFT --noheadings | tr -d ' ')
# Below every descriptor it holds: whatever it has stays open, nothing new opens.
prlimit --pid "$DAEMON_PID" --nofile="3:$hard"
# The next step's journal write fails: wait for the alarm in the log (bounded).
for i in $(seq 100); do grep -q "journal_failed" "$T/jfd/perfused.log" && break; sleep 0.05; done
check "a failed journal write raises journal_failed" grep -q "alarm_raised: alarm [0-9]* journal_failed: cannot write .*run.journal" "$T/jfd/perfused.log"
prlimit --pid "$DAEMON_PID" --nofile="$soft:$hard"
ctl --json wait >/dev/null
ev=$(ctl --json events)
check "the alarm is in the run's events" grep -q '"code": "alarm_raised".*journal_failed\|journal_failed.*"code": "alarm_raised"' <<<"$(echo "$ev" | "$PYTHON" -c 'import json,sys; [print(json.dumps(e)) for e in json.load(sys.stdin)["events"]]')"
check "a later write that works clears it" grep -q "alarm_cleared: alarm [0-9]* journal_failed cleared" "$T/jfd/perfused.log"
st=$(ctl --json status)
check "status lists it until acknowledged" "$PYTHON" -c '
import json, sys
a = [x for x in json.loads(sys.argv[1])["alarms"] if x["code"] == "journal_failed"]
sys.exit(0 if a and a[0]["state"] == "cleared" and a[0]["source"] == "journal" else 1)' "$st"
finish
