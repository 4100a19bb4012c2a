#!/bin/bash
# A restart you can trust. After SIGTERM in step 3 the run continues in step 3
# and /steps lists every step once with its own path. A journal that cannot be
# used (truncated; edited to a setpoint beyond the rig's limits) is refused:
# the crashed run's pump, still running on the simulator, is stopped, and the
# alarm journal_unusable is listed and alerted; a protocol edited in the journal
# with its hash made to match is caught by the run file's own record.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

cat >"$T/alert.sh" <<'A'
#!/bin/sh
echo "$PERFUSE_ALERT|$PERFUSE_SOURCE|$PERFUSE_CODE|$PERFUSE_MESSAGE" >>"$(dirname "$0")/alerts.log"
A
start_sim sim --rig-out "$T/rig0.yaml" --control "$T/sim.sock" --trace "$T/trace" || { not_ok "perfuse-sim starts"; finish; }
sed "s|^rig: sim$|rig: sim\nalerts: {command: \"sh $T/alert.sh\", min_interval: 0 s, max_per_hour: 100}|" \
    "$T/rig0.yaml" >"$T/rig.yaml"
mkdir -p "$T/d"

# start: perfused on the simulator's rig; waits for its READY line.
start() {
    start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs"
}
# status_until PYTHON-EXPR: poll the JSON status (bounded, 15 s) until EXPR holds for it (s).
status_until() {
    for _ in $(seq 1 150); do
        ctl --json status 2>/dev/null | "$PYTHON" -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" && return 0
        sleep 0.1
    done
    return 1
}
# pump_stopped_after LINE: the trace has pump1 (address 0) told to stop after line LINE.
pump_stopped_after() {
    timeout 10 sh -c "until tail -n +$(($1 + 1)) '$T/trace' | grep -q '^ne 0STP'; do sleep 0.1; done"
}
# crash_with_journal EDIT: start a long run at 20 uL/min, kill -9 the daemon, apply
# the python EDIT to the journal's text (t), restart. LINE: the trace's length at the restart.
crash_with_journal() {
    ctl run "$T/long.yaml" >/dev/null
    status_until "s.get('step', {}).get('name') == 'pump' and s['run_active']" || echo "run did not start" >&2
    timeout 10 sh -c "until [ -s '$T/runs/run.journal' ]; do sleep 0.1; done"
    kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
    "$PYTHON" -c "
import sys
p = sys.argv[1]; t = open(p).read()
$1
open(p, 'w').write(t)" "$T/runs/run.journal"
    LINE=$(wc -l <"$T/trace")
    start
}

start || { not_ok "daemon starts"; finish; }

# --- SIGTERM in step 3: the run goes on in step 3, each step is listed once.
cat >"$T/steps.yaml" <<'P'
perfuse: 1
name: four steps
rig: sim
on_restart: resume
safe_state: {pump1: 0 uL/min}
steps:
  - {name: one, set: {pump1: 10 uL/min}, for: 1 s}
  - {name: two, set: {pump1: 12 uL/min}, for: 1 s}
  - {name: three, set: {pump1: 14 uL/min}, for: 5 s}
  - {name: four, set: {pump1: 16 uL/min}, for: 1 s}
P
file=$(ctl run "$T/steps.yaml" | sed -n 's/^file //p')
check "the run reaches step 3" status_until "s['step']['path'] == '3'"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
restarted=$(date -u +%Y-%m-%dT%H:%M:%S)
start || { not_ok "daemon restarts after SIGTERM"; finish; }
check "after the restart the run is in step 3, 'three'" \
    status_until "s['run_active'] and s['step']['path'] == '3' and s['step']['name'] == 'three'"
check "the run completes" sh -c "timeout 30 '$BUILD/perfusectl' --socket '$SOCK' --json wait | grep -q '\"state\": \"completed\"'"
check "/steps lists 1, 2, 3, 4 once each, all done" "$PYTHON" -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r')
rows = [(r['path'].decode(), r['name'].decode(), r['outcome'].decode()) for r in f['steps']]
print(rows)
sys.exit(0 if rows == [('1', 'one', 'done'), ('2', 'two', 'done'), ('3', 'three', 'done'),
                       ('4', 'four', 'done')] else 1)" "$file"
check "end_time is when the continued run ended, not when the daemon stopped" "$PYTHON" -c "
import h5py, sys
end = h5py.File(sys.argv[1], 'r').attrs['end_time'].decode()
print(end, '>=', sys.argv[2])
sys.exit(0 if end[:19] >= sys.argv[2] else 1)" "$file" "$restarted"

# --- A truncated journal: the pump the crashed run left running is stopped.
cat >"$T/long.yaml" <<'P'
perfuse: 1
name: long
rig: sim
on_restart: resume
safe_state: {pump1: 0 uL/min}
steps:
  - {name: pump, set: {pump1: 20 uL/min}, for: 10 min}
P
crash_with_journal "t = t[:len(t) // 2]"
check "the daemon restarts with a truncated journal" kill -0 "$DAEMON_PID"
check "the crashed run's pump is told to stop (STP on the wire)" pump_stopped_after "$LINE"
check "its flow reads 0" status_until "[c for c in s['channels'] if c['name'] == 'pump1.flow'][0].get('value') == 0"
check "the alarm journal_unusable is listed, with the reason" \
    status_until "any(a['code'] == 'journal_unusable' and 'not JSON' in a['message'] for a in s['alarms'])"
check "perfusectl status shows it" sh -c "'$BUILD/perfusectl' --socket '$SOCK' status | grep -q 'run journal unusable: not JSON'"
check "an alert is sent for it" timeout 10 sh -c "until grep -q '^alarm|journal|alarm_raised|.*journal_unusable' '$T/alerts.log' 2>/dev/null; do sleep 0.1; done"
check "the journal is kept as run.journal.unusable" test -f "$T/runs/run.journal.unusable"
check "no run is continued" status_until "not s['run_active']"
ctl ack all >/dev/null

# --- An edited journal with a setpoint beyond max_flow is refused likewise.
rm -f "$T/runs/run.journal.unusable"
crash_with_journal "import json; j = json.loads(t); j['setpoints']['pump1.flow'] = 5000.0; t = json.dumps(j)"
check "the daemon restarts with an edited journal" kill -0 "$DAEMON_PID"
check "the pump is told to stop" pump_stopped_after "$LINE"
check "its flow reads 0" status_until "[c for c in s['channels'] if c['name'] == 'pump1.flow'][0].get('value') == 0"
check "the alarm names the out-of-limit setpoint" \
    status_until "any(a['code'] == 'journal_unusable' and a['state'] == 'active' and 'pump1.flow = 5000' in a['message'] for a in s['alarms'])"
check "an alert is sent for it" timeout 10 sh -c "until grep -q '^alarm|journal|alarm_raised|.*5000' '$T/alerts.log' 2>/dev/null; do sleep 0.1; done"
check "the journal is kept as run.journal.unusable" test -f "$T/runs/run.journal.unusable"
ctl ack all >/dev/null

# --- The protocol edited in the journal, with its hash made to match: the run
# file's own record of the protocol still tells.
rm -f "$T/runs/run.journal.unusable"
crash_with_journal "import json, hashlib; j = json.loads(t)
j['protocol_text'] = j['protocol_text'].replace('20 uL/min', '400 uL/min'); assert '400' in j['protocol_text']
j['protocol_sha256'] = hashlib.sha256(j['protocol_text'].encode()).hexdigest(); t = json.dumps(j)"
check "the pump is told to stop" pump_stopped_after "$LINE"
check "the alarm says the protocol is not the one the run file recorded" \
    status_until "any(a['code'] == 'journal_unusable' and a['state'] == 'active' and 'not the one its run file recorded' in a['message'] for a in s['alarms'])"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
finish
