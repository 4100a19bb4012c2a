#!/bin/bash
# Commands over MQTT: an operator's pause works and is recorded with the
# broker's user; the reply carries the MQTT 5 correlation data, or the id on
# 3.1.1; a viewer's command is refused by the broker and changes nothing; a
# malformed payload gets an error reply and the daemon carries on.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/mqtt.sh

broker_setup "$T/broker"
PORT=$(free_port)
broker_start "$T/broker" "$PORT" || { not_ok "mosquitto starts"; finish; }
sim_rig rig1 "$T/r1" "mqtt: {host: 127.0.0.1, port: $PORT, username: rig1, password_file: pw, site: lab}"
echo rigpw >"$T/r1/pw"
start_rig_daemon "$T/r1" || { not_ok "daemon starts"; finish; }
timeout 10 sh -c "until grep -q mqtt_connected '$T/r1/perfused.log'; do sleep 0.05; done"
check "perfused speaks MQTT 5 to a broker that offers it" grep -q "as perfused-lab-rig1 (p5" "$T/broker/mosquitto.log"
# A rig with the wrong password: the broker's refusal is said, the daemon serves on.
SOCK1=$SOCK
sim_rig rig2 "$T/r2" "mqtt: {host: 127.0.0.1, port: $PORT, username: rig2, password_file: pw, site: lab}"
echo wrong >"$T/r2/pw"
start_rig_daemon "$T/r2" || not_ok "daemon 2 starts"
timeout 10 sh -c "until grep -q mqtt_refused '$T/r2/perfused.log'; do sleep 0.05; done"
check "a refused login is said, with what to check" grep -q "mqtt_refused: the MQTT broker .* refuses this rig's connection (.*check mqtt.username" "$T/r2/perfused.log"
check "  ... and the daemon serves on" sh -c "timeout 20 '$BUILD/perfusectl' --socket '$SOCK' status >/dev/null"
SOCK=$SOCK1

cat >"$T/p.yaml" <<P
perfuse: 1
name: mqtt commands
rig: rig1
safe_state: {pump1: 0 uL/min}
steps:
  - {name: flow, set: {pump1: 5 uL/min}, for: 60 s}
P
state() { ctl --json status | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['state'])"; }
C=perfuse/v1/lab/rig1

# mqtt_cmd USER PASS PAYLOAD V5|V311: publish to cmd/USER, print the reply.
mqtt_cmd() {
    timeout 20 "$PYTHON" tests/lib/mqtt_tool.py command "$PORT" "$1" "$2" "$C/cmd/$1" "$C/reply/$1" "$3" "$4"
}
reply_ok() {   # REPLY_JSON FIELD VALUE: the reply payload's FIELD is VALUE
    "$PYTHON" -c "
import json,sys; r=json.loads(sys.argv[1]).get('reply',{}); p=r.get('payload',{})
v=p
for k in sys.argv[2].split('.'): v=v.get(k) if isinstance(v,dict) else None
sys.exit(0 if str(v)==sys.argv[3] else 1)" "$@"
}

# A run started over MQTT: its protocol loads on the thread pool, the reply comes after.
req=$("$PYTHON" -c "import json,sys; print(json.dumps({'cmd':'run','protocol_text':open(sys.argv[1]).read(),'protocol_path':sys.argv[1],'operator':'Alice','id':'run1'}))" "$T/p.yaml")
r=$(mqtt_cmd alice alicepw "$req" V311)
echo "# run: ${r:0:200}"
check "run started over MQTT (reply with its file)" reply_ok "$r" ok True
file=$("$PYTHON" -c "import json,sys; print(json.loads(sys.argv[1])['reply']['payload']['result']['file'])" "$r")
check "the run is running" test "$(state)" = running
r=$(mqtt_cmd alice alicepw "$req" V311)
check "a second run while one runs: refused" reply_ok "$r" error.code refused

r=$(mqtt_cmd alice alicepw '{"cmd":"pause","reason":"bubble in line 2"}' V5)
echo "# pause: ${r:0:200}"
check "operator pause over MQTT 5: ok reply" reply_ok "$r" ok True
check "the reply carries the request's correlation data" "$PYTHON" -c "
import json,sys; sys.exit(0 if json.loads(sys.argv[1])['reply'].get('correlation_ok') else 1)" "$r"
check "the run is paused" test "$(state)" = paused

# A viewer: the broker refuses the publish (MQTT 5 reason 135, not authorized).
out=$(timeout 10 mosquitto_pub -V 5 -d -h 127.0.0.1 -p "$PORT" -u bob -P bobpw -q 1 -t "$C/cmd/bob" \
    -m '{"cmd":"abort","reason":"viewer"}' 2>&1)
check "the broker refuses a viewer's command (PUBACK 135)" grep -q "RC:135" <<<"$out"
out=$(timeout 10 mosquitto_pub -V 5 -d -h 127.0.0.1 -p "$PORT" -u bob -P bobpw -q 1 -t "$C/cmd/alice" \
    -m '{"cmd":"abort","reason":"impersonating"}' 2>&1)
check "nor may a viewer publish under another user's name" grep -q "RC:135" <<<"$out"
out=$(timeout 10 mosquitto_pub -V 5 -d -h 127.0.0.1 -p "$PORT" -u alice -P alicepw -q 1 -t "$C/cmd/rig1" \
    -m '{"cmd":"abort","reason":"impersonating"}' 2>&1)
check "nor may an operator publish under another user's name" grep -q "RC:135" <<<"$out"

# Malformed payloads: an error reply each, and the daemon carries on.
r=$(mqtt_cmd alice alicepw '{"cmd":' V311)
check "not JSON: error reply bad_request" reply_ok "$r" error.code bad_request
r=$(mqtt_cmd alice alicepw '{"cmd":"set","channel":5,"value":"1 uL/min","id":"x1"}' V311)
check "wrong argument type: error reply invalid, with the id (3.1.1)" reply_ok "$r" error.code invalid
check "  ... the id is echoed" reply_ok "$r" id x1
r=$(mqtt_cmd alice alicepw '{"cmd":"watch"}' V5)
check "watch over MQTT: refused, naming the topics to subscribe to" reply_ok "$r" error.code invalid
r=$(mqtt_cmd alice alicepw '{"cmd":"launch"}' V5)
check "unknown command: error reply unknown_command" reply_ok "$r" error.code unknown_command
check "the daemon carries on: still paused, still answering" test "$(state)" = paused

r=$(mqtt_cmd alice alicepw '{"cmd":"resume","id":7}' V311)
check "resume over MQTT 3.1.1 with an id" reply_ok "$r" id 7
check "the run runs again" test "$(state)" = running
r=$(mqtt_cmd alice alicepw '{"cmd":"abort","reason":"end of test"}' V5)
check "abort over MQTT" reply_ok "$r" ok True
ctl --json wait >/dev/null

ev=$(run_events "$file")
echo "$ev" | grep -i "mqtt\|viewer\|imperson" | sed 's/^/# /'
check "the pause is recorded with the broker's user" grep -q "^cmd_pause|.*mqtt user alice" <<<"$ev"
check "the run request is recorded with the broker's user" grep -q "^run_requested|run of 'mqtt commands' requested by mqtt user alice" <<<"$ev"
check "the abort is recorded with the broker's user" grep -q "^cmd_abort|abort by mqtt user alice: end of test" <<<"$ev"
if grep -q 'viewer\|impersonating\|mqtt user bob' <<<"$ev"; then
    not_ok "the viewer's and the impersonated commands never reached perfused"
else
    ok "the viewer's and the impersonated commands never reached perfused"
fi
finish
