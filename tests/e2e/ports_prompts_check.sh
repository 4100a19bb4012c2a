#!/bin/bash
# A valve's port is a whole number: `set valve1.position 2.5` and a protocol
# setting 2.5 are refused, naming the channel (the valve does not move).
# `confirm` answers a prompt in a paused run: recorded at once, the run goes
# on past the prompt when resumed. `check` follows a syringe through withdraw
# and refill (a net-zero cycle does not run out) and warns when a waveform
# swings a pump into reverse.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

# state_is STATE: wait (bounded) until status says STATE.
state_is() {
    for _ in $(seq 1 100); do
        [ "$(ctl --json status | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
# valve_reads PORT: wait (bounded) until valve1.position reads PORT.
valve_reads() {
    for _ in $(seq 1 50); do
        ctl --json status | "$PYTHON" -c "
import json,sys; s=json.load(sys.stdin)
v=[c for c in s['channels'] if c['name']=='valve1.position'][0]
sys.exit(0 if v.get('value') == $1 and v.get('setpoint') in (None, $1) else 1)" && return 0
        sleep 0.1
    done
    return 1
}

start_daemon ports || { not_ok "daemon starts"; finish; }

# --- integer channels
out=$(ctl set valve1.position 2.5 2>&1); rc=$?
check "set valve1.position 2.5 is refused (rc $rc: $out)" \
    sh -c "[ $rc -eq 1 ] && echo '$out' | grep -q 'valve1.position takes whole numbers only (port 1, 2, 3...), found 2.5'"
check "the valve did not move" valve_reads 1
out=$(ctl set valve1 3 2>&1); rc=$?
check "set valve1 3 is accepted (rc $rc: $out)" test $rc -eq 0
check "the valve goes to port 3" valve_reads 3
cat >"$T/frac.yaml" <<'P'
perfuse: 1
name: fractions
rig: sim
steps:
  - {name: half a port, set: {valve1: 2.5}, for: 1 s}
P
out=$(ctl run "$T/frac.yaml" 2>&1); rc=$?
check "a protocol setting a valve to 2.5 is refused at its place (rc $rc: $out)" \
    sh -c "[ $rc -eq 1 ] && echo '$out' | grep -q 'frac.yaml:5:39: error: valve1.position takes whole numbers only'"

# --- confirm while paused
cat >"$T/ask.yaml" <<'P'
perfuse: 1
name: ask while paused
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {name: ask, prompt: Replace the medium}
  - {name: after, set: {pump1: 2 uL/min}, for: 3 s}
P
file=$(ctl run "$T/ask.yaml" | sed -n 's/^file //p')
for _ in $(seq 1 100); do ctl --json status | grep -q '"prompt": "Replace' && break; sleep 0.1; done
ctl pause --reason "tubing check" >/dev/null
out=$(ctl confirm 2>&1); rc=$?
check "confirm answers the prompt of a paused run (rc $rc)" test $rc -eq 0
st=$(ctl --json status)
check "the run stays paused and no prompt waits any more" "$PYTHON" -c "
import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s['state'] == 'paused' and s['prompt'] is None and s['step']['name'] == 'ask' else 1)" "$st"
out=$(ctl confirm 2>&1); rc=$?
check "a second confirm says the prompt is already confirmed (rc $rc: $out)" \
    sh -c "[ $rc -eq 1 ] && echo '$out' | grep -q 'already confirmed; the run is paused and goes on past it when resumed'"
ctl resume >/dev/null
check "after resume the run goes on past the prompt" grep -q '"name": "after"' <<<"$(ctl --json status)"
ctl wait >/dev/null
check "the file records the confirmation during the pause and the prompt's end" timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run, text
f = open_run(sys.argv[1])
ev = [(text(e['code']), text(e['message'])) for e in f['events']]
steps = [(text(r['name']), text(r['outcome'])) for r in f['steps']]
ok = any(c == 'prompt_confirmed' and 'while the run is paused' in m for c, m in ev)
sys.exit(0 if ok and steps == [('ask', 'confirmed'), ('after', 'done')] and text(f.attrs['state']) == 'completed' else 1)" "$file"

# --- check: withdraw/refill and reversal
cat >"$T/cycle.yaml" <<'P'
perfuse: 1
name: withdraw and refill
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - name: cycle
    repeat: 200
    steps:
      - {name: push, set: {pump1: 100 uL/min}, for: 1 min}
      - {name: refill, set: {pump1: -100 uL/min}, for: 1 min}
  - {name: stop, set: {pump1: 0 uL/min}, for: 1 s}
  - name: pulsatile
    waveform: {pump2: {shape: sine, mean: 5 uL/min, amplitude: 10 uL/min, period: 1 s}}
    for: 1 min
P
"$BUILD/perfusectl" check "$T/cycle.yaml" >"$T/check.out" 2>"$T/check.err"; rc=$?
check "check passes a net-zero withdraw/refill cycle (rc $rc)" test $rc -eq 0
check "check does not say RUNS OUT for it" sh -c "! grep -q 'RUNS OUT\|runs out' '$T/check.out' '$T/check.err'"
check "check shows what is pushed, withdrawn and net" \
    grep -q "pump1.flow       delivers    20.000 mL, withdraws 20.000 mL (net 0.000 mL out, at most 0.100 mL at once)" "$T/check.out"
check "check warns that the waveform reverses pump2" \
    grep -q "cycle.yaml:13:16: warning: the waveform of step 'pulsatile' swings pump2.flow between 15 and -5 uL/min: the pump runs in reverse" "$T/check.err"
finish
