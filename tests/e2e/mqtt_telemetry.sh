#!/bin/bash
# MQTT telemetry on a real mosquitto: state and status are retained; the
# samples of a run received over MQTT equal the run file's value for value,
# with no message missing; events arrive; status is the `status` document.
# MQTT_RUN_S sets the run's length (default 12 s; `make soak-mqtt` 60).
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/mqtt.sh
RUN_S=${MQTT_RUN_S:-12}

broker_setup "$T/broker"
PORT=$(free_port)
broker_start "$T/broker" "$PORT" || { not_ok "mosquitto starts"; finish; }
"$PYTHON" tests/lib/mqtt_tool.py collect "$PORT" bob bobpw sub1 "$T/msgs.jsonl" "$T/subready" &
SUB_PID=$!; PIDS="$PIDS $SUB_PID"
timeout 10 sh -c "until [ -s '$T/subready' ]; do sleep 0.05; done"

sim_rig rig1 "$T/r1" "mqtt: {host: 127.0.0.1, port: $PORT, username: rig1, password_file: pw, site: lab, interval: 0.5 s}"
echo rigpw >"$T/r1/pw"
echo bobpw >"$T/bobpw"
start_rig_daemon "$T/r1" || { not_ok "daemon starts"; finish; }

cat >"$T/p.yaml" <<P
perfuse: 1
name: mqtt telemetry
rig: rig1
safe_state: {pump1: 0 uL/min}
steps:
  - {name: flow, set: {pump1: 5 uL/min}, for: $RUN_S s}
P
# The integration example of scripts/README.md follows the run too.
timeout $((RUN_S + 60)) "$PYTHON" scripts/perfuse-mqtt-series --host 127.0.0.1 --port "$PORT" --user bob \
    --password-file "$T/bobpw" --rig lab/rig1 --channel chip1.pressure --timeout $((RUN_S + 40)) \
    --check "$T/run.h5" >"$T/series.txt" 2>&1 &
SERIES_PID=$!; PIDS="$PIDS $SERIES_PID"
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
ln -s "$file" "$T/run.h5"   # the example reads the file only once the run has ended
check "run started" test -n "$file"
res=$(ctl --json wait)
check "run completed" grep -q '"state": "completed"' <<<"$res"
local_status=$(ctl --json status)
# The run's last samples and events leave with the next interval after the file closes.
last=$(wc -l <"$T/msgs.jsonl")
timeout 10 sh -c "until [ \$(wc -l <'$T/msgs.jsonl') -gt \$(( $last + 4 )) ]; do sleep 0.1; done"

r=$("$PYTHON" tests/lib/mqtt_tool.py retained "$PORT" bob bobpw perfuse/v1/lab/rig1/status)
echo "# status retained: ${r:0:160}"
check "status is retained" "$PYTHON" -c "
import json,sys; m=json.loads(sys.argv[1]); sys.exit(0 if m['retain'] and m['payload']['status']['rig']=='rig1' else 1)" "$r"
check "status is the status command's document (same members)" "$PYTHON" -c "
import json,sys
m=json.loads(sys.argv[1])['payload']['status']; s=json.loads(sys.argv[2])
sys.exit(0 if set(m)==set(s) and m['run_id']==s['run_id'] and m['state']==s['state'] else 1)" "$r" "$local_status"
r=$("$PYTHON" tests/lib/mqtt_tool.py retained "$PORT" bob bobpw perfuse/v1/lab/rig1/state)
check "state is retained and online" "$PYTHON" -c "
import json,sys; m=json.loads(sys.argv[1]); sys.exit(0 if m['retain'] and m['payload']['state']=='online' else 1)" "$r"
r=$("$PYTHON" tests/lib/mqtt_tool.py retained "$PORT" bob bobpw perfuse/v1/lab/rig1/alarms)
check "the alarm list is retained" "$PYTHON" -c "
import json,sys; m=json.loads(sys.argv[1]); sys.exit(0 if m['retain'] and isinstance(m['payload']['alarms'], list) else 1)" "$r"

kill -TERM "$SUB_PID"; wait_gone "$SUB_PID" 10
cmp=$("$PYTHON" tests/lib/mqtt_tool.py samples "$T/msgs.jsonl" "$file")
echo "# $cmp"
check "samples over MQTT equal the run file's, value for value, no message missing" "$PYTHON" -c "
import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if not c['problems'] and c['values'] > 0 else 1)" "$cmp"
check "the run's events arrive (run_started .. run_completed)" "$PYTHON" -c "
import json,sys
codes=[e['code'] for l in open(sys.argv[1]) for m in [json.loads(l)] if m['topic'].endswith('/events')
       for e in json.loads(m['payload'])['events']]
sys.exit(0 if 'run_completed' in codes and len(codes) >= 2 else 1)" "$T/msgs.jsonl"
check "nothing marked historical while the broker was there" "$PYTHON" -c "
import json,sys
sys.exit(1 if any(json.loads(json.loads(l)['payload']).get('historical') for l in open(sys.argv[1])
                  if not json.loads(l)['topic'].endswith('/state')) else 0)" "$T/msgs.jsonl"
wait "$SERIES_PID"
series_rc=$?
sed 's/^/# /' "$T/series.txt"
check "scripts/perfuse-mqtt-series rebuilt chip1.pressure, same as the run file" \
    sh -c "[ $series_rc = 0 ] && grep -q 'value for value' '$T/series.txt'"
finish
