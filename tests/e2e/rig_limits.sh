#!/bin/bash
# Rig limits are always on: with no run a safe-stop limit stops every pump and
# raises an alarm naming the rig limit; during a run it ends the run as faulted
# with the protocol's safe state; a bad rig limit is refused, naming the fix.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig0.yaml" || { not_ok "perfuse-sim starts"; finish; }
# At 50 uL/min the simulated chip2 settles near 150 mbar, well past 60.
sed "s|^rig: sim$|rig: sim\nlimits: [{channel: chip2.pressure, max: 60 mbar, action: safe-stop}]|" \
    "$T/rig0.yaml" >"$T/rig.yaml"
lim_line=$(grep -n "^limits:" "$T/rig.yaml" | cut -d: -f1)

start_perfused "$T/a" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" || { not_ok "daemon starts"; finish; }

# status_field CHANNEL KEY: one channel's value or setpoint from status --json.
status_field() {
    ctl --json status | "$PYTHON" -c "
import json,sys
c=[c for c in json.load(sys.stdin)['channels'] if c['name']==sys.argv[1]][0]
print(c.get(sys.argv[2]))" "$1" "$2"
}
# rig_alarm: the first listed alarm's message if it names the rig limit.
rig_alarm() {
    ctl --json status | "$PYTHON" -c "
import json,sys
a=[a['message'] for a in json.load(sys.stdin).get('alarms', []) if '(rig limit' in a['message']]
print(a[0] if a else '')"
}

check "no run: pump2 set by hand" sh -c "'$BUILD/perfusectl' --socket '$SOCK' set pump2 50 uL/min >/dev/null"
msg=""
for _ in $(seq 1 150); do msg=$(rig_alarm); [ -n "$msg" ] && break; sleep 0.1; done
echo "# alarm: $msg"
check "no run: the rig limit trips and raises an alarm naming it" \
    grep -q "^chip2.pressure .* is above its max 60 mbar (rig limit, line $lim_line, action safe-stop)" <<<"$msg"
# The pump's own safe state (stopped) is no setpoint of perfused's: status must not show 50 still.
check "no run: status no longer shows the old setpoint" test "$(status_field pump2.flow setpoint)" = None
for _ in $(seq 1 50); do [ "$(status_field pump2.flow value)" = 0.0 ] && break; sleep 0.1; done
check "no run: pump2 reads back stopped" test "$(status_field pump2.flow value)" = 0.0
# Let the chip's pressure fall back before the run.
for _ in $(seq 1 100); do
    p=$(status_field chip2.pressure value); "$PYTHON" -c "import sys; sys.exit(0 if float(sys.argv[1]) < 20 else 1)" "$p" && break
    sleep 0.1
done
ctl ack all >/dev/null

cat >"$T/p.yaml" <<'P'
perfuse: 1
name: rig limit run
rig: sim
safe_state: {pump1: 0 uL/min, pump2: 0 uL/min}
steps:
  - {name: gentle, set: {pump1: 5 uL/min}, for: 1 s}
  - {name: too much, set: {pump2: 50 uL/min}, for: 30 s}
P
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
check "run started" test -n "$file"
res=$(ctl --json wait)
check "during a run the rig limit ends it as faulted" grep -q '"state": "faulted"' <<<"$res"
ev=$(run_events "$file" code source message)
check "the run's end names the rig limit" \
    grep -q "^run_faulted|runner|.*chip2.pressure .* above its max 60 mbar (rig limit, line $lim_line, action safe-stop)" <<<"$ev"
check "the protocol's safe state was applied" grep -q "^safe_state|" <<<"$ev"
for ch in pump1.flow pump2.flow; do
    check "$ch setpoint is 0 after the safe-stop" test "$(status_field $ch setpoint)" = 0.0
done

# A rig limit on a channel that does not exist is refused at start, naming the line.
sed "s|^rig: sim$|rig: sim\nlimits: [{channel: chip9.pressure, max: 60 mbar}]|" "$T/rig0.yaml" >"$T/bad.yaml"
err=$(timeout 20 "$BUILD/perfused" --rig "$T/bad.yaml" --socket "$T/bsock" --data-dir "$T/bruns" 2>&1); rc=$?
echo "$err" | head -3 | sed 's/^/# /'
check "a rig limit on an unknown channel is refused, naming the place (exit $rc)" \
    grep -q "bad.yaml:3:[0-9]*: error: unknown channel 'chip9.pressure'.*did you mean" <<<"$err"
check "and perfused exits non-zero" test "$rc" -ne 0
finish
