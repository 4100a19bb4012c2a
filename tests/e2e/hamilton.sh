#!/bin/bash
# Hamilton MVP selector valves through the whole stack: perfuse-sim serves two
# valves on hamilton.tty (7O1), perfused initialises each once, a protocol
# moves them, and the run file's setpoints and readings match what the
# simulator saw on the wire. Then the line's faults (timeout, garbage, the
# valves' own refusal, an unplugged line) are injected during a run: the
# daemon survives, the events are recorded, the valves come back by
# themselves, and neither a reconnect nor a new daemon initialises (turns)
# them again.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_sim sim --rig-out "$T/rig.yaml" --lab-devices --trace "$T/trace" || { not_ok "perfuse-sim starts"; finish; }
CTL=$SIM_CTL
check "the simulator's control socket is known ($CTL)" test -S "$CTL"
check "the rig lists the valves' line at 9600 7O1" \
    grep -q "name: valves, type: serial, port: .*hamilton.tty, baud: 9600, parity: O, data_bits: 7" "$T/rig.yaml"
check "the rig lists selector1 at a and selector2 at b" \
    sh -c "grep -q 'name: selector1, driver: hamilton, bus: valves, address: a, ports: 6' '$T/rig.yaml' &&
           grep -q 'name: selector2, driver: hamilton, bus: valves, address: b, ports: 8' '$T/rig.yaml'"

start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" || { not_ok "perfused starts"; finish; }

# position NAME: the channel's last reading, "None" while unknown.
position() {
    ctl --json status | "$PYTHON" -c "
import json, sys
print([c.get('value') for c in json.load(sys.stdin)['channels'] if c['name'] == sys.argv[1]][0])" "$1"
}
# wait_position NAME VALUE: poll the status until the reading is VALUE (bounded).
wait_position() {
    for i in $(seq 150); do
        [ "$(position "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# count_events CODE SOURCE-PREFIX: how many such events the current run has.
count_events() {
    ctl --json events | "$PYTHON" -c "
import json, sys
ev = json.load(sys.stdin)['events']
print(sum(1 for e in ev if e['code'] == sys.argv[1] and e['source'].startswith(sys.argv[2])))" "$1" "$2"
}
# wait_events CODE SOURCE-PREFIX N: poll the run's events until there are N such (bounded, 20 s).
wait_events() {
    for i in $(seq 200); do
        [ "$(count_events "$1" "$2")" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}
lxr_count() { grep -c "^hamilton $1LXR " "$T/trace"; }

check "selector1 is initialised and reads port 1" wait_position selector1.position 1.0
check "selector2 is initialised and reads port 1" wait_position selector2.position 1.0
check "connect initialised each valve once (LXR on the wire: a $(lxr_count a), b $(lxr_count b))" \
    test "$(lxr_count a)$(lxr_count b)" = 11

cat >"$T/valves.yaml" <<'P'
perfuse: 1
name: valve selection
rig: sim
on_fault: continue
safe_state: {pump1: 0 uL/min}
steps:
  - {name: port 3, set: {selector1: 3}, for: 2 s}
  - {name: ports 5 and 8, set: {selector1: 5, selector2: 8}, for: 2 s}
  - {name: back to 1, set: {selector1: 1, selector2: 2}, for: 2 s}
  - {name: faults, set: {selector1: 4}, for: 5 min}
P
file=$(ctl run "$T/valves.yaml" | sed -n 's/^file //p')
check "the run starts ($file)" test -n "$file"
check "selector1 reaches port 4 in the last step" wait_position selector1.position 4.0

check "inject: the valves' line goes silent" test "$(sim_cmd "$CTL" "fault timeout:hamilton")" = ok
check "a silent valve is faulted (device_faulted)" wait_events device_faulted selector 1
sim_cmd "$CTL" "clear hamilton" >/dev/null
check "it recovers by itself (device_recovered)" wait_events device_recovered selector 1
check "inject: garbage instead of replies" test "$(sim_cmd "$CTL" "fault garbage:hamilton")" = ok
n=$(count_events device_faulted selector)
check "garbled replies fault it again" wait_events device_faulted selector $((n + 1))
sim_cmd "$CTL" "clear hamilton" >/dev/null
n=$(count_events device_recovered selector)
check "and it recovers again" wait_events device_recovered selector $((n + 1))
check "inject: the valves refuse (NAK)" test "$(sim_cmd "$CTL" "fault exception:hamilton")" = ok
check "a refusal is a device_error, not a value" wait_events device_error selector1.position 1
sim_cmd "$CTL" "clear hamilton" >/dev/null
check "the refusal ends (device_error_cleared)" wait_events device_error_cleared selector1.position 1
check "inject: the line is unplugged" test "$(sim_cmd "$CTL" "fault disconnect:hamilton")" = ok
check "the daemon sees the link go down" wait_events link_down valves 1
sim_cmd "$CTL" "clear hamilton" >/dev/null
check "and come back" wait_events link_up valves 1
n_lqp=$(grep -c "^hamilton aLQP " "$T/trace")
for i in $(seq 100); do [ "$(grep -c "^hamilton aLQP " "$T/trace")" -gt "$n_lqp" ] && break; sleep 0.1; done
check "selector1 is read again after the replug" test "$(grep -c "^hamilton aLQP " "$T/trace")" -gt "$n_lqp"
check "selector1 still reads port 4" wait_position selector1.position 4.0
check "the reconnect did not initialise (turn) the valves again (LXR: a $(lxr_count a), b $(lxr_count b))" \
    test "$(lxr_count a)$(lxr_count b)" = 11
check "the daemon survived the faults" kill -0 "$DAEMON_PID"

ctl abort --reason "valve test done" >/dev/null
ctl wait >/dev/null

"$PYTHON" - "$file" "$T/trace" <<'PY'
import re
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
f = open_run(sys.argv[1])
trace = open(sys.argv[2]).read().splitlines()
fails = 0
def expect(c, w):
    global fails
    print(("ok - " if c else "not ok - ") + w)
    fails += not c

ts1, s1 = series(f, "setpoints", "selector1.position")
ts2, s2 = series(f, "setpoints", "selector2.position")
expect(list(s1) == [3, 5, 1, 4], f"selector1's setpoints are recorded: {list(s1)}")
expect(list(s2) == [8, 2], f"selector2's setpoints are recorded: {list(s2)}")
# The moves on the wire, in the shortest direction (port numbers rise clockwise).
moves = [l.split()[1] for l in trace if l.startswith("hamilton ") and "LP" in l.split()[1]]
expect(moves == ["aLP03R", "aLP05R", "bLP18R", "aLP01R", "bLP02R", "aLP04R"],
       f"the simulator saw each move once, the short way round: {moves}")
g = f["channels"]["selector1.position"]
expect(text(g.attrs["units"]) == "port", "selector1.position is recorded in ports")
for name, addr, sets, tset in (("selector1.position", "a", s1, ts1), ("selector2.position", "b", s2, ts2)):
    t, v = series(f, "channels", name)
    ok = v[np.isfinite(v)]
    wire = {int(m.group(2)) for l in trace
            for m in [re.match(r"hamilton (%s)LQP \1LQP(\d+)$" % addr, l)] if m}
    expect(len(ok) > 5 and set(ok.astype(int)) <= wire and np.all(ok == np.round(ok)),
           f"{name}: every recorded reading ({len(ok)}) is a port the valve reported on the wire {sorted(wire)}")
    # Once a move is commanded the readings are the new port, never the old one
    # half-way (0.1 s: a reading already on the wire when the setpoint came).
    for i, (ts, p) in enumerate(zip(tset, sets)):
        end = tset[i + 1] if i + 1 < len(tset) else t[-1] + 1
        after = v[(t > ts + 0.1) & (t < end) & np.isfinite(v)]
        expect(len(after) > 0 and np.all(after == p),
               f"{name}: after the setpoint {p:g} every reading is {p:g} ({sorted(set(after.tolist()))})")
ev = f["events"][:]
codes = [(text(e["code"]), text(e["source"])) for e in ev]
for code, src in (("device_faulted", "selector"), ("device_recovered", "selector"),
                  ("device_error", "selector1.position"), ("device_error_cleared", "selector1.position"),
                  ("link_down", "valves"), ("link_up", "valves")):
    expect(any(c == code and s.startswith(src) for c, s in codes), f"the run file has {code} from {src}")
err = [text(e["message"]) for e in ev if text(e["code"]) == "device_error"]
expect(any("refused 'F' (NAK)" in m for m in err), f"the device_error names the refusal: {err[:1]}")
sys.exit(1 if fails else 0)
PY
check "the run file matches the wire (see above)" test $? -eq 0

# A new daemon on the same line: it opens the 7O1 line again and leaves the
# initialised valves where they are.
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 15
start_perfused "$T/d" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/runs" || { not_ok "perfused starts again"; finish; }
check "after a daemon restart selector1 reads port 4" wait_position selector1.position 4.0
check "and selector2 port 2" wait_position selector2.position 2.0
check "without initialising (turning) them again (LXR: a $(lxr_count a), b $(lxr_count b))" \
    test "$(lxr_count a)$(lxr_count b)" = 11
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 15
finish
