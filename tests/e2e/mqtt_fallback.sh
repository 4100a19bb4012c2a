#!/bin/bash
# A broker that speaks only MQTT 3.1.1: perfused asks for MQTT 5, is refused,
# and connects again in 3.1.1; its state and status get through. A rig whose
# password file cannot be read runs without MQTT and raises an alarm saying so.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
. tests/lib/mqtt.sh

PORT=$(free_port)
"$PYTHON" tests/lib/mqtt311_broker.py "$PORT" "$T/broker.log" &
PIDS="$PIDS $!"
timeout 10 sh -c "until grep -q listening '$T/broker.log' 2>/dev/null; do sleep 0.05; done"

sim_rig rig1 "$T/r1" "mqtt: {host: 127.0.0.1, port: $PORT, site: lab, interval: 0.5 s}"
start_rig_daemon "$T/r1" || { not_ok "daemon starts"; finish; }
timeout 15 sh -c "until grep -q 'publish perfuse/v1/lab/rig1/status' '$T/broker.log'; do sleep 0.05; done"
sed 's/^\(publish [^ ]*\) .*/\1/' "$T/broker.log" | sort | uniq -c | sed 's/^/# /'
check "MQTT 5 asked first, refused" grep -q "^refused level 5" "$T/broker.log"
check "then 3.1.1" grep -q "^connected level 4" "$T/broker.log"
check "state online published over 3.1.1" grep -q '^publish perfuse/v1/lab/rig1/state .*"state":"online"' "$T/broker.log"
check "status published over 3.1.1" grep -q "^publish perfuse/v1/lab/rig1/status " "$T/broker.log"

# A password file that cannot be read: no MQTT, an alarm, the daemon serves on.
sim_rig rig2 "$T/r2" "mqtt: {host: 127.0.0.1, port: $PORT, username: rig2, password_file: missing.pw, site: lab}"
start_rig_daemon "$T/r2" || { not_ok "daemon 2 starts"; finish; }
st=$(ctl --json status)
check "an unreadable password file is an alarm naming the file and the fix" "$PYTHON" -c "
import json,sys; a=json.loads(sys.argv[1])['alarms']
sys.exit(0 if any(x['code']=='mqtt_config' and 'missing.pw' in x['message'] and 'first line is the password' in x['message'] for x in a) else 1)" "$st"
check "and the daemon serves on" test "$("$PYTHON" -c "import json,sys; print(json.loads(sys.argv[1])['state'])" "$st")" = idle
finish
