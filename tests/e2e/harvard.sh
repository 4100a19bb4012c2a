#!/bin/bash
# Harvard Apparatus pumps through the whole stack: perfuse-sim serves two
# Pump 11 Elite pumps in a daisy chain on their own pty (--lab-devices);
# perfused drives them from a protocol, and the run file must hold exactly
# what the simulator said on the wire. Then the line's faults: silence,
# garbage, refusals, a pulled cable and an empty syringe. The daemon must
# survive each, record it in /events, and the pumps must come back by
# themselves; a stalled pump's flow is never recorded as a number.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig.yaml" --lab-devices --trace "$T/trace" || { not_ok "perfuse-sim starts"; finish; }
CTL=$SIM_CTL
check "the rig file lists the Harvard line and both pumps" \
    grep -q "name: hpump2, driver: harvard, bus: syringes, address: 1" "$T/rig.yaml"
if ! start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs"; then
    not_ok "perfused starts on the rig with the Harvard pumps"; finish
fi
ok "perfused starts on the rig with the Harvard pumps"

# wait_event SOURCE CODE PATTERN SECONDS: wait (bounded) for an event of the
# current run whose message contains PATTERN; print it.
wait_event() {
    "$PYTHON" - "$BUILD" "$SOCK" "$@" <<'PY'
import json, subprocess, sys, time
build, sock, src, code, pat, secs = sys.argv[1:7]
end = time.monotonic() + float(secs)
while time.monotonic() < end:
    r = subprocess.run([build + "/perfusectl", "--socket", sock, "--json", "events"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode == 0:
        for e in json.loads(r.stdout)["events"]:
            if e["source"] == src and e["code"] == code and pat in e["message"]:
                print(e["message"])
                sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
PY
}
# flow_is CHANNEL VALUE: wait (bounded) until status shows the channel at VALUE;
# the read-back follows at 2 Hz and the control protocol has no push for it.
flow_is() {
    local v=""
    for i in $(seq 100); do
        v=$(ctl --json status | "$PYTHON" -c "import json,sys; print([c.get('value') for c in json.load(sys.stdin)['channels'] if c['name']=='$1'][0])")
        [ "$v" = "$2" ] && return 0
        sleep 0.05
    done
    echo "$1 is $v, not $2"
    return 1
}
# fault SPEC: inject a fault through the simulator's control socket.
fault() { test "$(sim_cmd "$CTL" "fault $1")" = ok; }
# clear: end the Harvard line's faults.
clear_line() { test "$(sim_cmd "$CTL" "clear harvard")" = ok; }

# 1. A protocol infuses with one pump while the other withdraws.
cat >"$T/pumps.yaml" <<'P'
perfuse: 1
name: harvard pumps
rig: sim
safe_state: {hpump1: 0 uL/min, hpump2: 0 uL/min}
steps:
  - {name: infuse and withdraw, set: {hpump1: 20 uL/min, hpump2: -5 uL/min}, for: 3 s}
  - {name: faster, set: {hpump1: 40 uL/min}, for: 2 s}
  - {name: stop, set: {hpump1: 0 uL/min, hpump2: 0 uL/min}, for: 1 s}
P
file=$(ctl run "$T/pumps.yaml" | sed -n 's/^file //p')
res=$(ctl --json wait)
check "the protocol completes" grep -q '"state": "completed"' <<<"$res"
check "connect set hpump1's syringe diameter" grep -q "^harvard diameter14.57 00:" "$T/trace"
check "connect set hpump2's at address 1" grep -q "^harvard 1:diameter4.78 01:" "$T/trace"
check "hpump1 was started infusing" grep -q "^harvard irun 00>" "$T/trace"
check "hpump2 was started withdrawing" grep -q "^harvard 1:wrun 01<" "$T/trace"
check "hpump1's new rate went while it ran, without a restart" grep -q "^harvard irate40ul/min 00>" "$T/trace"
"$PYTHON" - "$file" "$T/trace" <<'PY'
import re, sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
f = open_run(sys.argv[1])
fails = 0
def expect(c, w):
    global fails
    print(("ok - " if c else "not ok - ") + w)
    fails += not c
# What the simulated pumps said on the wire, by address: delivered flow
# (crate's rate signed by the prompt, 0 when idle) and the infused volume.
flows = {0: set(), 1: set()}
vols = {0: set(), 1: set()}
for line in open(sys.argv[2]):
    m = re.match(r"^harvard (?:(\d+):)?(crate|ivolume) ([0-9.]+)(ul/min|ul)(\d\d)([:<>*])$", line.strip())
    if not m:
        continue
    a, v, p = int(m.group(1) or 0), float(m.group(3)), m.group(6)
    if m.group(2) == "crate" and p != "*":
        flows[a].add(v if p == ">" else -v if p == "<" else 0.0)
    else:
        vols[a].add(v)
for name, a in (("hpump1", 0), ("hpump2", 1)):
    t, v = series(f, "channels", name + ".flow")
    expect(len(v) >= 8 and not np.isnan(v).any(), f"{name}.flow has {len(v)} samples, none failed")
    extra = set(v.tolist()) - flows[a]
    expect(not extra, f"every {name}.flow value is one the pump sent ({sorted(set(v.tolist()))}, not sent: {sorted(extra)})")
    t, v = series(f, "channels", name + ".dispensed")
    # The file counts from the run's start; the pump's reading there is kept.
    raw = float(f["channels"][name + ".dispensed"].attrs["counter_at_start"])
    extra = {round(x + raw, 4) for x in v.tolist()} - vols[a]
    expect(len(v) >= 4 and not extra, f"every {name}.dispensed value is one the pump sent (not sent: {sorted(extra)})")
t, v = series(f, "channels", "hpump1.flow")
expect({20.0, 40.0} <= set(v.tolist()), "hpump1 delivered 20 and then 40 uL/min")
expect(-5.0 in set(series(f, "channels", "hpump2.flow")[1].tolist()), "hpump2 withdrew at 5 uL/min")
# The steps' setpoints, then the safe state (0) at the end of the run.
ts, s = series(f, "setpoints", "hpump1.flow")
expect(s.tolist()[:3] == [20.0, 40.0, 0.0] and set(s.tolist()[3:]) <= {0.0},
       f"hpump1's setpoints are recorded ({s.tolist()})")
ts, s = series(f, "setpoints", "hpump2.flow")
expect(s.tolist()[:2] == [-5.0, 0.0] and set(s.tolist()[2:]) <= {0.0},
       f"hpump2's setpoints are recorded ({s.tolist()})")
t, v = series(f, "channels", "hpump1.dispensed")
expect(abs(v[-1] - (20 * 3 + 40 * 2) / 60) < 0.4, f"hpump1 infused about 2.33 uL ({v[-1]:.4f})")
sys.exit(1 if fails else 0)
PY
check "the run file matches the wire (see above)" test $? -eq 0

# 2. Faults on the line while hpump1 infuses; the run carries on.
cat >"$T/long.yaml" <<'P'
perfuse: 1
name: harvard faults
rig: sim
on_fault: continue
safe_state: {hpump1: 0 uL/min, hpump2: 0 uL/min}
steps:
  - {name: infuse, set: {hpump1: 10 uL/min}, for: 10 min}
P
file=$(ctl run "$T/long.yaml" | sed -n 's/^file //p')
check "hpump1 infuses under the new protocol" flow_is hpump1.flow 10.0
for kind in timeout garbage; do
    fault "$kind:harvard" && ok "inject $kind:harvard" || not_ok "inject $kind:harvard"
    m=$(wait_event hpump1 device_faulted "" 10); check "$kind: hpump1 faulted ($m)" test -n "$m"
    clear_line
    m=$(wait_event hpump1 device_recovered "" 10); check "$kind: hpump1 recovered by itself" test -n "$m"
    # The next fault must be a new event: start from a clean run's log.
    ctl abort >/dev/null; ctl --json wait >/dev/null
    file=$(ctl run "$T/long.yaml" | sed -n 's/^file //p')
    flow_is hpump1.flow 10.0 || not_ok "hpump1 infuses again after $kind"
done
fault "exception:harvard" && ok "inject exception:harvard" || not_ok "inject exception:harvard"
m=$(wait_event hpump1.flow device_error "Command error" 10)
check "exception: the pump's refusal is a device_error ($m)" test -n "$m"
clear_line
m=$(wait_event hpump1.flow device_error_cleared "" 10)
check "exception: hpump1 reads again ($m)" test -n "$m"
fault "disconnect:harvard" && ok "inject disconnect:harvard" || not_ok "inject disconnect:harvard"
m=$(wait_event syringes link_down "" 10); check "disconnect: the line is down ($m)" test -n "$m"
clear_line
m=$(wait_event syringes link_up "" 15); check "disconnect: the line comes back by itself" test -n "$m"

# 3. The syringe runs empty while hpump1 infuses: the pump stalls.
fault "syringe-empty:harvard" && ok "inject syringe-empty:harvard" || not_ok "inject syringe-empty:harvard"
m=$(wait_event hpump1.flow device_error "stalled: syringe empty or blocked" 10)
check "the stall is a device_error on hpump1.flow ($m)" test -n "$m"
timeout 5 sh -c "until grep -q '^harvard crate 0ul/min00\*' '$T/trace'; do sleep 0.1; done"
check "the simulator answered crate with the stall prompt" grep -q '^harvard crate 0ul/min00\*' "$T/trace"
sleep 1   # a few more stalled reads go into the file (time, not synchronisation)
stops=$(grep -c '^harvard stop 00' "$T/trace")
ctl abort >/dev/null
ctl --json wait >/dev/null
timeout 5 sh -c "until [ \$(grep -c '^harvard stop 00:' '$T/trace') -gt $stops ]; do sleep 0.1; done"
check "the abort's safe state stopped the stalled pump (the prompt is idle again)" \
    test "$(grep -c '^harvard stop 00:' "$T/trace")" -gt "$stops"
check "the daemon survived every fault" kill -0 "$DAEMON_PID"
"$PYTHON" - "$file" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
f = open_run(sys.argv[1])
ev = f["events"][:]
fails = 0
def expect(c, w):
    global fails
    print(("ok - " if c else "not ok - ") + w)
    fails += not c
stall = [e for e in ev if text(e["code"]) == "device_error" and "stalled" in text(e["message"])]
expect(len(stall) >= 1 and text(stall[0]["source"]) == "hpump1.flow", "the file records the stall on hpump1.flow")
ts = stall[0]["time"] if stall else 0
# Until the abort's safe state stops the pump, every read is of a stalled pump.
ends = [e["time"] for e in ev if e["time"] > ts and text(e["code"]) in ("cmd_abort", "safe_state")]
te = min(ends) if ends else ts
t, v = series(f, "channels", "hpump1.flow")
during = v[(t > ts + 0.01) & (t < te)]
expect(len(during) >= 1 and bool(np.all(np.isnan(during))),
       f"no flow number was recorded for the stalled pump ({len(during)} reads, all NaN)")
before = v[(t < ts) & ~np.isnan(v)]
expect(len(before) >= 1 and before[-1] == 10.0, "just before the stall hpump1 delivered 10 uL/min")
sys.exit(1 if fails else 0)
PY
check "the run file records the stall, never as a flow (see above)" test $? -eq 0
finish
