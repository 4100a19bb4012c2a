#!/bin/bash
# The history command and MQTT's query topic: a viewer gets history and
# status on query/<user> but is refused pause there, and the broker drops its
# publish on cmd/ (the run goes on); an operator gets history on cmd/ too;
# the history of a run on the simulated rig matches its run file, slot by
# slot, with the slots asked for; perfusectl history on the Unix socket
# (the control socket and the read-only one), as text and as JSON.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/mqtt.sh

broker_setup "$T/broker"
PORT=$(free_port)
broker_start "$T/broker" "$PORT" || { not_ok "mosquitto starts"; finish; }
sim_rig rig1 "$T/r1" "mqtt: {host: 127.0.0.1, port: $PORT, username: rig1, password_file: pw, site: lab}"
echo rigpw >"$T/r1/pw"
T_START=$(date +%s.%N)
start_rig_daemon "$T/r1" || { not_ok "daemon starts"; finish; }
timeout 10 sh -c "until grep -q mqtt_connected '$T/r1/perfused.log'; do sleep 0.05; done"

cat >"$T/p.yaml" <<P
perfuse: 1
name: mqtt query
rig: rig1
safe_state: {pump1: 0 uL/min}
steps:
  - {name: flow, set: {pump1: 5 uL/min}, for: 60 s}
P
ctl run "$T/p.yaml" >"$T/run.out" || not_ok "the run starts"
file=$(sed -n 's/^file //p' "$T/run.out")
state() { ctl --json status | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['state'])"; }
C=perfuse/v1/lab/rig1

# mqtt_req USER PASS KIND PAYLOAD V5|V311: publish to KIND/USER (cmd or query), print the reply.
mqtt_req() {
    timeout 20 "$PYTHON" tests/lib/mqtt_tool.py command "$PORT" "$1" "$2" "$C/$3/$1" "$C/reply/$1" "$4" "$5"
}
# reply_ok REPLY FIELD VALUE: the reply payload's FIELD (dotted) is VALUE.
reply_ok() {
    "$PYTHON" -c "
import json,sys; p=json.loads(sys.argv[1]).get('reply',{}).get('payload',{})
for k in sys.argv[2].split('.'): p=p.get(k) if isinstance(p,dict) else None
sys.exit(0 if str(p)==sys.argv[3] else 1)" "$@"
}
# The history needs some seconds of readings: time has to pass (there is no event to wait for).
sleep "$("$PYTHON" -c "import sys,time; print(max(0.0, 8 - (time.time() - float(sys.argv[1]))))" "$T_START")"

# A viewer on its query topic: history and status are served.
r=$(mqtt_req bob bobpw query '{"cmd":"history","minutes":1,"points":60}' V5)
echo "# viewer history: ${r:0:160}"
check "a viewer's history on query/bob: ok reply" reply_ok "$r" ok True
check "  ... with the request's correlation data (MQTT 5)" "$PYTHON" -c "
import json,sys; sys.exit(0 if json.loads(sys.argv[1])['reply'].get('correlation_ok') else 1)" "$r"
check "  ... with every channel of the rig" "$PYTHON" -c "
import json,sys; ch=json.loads(sys.argv[1])['reply']['payload']['result']['channels']
sys.exit(0 if {'chip1.pressure','pump1.flow','ob1.p4'} <= set(ch) and len(ch) == 22 else 1)" "$r"
r=$(mqtt_req bob bobpw query '{"cmd":"status","id":"s1"}' V311)
check "a viewer's status on query/bob (3.1.1): ok, the id echoed" reply_ok "$r" id s1
check "  ... the run is running" reply_ok "$r" result.state running
# A page opening late asks for the run's latest events: one reply over MQTT,
# the same events as the control socket's `events --last`.
r=$(mqtt_req bob bobpw query '{"cmd":"events","last":3,"id":"e1"}' V5)
echo "# viewer events: ${r:0:200}"
sock_ev=$(ctl --json events --last 3)
check "a viewer's events --last 3 on query/bob: the run's last 3, as the socket gives them" "$PYTHON" -c "
import json,sys
p=json.loads(sys.argv[1])['reply']['payload']; s=json.loads(sys.argv[2])
ok = p['ok'] and p['id'] == 'e1' and p['result']['run_id'] == s['run_id']
ev = p['result']['events']
ok &= len(ev) == 3 and [e['seq'] for e in ev] == [e['seq'] for e in s['events']]
ok &= [e['code'] for e in ev][1:] == ['run_started', 'step_start'] and p['result']['more'] is False
sys.exit(0 if ok else 1)" "$r" "$sock_ev"
r=$(mqtt_req bob bobpw query '{"cmd":"events","since":0,"limit":2}' V311)
check "events paged over MQTT: the first 2 from the start, more to come" "$PYTHON" -c "
import json,sys; p=json.loads(sys.argv[1])['reply']['payload']['result']
sys.exit(0 if [e['seq'] for e in p['events']] == [0, 1] and p['next'] == 2 and p['more'] else 1)" "$r"
r=$(mqtt_req bob bobpw query '{"cmd":"events","last":3,"cursor":0}' V5)
check "events with both last and cursor: invalid, saying which to give" "$PYTHON" -c "
import json,sys; e=json.loads(sys.argv[1])['reply']['payload']['error']
sys.exit(0 if e['code'] == 'invalid' and 'not both' in e['message'] else 1)" "$r"

# ... but nothing that changes anything.
r=$(mqtt_req bob bobpw query '{"cmd":"pause","reason":"viewer on query"}' V5)
echo "# viewer pause on query: ${r:0:240}"
check "a viewer's pause on query/bob: refused" reply_ok "$r" error.code refused
check "  ... saying that commands need the cmd topic and an operator" "$PYTHON" -c "
import json,sys; m=json.loads(sys.argv[1])['reply']['payload']['error']['message']
sys.exit(0 if 'cmd topic' in m and 'operators' in m and 'pause' in m else 1)" "$r"
check "  ... and the run is not paused" test "$(state)" = running
r=$(mqtt_req alice alicepw query '{"cmd":"abort","reason":"operator on query"}' V311)
check "an operator's abort on the query topic is refused too" reply_ok "$r" error.code refused
out=$(timeout 10 mosquitto_pub -V 5 -d -h 127.0.0.1 -p "$PORT" -u bob -P bobpw -q 1 -t "$C/cmd/bob" \
    -m '{"cmd":"pause","reason":"viewer on cmd"}' 2>&1)
check "the broker refuses a viewer's pause on cmd/bob (PUBACK 135)" grep -q "RC:135" <<<"$out"
out=$(timeout 10 mosquitto_pub -V 5 -d -h 127.0.0.1 -p "$PORT" -u bob -P bobpw -q 1 -t "$C/query/alice" \
    -m '{"cmd":"status"}' 2>&1)
check "nor may a viewer ask under another user's name (PUBACK 135)" grep -q "RC:135" <<<"$out"
check "the run is still running" test "$(state)" = running

# An operator's history through cmd/.
r=$(mqtt_req alice alicepw cmd '{"cmd":"history","channels":["pump1.flow","chip1.pressure"],"id":"h1"}' V311)
check "an operator's history on cmd/alice: ok" reply_ok "$r" ok True
check "  ... only the channels asked for" "$PYTHON" -c "
import json,sys; ch=json.loads(sys.argv[1])['reply']['payload']['result']['channels']
sys.exit(0 if sorted(ch) == ['chip1.pressure','pump1.flow'] else 1)" "$r"
r=$(mqtt_req bob bobpw query '{"cmd":"history","channels":["chip1.presure"]}' V5)
check "an unknown channel: invalid, naming it" "$PYTHON" -c "
import json,sys; e=json.loads(sys.argv[1])['reply']['payload']['error']
sys.exit(0 if e['code']=='invalid' and \"'chip1.presure'\" in e['message'] else 1)" "$r"

# The history on the Unix socket, against the run file.
ctl --json history --minutes 1 --points 60 >"$T/h60.json" || not_ok "perfusectl --json history"
ctl --json history --minutes 1 --points 20 >"$T/h20.json" || not_ok "perfusectl --json history --points 20"
ctl --json history >"$T/hdef.json" || not_ok "perfusectl --json history (defaults)"
ctl history >"$T/h.txt"
echo "# perfusectl history:"; sed -n '1,4p' "$T/h.txt" | sed 's/^/#   /'
check "perfusectl history: a line per channel with its last value, min and max" "$PYTHON" -c "
import sys
rows = {l.split()[0]: l.split() for l in open(sys.argv[1]) if l.strip()}
p, f = rows.get('chip1.pressure'), rows.get('pump1.flow')
ok = p and p[1] == 'measured' and p[2] == 'mbar' and float(p[4]) <= float(p[3]) <= float(p[5])
ok = ok and f and f[1] == 'setpoint' and float(f[3]) == 5 and float(f[5]) == 5
sys.exit(0 if ok else 1)" "$T/h.txt"
check "perfusectl --ro history (the read-only socket)" sh -c "timeout 20 '$BUILD/perfusectl' --ro --socket '$SOCK' history chip1.o2 | grep -q '^chip1.o2 '"

ctl abort --reason "end of test" >/dev/null
ctl --json wait >/dev/null
check "history: the slots asked for, full ones where the channel was read, matching the run file" \
    timeout 60 "$PYTHON" - "$T/h60.json" "$T/h20.json" "$T/hdef.json" "$file" "$T_START" <<'PY'
import json, math, sys
sys.path.insert(0, "tests/lib")
from datetime import datetime, timezone
from h5run import open_run, series, text
h60, h20, hdef = (json.load(open(p)) for p in sys.argv[1:4])
f = open_run(sys.argv[4])
problems = []
# The grid: slots of minutes*60/points seconds, no hole where a 10 Hz channel was read.
for h, pts, step in ((h60, 60, 1.0), (h20, 20, 3.0), (hdef, 600, 1.0)):
    if h["step_s"] != step:
        problems.append(f"{pts} points: step_s {h['step_s']}, not {step}")
    c = h["channels"]["chip1.pressure"]
    n, t = len(c["t"]), c["t"]
    if not (len(c["v"]) == len(c["min"]) == len(c["max"]) == n <= pts):
        problems.append(f"{pts} points: {n} points, lists of unequal length or too many")
    gaps = [b - a for a, b in zip(t, t[1:])]
    if any(abs(g - step) > 0.002 for g in gaps[:-1]) or (gaps and gaps[-1] > step + 0.002):
        problems.append(f"{pts} points: slots not {step} s apart: {gaps[:5]}")
    up = min(h["now"] - float(sys.argv[5]), h["minutes"] * 60)   # since the daemon started
    if n < (up - 4) / step:
        problems.append(f"{pts} points: only {n} slots after {up:.0f} s of readings")
    for v, lo, hi in zip(c["v"], c["min"], c["max"]):
        if not (isinstance(v, float) and lo <= v <= hi and 0 <= lo and hi < 1000):
            problems.append(f"{pts} points: implausible slot {lo} <= {v} <= {hi}")
            break
# Each full one-second slot within the run: the run file's samples in it have
# that mean, min and max (slots with a sample within 5 ms of an edge only bound them,
# since the file's start_time has microseconds).
start = datetime.fromisoformat(text(f.attrs["start_time"]).replace("Z", "+00:00")).timestamp()
checked = 0
for name in ("chip1.pressure", "chip1.flow", "chip1.o2"):
    ft, fv = series(f, "channels", name)
    wall = [start + float(x) for x in ft]
    c = h60["channels"][name]
    for tc, v, lo, hi in zip(c["t"], c["v"], c["min"], c["max"]):
        a, b = tc - 0.5, tc + 0.5
        if a < start + 0.2 or b > h60["now"] - 1.5:
            continue
        inside = [float(x) for w, x in zip(wall, fv) if a + 0.005 < w < b - 0.005]
        edge = any(abs(w - a) <= 0.005 or abs(w - b) <= 0.005 for w in wall)
        if not inside or any(x < lo - 1e-6 * abs(lo) or x > hi + 1e-6 * abs(hi) for x in inside):
            problems.append(f"{name} slot {tc}: file {inside[:4]} outside [{lo}, {hi}]")
            break
        if not edge:
            # The reply has 9 significant digits (a float32 reading's, exactly).
            m = sum(inside) / len(inside)
            near = lambda x, y: abs(x - y) <= 1e-8 * max(abs(x), 1e-300)
            if not (near(m, v) and near(min(inside), lo) and near(max(inside), hi)):
                problems.append(f"{name} slot {tc}: file mean {m} min {min(inside)} max {max(inside)}, "
                                f"history {v} {lo} {hi}")
                break
            checked += 1
# The pump's setpoint: what its device confirmed, 5 uL/min once the run had set it.
p = h60["channels"]["pump1.flow"]
if p["kind"] != "setpoint" or p["unit"] != "uL/min" or not p["v"] or p["v"][-1] != 5:
    problems.append(f"pump1.flow: {p['kind']} {p['v'][-5:]}")
print(f"# {checked} one-second slots matched the run file (to 9 significant digits)")
if checked < 10:
    problems.append(f"only {checked} slots could be checked against the file")
for x in problems[:10]:
    print("# " + x)
sys.exit(1 if problems else 0)
PY

ev=$(run_events "$file")
check "the operator's abort is recorded" grep -q "^cmd_abort|abort by uid" <<<"$ev"
if grep -q 'mqtt user bob\|viewer on\|operator on query' <<<"$ev"; then
    not_ok "nothing asked on the query topic, nor refused there, is in the run's events"
else
    ok "nothing asked on the query topic, nor refused there, is in the run's events"
fi

# Two runs at once: each one's events reach the broker, in messages of their own, named.
"$PYTHON" tests/lib/mqtt_tool.py collect "$PORT" bob bobpw subq "$T/msgs.jsonl" "$T/subready" &
SUB_PID=$!; PIDS="$PIDS $SUB_PID"
timeout 10 sh -c "until [ -e '$T/subready' ]; do sleep 0.05; done"
for k in 1 2; do
    cat >"$T/two$k.yaml" <<P
perfuse: 1
name: two $k
rig: rig1
safe_state: {pump$k: 0 uL/min}
steps:
  - {name: s$k, set: {pump$k: $k uL/min}, for: 2 s}
P
    ctl run "$T/two$k.yaml" --name "mq-$k" >/dev/null || not_ok "run mq-$k starts"
done
ctl wait --run mq-1 >/dev/null
ctl wait --run mq-2 >/dev/null
# With no run going, a manual set is the rig's event, published with no run.
ctl set pump1 2 uL/min >/dev/null || not_ok "a manual set with no run"
# Each run's last events leave with the next interval after its end.
timeout 10 sh -c "until [ \$(grep -c 'run_completed' '$T/msgs.jsonl') -ge 2 ] && grep -q 'manual set pump1.flow' '$T/msgs.jsonl'; do sleep 0.1; done"
kill -TERM "$SUB_PID"; wait_gone "$SUB_PID" 10
check "two runs at once: the events of each reach the broker, each message one run's, named" "$PYTHON" -c "
import json, sys
by = {}
for l in open(sys.argv[1]):
    m = json.loads(l)
    if not m['topic'].endswith('/events'):
        continue
    p = json.loads(m['payload'])
    by.setdefault(p.get('name'), set()).update(e['code'] for e in p['events'])
ok = all('run_completed' in by.get(n, ()) and 'step_start' in by.get(n, ()) for n in ('mq-1', 'mq-2'))
print('# events by run:', {k: len(v) for k, v in by.items()})
sys.exit(0 if ok else 1)" "$T/msgs.jsonl"
check "with no run, a manual set is published as the rig's event (run null), with who did it" "$PYTHON" -c "
import json, sys
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m['topic'].endswith('/events'):
        p = json.loads(m['payload'])
        if p.get('run') is None and any(e['code'] == 'cmd_set' and 'pump1.flow = 2 uL/min by' in e['message']
                                         and e['utc'] for e in p['events']):
            sys.exit(0)
sys.exit(1)" "$T/msgs.jsonl"
finish
