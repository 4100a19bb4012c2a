#!/bin/bash
# perfusectl fleet against 4 perfused on one broker (one of them over TLS,
# with a test CA made with openssl): all four shown online, a run with its
# step and ETA, active alarms; one shown offline within the keep-alive after
# kill -9.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/mqtt.sh

# A test CA and a broker certificate for 127.0.0.1.
mkdir -p "$T/ca"
(
    cd "$T/ca" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=perfuse test CA" \
        -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext.cnf -out server.crt
) >"$T/openssl.log" 2>&1 || { cat "$T/openssl.log"; not_ok "test CA made"; finish; }

broker_setup "$T/broker"
PORT=$(free_port)
TPORT=$(free_port)
broker_start "$T/broker" "$PORT" "listener $TPORT 127.0.0.1
cafile $T/ca/ca.crt
certfile $T/ca/server.crt
keyfile $T/ca/server.key" || { not_ok "mosquitto starts"; finish; }
grep -q "port $TPORT" "$T/broker/mosquitto.log" || timeout 10 sh -c "until grep -q 'port $TPORT' '$T/broker/mosquitto.log'; do sleep 0.05; done"

for i in 1 2 3 4; do
    if [ $i = 4 ]; then
        mq="mqtt: {host: 127.0.0.1, port: $TPORT, tls: {ca: $T/ca/ca.crt}, username: rig4, password_file: pw, site: lab, keepalive: 5 s}"
    else
        mq="mqtt: {host: 127.0.0.1, port: $PORT, username: rig$i, password_file: pw, site: lab, keepalive: 5 s}"
    fi
    # rig1's chip1 stops answering: a device fault, an active alarm.
    sim_rig "rig$i" "$T/r$i" "$mq" $([ $i = 1 ] && echo "--fault timeout:chip1,at=1s")
    echo rigpw >"$T/r$i/pw"
    start_rig_daemon "$T/r$i" || { not_ok "daemon $i starts"; finish; }
    eval "DPID$i=$DAEMON_PID; SOCK$i=$SOCK"
done
for i in 1 2 3 4; do
    timeout 10 sh -c "until grep -q mqtt_connected '$T/r$i/perfused.log'; do sleep 0.05; done" ||
        { not_ok "rig$i reaches the broker"; tail -5 "$T/r$i/perfused.log"; }
done

cat >"$T/p.yaml" <<P
perfuse: 1
name: fleet run
rig: rig2
safe_state: {pump1: 0 uL/min}
steps:
  - {name: prime, set: {pump1: 5 uL/min}, for: 60 s}
P
SOCK=$SOCK2 ctl run "$T/p.yaml" >/dev/null
check "run started on rig2" test "$(SOCK=$SOCK2 ctl --json status | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['state'])")" = running
echo alicepw >"$T/alicepw"
URL="mqtt://alice@127.0.0.1:$PORT"
# fleet_json: the fleet once all four have published their status with the run in it.
fleet_json() { timeout 20 "$BUILD/perfusectl" --json fleet --mqtt "$URL" --password-file "$T/alicepw"; }
for _ in $(seq 1 50); do
    fj=$(fleet_json)
    "$PYTHON" -c "
import json,sys; f=json.loads(sys.argv[1]); r=[x for x in f if x['rig']=='rig2']
a=[x for x in f if x['rig']=='rig1']
sys.exit(0 if len(f)==4 and r and r[0].get('run_state')=='running' and a and a[0]['alarms'] else 1)" "$fj" && break
    sleep 0.2
done
echo "$fj" | "$PYTHON" -c "import json,sys; [print('#', x['rig'], x['state'], x.get('run_state'), x.get('eta')) for x in json.load(sys.stdin)]"
check "fleet lists all four rigs, online" "$PYTHON" -c "
import json,sys; f=json.loads(sys.argv[1]); sys.exit(0 if sorted(x['rig'] for x in f)==['rig1','rig2','rig3','rig4'] and all(x['state']=='online' for x in f) else 1)" "$fj"
check "rig4 (over TLS with the lab's CA) is among them" "$PYTHON" -c "
import json,sys; f=json.loads(sys.argv[1]); sys.exit(0 if any(x['rig']=='rig4' and x['state']=='online' for x in f) else 1)" "$fj"
check "rig2's run with its step and ETA" "$PYTHON" -c "
import json,sys; r=[x for x in json.loads(sys.argv[1]) if x['rig']=='rig2'][0]
sys.exit(0 if r['step']['name']=='prime' and r.get('eta') and r['protocol']=='fleet run' else 1)" "$fj"
table=$(timeout 20 "$BUILD/perfusectl" fleet --mqtt "$URL" --password-file "$T/alicepw")
echo "$table" | sed 's/^/# /'
check "rig1's active alarm (chip1's device fault)" "$PYTHON" -c "
import json,sys; r=[x for x in json.loads(sys.argv[1]) if x['rig']=='rig1'][0]
sys.exit(0 if any(a['source']=='chip1' for a in r['alarms']) else 1)" "$fj"
check "the table names the run's step and its ETA" grep -q "^lab *rig2 *online *running *fleet run *1 prime" <<<"$table"

kill -9 "$DPID3"
killed_at=$("$PYTHON" -c "import time; print(time.time())")
offline=""
for _ in $(seq 1 75); do
    fj=$(fleet_json)
    "$PYTHON" -c "
import json,sys; r=[x for x in json.loads(sys.argv[1]) if x['rig']=='rig3']
sys.exit(0 if r and r[0]['state']=='offline' else 1)" "$fj" && { offline=$("$PYTHON" -c "import time; print(time.time())"); break; }
    sleep 0.2
done
check "rig3 shown offline after kill -9" test -n "$offline"
[ -n "$offline" ] && echo "# offline after $("$PYTHON" -c "print(round($offline - $killed_at, 2))") s (keep-alive 5 s)"
check "  ... within the keep-alive (5 s x 1.5)" "$PYTHON" -c "import sys; sys.exit(0 if '$offline' and $offline - $killed_at <= 7.5 else 1)"
check "the other three stay online" "$PYTHON" -c "
import json,sys; f=json.loads(sys.argv[1]); sys.exit(0 if sum(x['state']=='online' for x in f)==3 else 1)" "$fj"
check "fleet refuses a wrong password (exit 3, says why)" sh -c "
timeout 20 '$BUILD/perfusectl' fleet --mqtt 'mqtt://alice:wrong@127.0.0.1:$PORT' 2>&1 >/dev/null | grep -q 'not authori[sz]ed'"
finish
