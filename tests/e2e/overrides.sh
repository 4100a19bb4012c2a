#!/bin/bash
# A manual set in a pause is an override: status (text and JSON) and events name
# it; resume restores the protocol's value and says so; resume --keep-overrides
# keeps it until the protocol next sets that channel; a restart (SIGTERM or
# kill -9) in a pause keeps the override, shown and applied, and so does a
# restart of the running run after resume --keep-overrides.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

cat >"$T/p.yaml" <<'P'
perfuse: 1
name: overrides
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {name: first, set: {pump1: 10 uL/min}, for: 5 s}
  - {name: second, set: {pump1: 20 uL/min}, for: 10 min}
P
start_daemon ov || { not_ok "daemon starts"; finish; }
# ov_field KEY: KEY of pump1.flow's override in status --json ('' if none).
ov_field() {
    ctl --json status | "$PYTHON" -c "
import json,sys
o=[o for o in json.load(sys.stdin).get('overrides', []) if o['channel']=='pump1.flow']
print(o[0][sys.argv[1]] if o else '')" "$1"
}
setpoint() {
    ctl --json status | "$PYTHON" -c "
import json,sys
print([c for c in json.load(sys.stdin)['channels'] if c['name']=='pump1.flow'][0].get('setpoint'))"
}
state() { ctl --json status | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
events() { ctl --json events | "$PYTHON" -c "
import json,sys
for e in json.load(sys.stdin)['events']: print(e['code'] + '|' + e['source'] + '|' + e['message'])"; }

file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
ctl pause --reason "bubble" >/dev/null
ctl set pump1 500 uL/min >/dev/null
check "status --json names the override (value)" test "$(ov_field value)" = 500.0
check "with who set it" grep -q "^uid [0-9]* (" <<<"$(ov_field by)"
check "since when" grep -qE "^20[0-9-]+T[0-9:]+" <<<"$(ov_field since)"
check "and the protocol's value it replaces" test "$(ov_field protocol_value)" = 10.0
txt=$(ctl status)
check "text status names the override" grep -qE "^  pump1.flow +500 uL/min by uid .* since 20.* \(protocol: 10\)" <<<"$txt"
check "an override event names channel, value, who and since" \
    grep -qE "^override\|pump1.flow\|pump1.flow = 500 uL/min: manual override by uid .* since 20" <<<"$(events)"

out=$(ctl resume)
echo "$out" | head -2 | sed 's/^/# /'
check "resume prints what it restored" grep -q "^restored  pump1.flow to the protocol's 10 uL/min (override was 500 uL/min)" <<<"$out"
check "no override is left" test -z "$(ov_field value)"
check "pump1 is back at the protocol's value" test "$(setpoint)" = 10.0
check "the restoration is an event" grep -q "^override_restored|pump1.flow|pump1.flow back to the protocol's 10 uL/min" <<<"$(events)"

ctl pause >/dev/null
ctl set pump1 300 uL/min >/dev/null
out=$(ctl resume --keep-overrides)
check "resume --keep-overrides says what it kept" grep -q "^kept      pump1.flow at 300 uL/min" <<<"$out"
check "running, the kept override is still shown" sh -c "[ '$(state)' = running ] && [ '$(ov_field value)' = 300.0 ]"
check "and applied" test "$(setpoint)" = 300.0
for _ in $(seq 1 100); do [ -z "$(ov_field value)" ] && break; sleep 0.1; done
check "the protocol's next step on pump1 ends the override" sh -c "[ -z '$(ov_field value)' ] && [ '$(setpoint)' = 20.0 ]"
check "which is an event" grep -q "^override_ended|pump1.flow|the protocol sets pump1.flow to 20 uL/min" <<<"$(events)"

# A restart in a pause keeps the override: SIGTERM, then kill -9.
ctl pause >/dev/null
ctl set pump1 200 uL/min >/dev/null
check "the journal holds the override" journal_has "$T/ov/runs/run.journal" "j['overrides']['pump1.flow']['value'] == 200"
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 20
start_daemon ov || { not_ok "daemon restarts after SIGTERM"; finish; }
check "after SIGTERM and a restart the run is still paused" test "$(state)" = paused
check "the override is still shown" sh -c "[ '$(ov_field value)' = 200.0 ] && [ '$(ov_field protocol_value)' = 20.0 ]"
check "and applied" test "$(setpoint)" = 200.0
kill -KILL "$DAEMON_PID"; wait_gone "$DAEMON_PID" 10
start_daemon ov || { not_ok "daemon restarts after kill -9"; finish; }
check "after kill -9 and a restart the override is still shown" test "$(ov_field value)" = 200.0
check "and applied" test "$(setpoint)" = 200.0
out=$(ctl resume)
check "resume then restores the protocol's value" grep -q "^restored  pump1.flow to the protocol's 20 uL/min (override was 200 uL/min)" <<<"$out"
check "pump1 is at 20 again" test "$(setpoint)" = 20.0

# An override kept on resume survives a restart of the running run too.
ctl pause >/dev/null
ctl set pump1 250 uL/min >/dev/null
ctl resume --keep-overrides >/dev/null
check "the journal holds the kept override, running" journal_has "$T/ov/runs/run.journal" \
    "j['overrides']['pump1.flow']['value'] == 250 and j['position']['paused'] is False"
kill -KILL "$DAEMON_PID"; wait_gone "$DAEMON_PID" 10
start_daemon ov || { not_ok "daemon restarts after kill -9 with a kept override"; finish; }
check "after kill -9 the running run still shows the kept override" \
    sh -c "[ '$(state)' = running ] && [ '$(ov_field value)' = 250.0 ] && [ '$(ov_field protocol_value)' = 20.0 ]"
check "and applies it" test "$(setpoint)" = 250.0
ctl abort --reason "end of test" >/dev/null
ctl wait >/dev/null
ev=$(timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
for e in open_run(sys.argv[1])['events']: print(text(e['code']))" "$file")
echo "# file events: $(grep -c '^override' <<<"$ev") override*, state $(timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
print(text(open_run(sys.argv[1]).attrs['state']))" "$file")"
check "the run file has the overrides' events" sh -c "[ \$(grep -c '^override\$' <<'X'
$ev
X
) -ge 3 ] && grep -q '^override_restored$' <<'X'
$ev
X"
finish
