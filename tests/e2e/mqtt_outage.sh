#!/bin/bash
# The broker is killed (kill -9) mid-run and comes back: control goes on
# untouched (sample rates and the run's timing within 5 %), and after the
# broker returns every sample and event of the gap arrives, marked
# historical. A second rig with a store-and-forward queue too small for the
# outage counts what did not fit in an event that reaches the broker.
# MQTT_OUTAGE_S sets the outage (default 5 s; `make soak-mqtt` 20).
# e2e: alone (sample rates and the run's length are checked within 5 %)
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/mqtt.sh
OUTAGE_S=${MQTT_OUTAGE_S:-5}
RUN_S=$((OUTAGE_S + 10))

broker_setup "$T/broker"
PORT=$(free_port)
broker_start "$T/broker" "$PORT" || { not_ok "mosquitto starts"; finish; }
# A subscriber with a persistent session: the broker keeps what it missed.
"$PYTHON" tests/lib/mqtt_tool.py collect "$PORT" bob bobpw outage-sub "$T/msgs.jsonl" "$T/subready" &
SUB_PID=$!; PIDS="$PIDS $SUB_PID"
timeout 10 sh -c "until [ -s '$T/subready' ]; do sleep 0.05; done"

sim_rig rig1 "$T/r1" "mqtt: {host: 127.0.0.1, port: $PORT, username: rig1, password_file: pw, site: lab, interval: 0.5 s}"
echo rigpw >"$T/r1/pw"
start_rig_daemon "$T/r1" || { not_ok "daemon starts"; finish; }
SOCK1=$SOCK
sim_rig rig2 "$T/r2" "mqtt: {host: 127.0.0.1, port: $PORT, username: rig2, password_file: pw, site: lab, interval: 0.5 s, queue: 10}"
echo rigpw >"$T/r2/pw"
start_rig_daemon "$T/r2" || { not_ok "daemon 2 starts"; finish; }
SOCK2=$SOCK; SOCK=$SOCK1
timeout 10 sh -c "until grep -q mqtt_connected '$T/r1/perfused.log' && grep -q mqtt_connected '$T/r2/perfused.log'; do sleep 0.05; done"
# The broker has saved the subscriber's session (autosave every second).
timeout 10 sh -c "until [ -s '$T/broker/mosquitto.db' ]; do sleep 0.1; done"

cat >"$T/p.yaml" <<P
perfuse: 1
name: mqtt outage
rig: rig1
safe_state: {pump1: 0 uL/min}
steps:
  - {name: before, set: {pump1: 5 uL/min}, for: 3 s}
  - {name: during, set: {pump1: 6 uL/min}, for: $((RUN_S - 3)) s}
P
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
check "run started" test -n "$file"
sed 's/^rig: rig1$/rig: rig2/' "$T/p.yaml" >"$T/p2.yaml"
file2=$(SOCK=$SOCK2 ctl run "$T/p2.yaml" | sed -n 's/^file //p')
timeout 10 sh -c "until grep -q \"step 2 'during'\" '$T/r1/perfused.log'; do sleep 0.05; done"
gap_from=$("$PYTHON" -c "import time; print(time.time())")
kill -KILL "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null
timeout 10 sh -c "until grep -q mqtt_unreachable '$T/r1/perfused.log'; do sleep 0.05; done"
# The outage itself: the broker stays away this long.
sleep "$OUTAGE_S"
gap_to=$("$PYTHON" -c "import time; print(time.time())")
: >"$T/broker/mosquitto.log"
broker_start "$T/broker" "$PORT" || { not_ok "mosquitto starts again"; finish; }
res=$(ctl --json wait)
check "the run completed during the outage's aftermath" grep -q '"state": "completed"' <<<"$res"
timeout 20 sh -c "until grep -q run_completed '$T/msgs.jsonl'; do sleep 0.1; done"
# The next interval's messages follow the last event.
last=$(wc -l <"$T/msgs.jsonl")
timeout 10 sh -c "until [ \$(wc -l <'$T/msgs.jsonl') -gt \$(( $last + 3 )) ]; do sleep 0.1; done"
kill -TERM "$SUB_PID"; wait_gone "$SUB_PID" 10

cmp=$("$PYTHON" tests/lib/mqtt_tool.py samples "$T/msgs.jsonl" "$file" "$gap_from" "$gap_to")
echo "# $cmp"
check "every sample of the run arrived, value for value, no message missing" "$PYTHON" -c "
import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if not c['problems'] and c['values'] > 0 else 1)" "$cmp"
check "the gap's samples came marked historical (and none live)" "$PYTHON" -c "
import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if c['hist_in_gap'] > 0 and c['live_in_gap'] == 0 else 1)" "$cmp"
check "the gap's events came marked historical (mqtt_unreachable among them)" "$PYTHON" -c "
import json,sys
ok=False
for l in open(sys.argv[1]):
    m=json.loads(l)
    if m['topic'].endswith('/events'):
        p=json.loads(m['payload'])
        if p.get('historical') and any(e['code']=='mqtt_unreachable' for e in p['events']): ok=True
sys.exit(0 if ok else 1)" "$T/msgs.jsonl"
check "every event of the run arrived" "$PYTHON" -c "
import json,sys
sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f=open_run(sys.argv[2]); want=[(text(e['code']), text(e['message'])) for e in f['events']]
got=set()
for l in open(sys.argv[1]):
    m=json.loads(l)
    if m['topic'].endswith('/events'):
        for e in json.loads(m['payload'])['events']: got.add((e['code'], e['message']))
missing=[w for w in want if w not in got]
print('# missing events:', missing[:5]); sys.exit(0 if not missing else 1)" "$T/msgs.jsonl" "$file"
timing=$(timeout 60 "$PYTHON" -c "
import json, sys; sys.path.insert(0, 'tests/lib')
import numpy as np
from h5run import open_run, series, text
f = open_run(sys.argv[1])
# The run's t = 0 as a wall time: the samples messages carry it.
t0 = [json.loads(json.loads(l)['payload']) for l in open(sys.argv[4]) if json.loads(l)['topic'].endswith('/samples')]
t0 = [p['t0'] for p in t0 if p['run']][0]
a = float(sys.argv[2]) - t0; b = float(sys.argv[3]) - t0
t, v = series(f, 'channels', 'chip1.pressure')
gap = np.sum((t >= a) & (t < b)) / (b - a)
before = np.sum((t >= 0.5) & (t < a)) / (a - 0.5)
end = [float(e['time']) for e in f['events'] if text(e['code']) == 'run_completed'][0]
print(json.dumps({'rate_gap': gap, 'rate_before': before, 'run_s': end}))
" "$file" "$gap_from" "$gap_to" "$T/msgs.jsonl")
echo "# timing: $timing (run planned $RUN_S s)"
check "sample rate during the outage within 5 % of before" "$PYTHON" -c "
import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if abs(c['rate_gap']/c['rate_before']-1) <= 0.05 else 1)" "$timing"
check "the run's length within 5 % of planned" "$PYTHON" -c "
import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if abs(c['run_s']/float(sys.argv[2])-1) <= 0.05 else 1)" "$timing" "$RUN_S"
check "nothing was dropped (no mqtt_dropped event)" sh -c "! grep -q mqtt_dropped '$T/r1/perfused.log'"
SOCK=$SOCK2 ctl wait >/dev/null
check "a queue too small: what did not fit is counted in an event that reaches the broker" "$PYTHON" -c "
import json,sys
for l in open(sys.argv[1]):
    m=json.loads(l)
    if m['topic']=='perfuse/v1/lab/rig2/events':
        p=json.loads(m['payload'])
        for e in p['events']:
            if e['code']=='mqtt_dropped' and not p.get('historical') and 'did not fit' in e['message']:
                print('# ' + e['message']); sys.exit(0)
sys.exit(1)" "$T/msgs.jsonl"
finish
