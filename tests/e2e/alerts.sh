#!/bin/bash
# Alerts for unattended runs: the rig's alert command runs with the details in
# PERFUSE_* variables on an alarm, a sensor fault, a prompt, a restart and the
# end of a run, and a flapping alarm is rate-limited with the held-back count
# passed on.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

cat >"$T/alert.sh" <<'A'
#!/bin/sh
echo "$PERFUSE_ALERT|$PERFUSE_SEVERITY|$PERFUSE_SOURCE|$PERFUSE_CODE|$PERFUSE_SUPPRESSED|$PERFUSE_RUN_ID|$PERFUSE_RIG|$PERFUSE_FILE|$PERFUSE_MESSAGE" >>"$(dirname "$0")/alerts.log"
A
start_sim sim --rig-out "$T/rig0.yaml" --control "$T/sim.sock" || { not_ok "perfuse-sim starts"; finish; }
sed "s|^rig: sim$|rig: sim\nalerts: {command: \"sh $T/alert.sh\", min_interval: 2 s, max_per_hour: 100}|" \
    "$T/rig0.yaml" >"$T/rig.yaml"

start() {
    start_perfused "$T/a" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs"
}
mkdir -p "$T/a"
start || { not_ok "daemon starts"; finish; }
cat >"$T/p.yaml" <<'P'
perfuse: 1
name: alerts
rig: sim
on_restart: resume
safe_state: {pump1: 0 uL/min}
limits:
  - {channel: chip1.pressure, max: 29 mbar, action: alarm}
steps:
  - {name: flap, set: {pump1: 10 uL/min}, for: 7 s}
  - {name: ask, prompt: Top up the reservoir}
  - {name: more, set: {pump1: 10 uL/min}, for: 6 s}
P
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
check "a sensor fault injected: chip2 reads NaN for 1 s" test "$(sim_cmd "$T/sim.sock" "fault nan:chip2,at=1s,for=1s")" = ok
for _ in $(seq 1 200); do ctl --json status | grep -q '"prompt": "Top up' && break; sleep 0.1; done
ctl ack all >/dev/null
ctl confirm >/dev/null
sleep 2                  # into the last step: where the kill lands
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
start || { not_ok "daemon restarts"; finish; }
ctl wait >/dev/null
# Each alert command runs in the background: wait (bounded) for the last one.
timeout 10 sh -c "until grep -q '^run_end|' '$T/alerts.log' 2>/dev/null; do sleep 0.1; done"
cat "$T/alerts.log" | cut -c1-160
id=$(basename "$file" .h5 | sed 's/.*-//')
check "an alarm alert names the source and code" grep -q "^alarm|alarm|chip1.pressure|alarm_raised|0|$id" "$T/alerts.log"
check "a sensor fault alert names the channel" grep -q "^fault|fault|chip2.pressure|alarm_raised|0|$id.*|alarm [0-9]* sensor_nan" "$T/alerts.log"
n=$(grep -c "^alarm|" "$T/alerts.log")
check "the flapping alarm is rate-limited to one per 2 s ($n alerts in 7 s)" sh -c "[ $n -ge 2 ] && [ $n -le 5 ]"
check "what was held back is counted in the next alert" grep -qE "^alarm\|alarm\|chip1.pressure\|alarm_raised\|[1-9][0-9]*\|" "$T/alerts.log"
check "a prompt alert carries the prompt's text" grep -q "^prompt|info|runner|prompt|.*waiting for the operator: Top up the reservoir" "$T/alerts.log"
check "a restart alert" grep -q "^restart|warning|daemon|restart|.*|$id.*|sim|$file|perfused restarted after" "$T/alerts.log"
check "a run-end alert with the final state" grep -q "^run_end|info|runner|completed|[0-9]*|$id[0-9a-f]*|sim|$file|run of .alerts. ended: completed" "$T/alerts.log"
# A new run whose first step is a prompt: its alert is about the new run, not
# the last one (the prompt comes while the run is being started).
cat >"$T/p2.yaml" <<'P'
perfuse: 1
name: first a prompt
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {name: ask first, prompt: Fill the syringe first}
  - {set: {pump1: 1 uL/min}, for: 1 s}
P
file2=$(ctl run "$T/p2.yaml" | sed -n 's/^file //p')
id2=$(basename "$file2" .h5 | sed 's/.*-//')
timeout 10 sh -c "until grep -q 'Fill the syringe first' '$T/alerts.log' 2>/dev/null; do sleep 0.1; done"
check "a new run's first prompt alert carries that run's id and file, not the last run's" "$PYTHON" -c "
import sys
rows = [l.rstrip('\n').split('|', 8) for l in open(sys.argv[1]) if 'Fill the syringe first' in l]
sys.exit(0 if len(rows) == 1 and rows[0][0] == 'prompt' and rows[0][5].startswith(sys.argv[2])
         and rows[0][7] == sys.argv[3] else 1)" "$T/alerts.log" "$id2" "$file2"
ctl abort --reason "end of the test" >/dev/null
ctl wait >/dev/null
sed "s|^rig: sim$|rig: sim\nalerts: {min_interval: soon}|" "$T/rig0.yaml" >"$T/bad.yaml"
"$BUILD/perfusectl" check --rig "$T/bad.yaml" protocols/demo.yaml >"$T/bad.out" 2>&1
check "a bad alerts section is refused, naming the fix" grep -q "'alerts' needs 'command'" "$T/bad.out"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
finish
