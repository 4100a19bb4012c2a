#!/bin/bash
# perfused --realtime: the event loop and every bus thread run SCHED_FIFO at
# the priority given; the recorder, the MQTT client, the thread pool and
# perfuse-sim stay at normal priority; status says the loop's scheduling; a
# bad priority is refused. Where the system refuses real-time scheduling (no
# root, CAP_SYS_NICE or RLIMIT_RTPRIO), the daemon says so and runs normally.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

"$BUILD/perfused" --sim --realtime 0 >/dev/null 2>"$T/bad.err"
rc=$?
check "--realtime 0 is refused as a usage error (exit $rc)" test "$rc" -eq 2
check "  ... naming the range" grep -q "from 1 to 99" "$T/bad.err"

start_daemon rt --realtime 17 || { not_ok "perfused --realtime 17 starts"; finish; }
cat >"$T/p.yaml" <<'P'
perfuse: 1
name: rt
safe_state: {pump1: 0 uL/min}
steps:
  - {name: flow, set: {pump1: 5 uL/min}, for: 30 s}
P
ctl run "$T/p.yaml" >/dev/null || not_ok "a run starts"
sched=$(ctl --json status | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin).get('scheduling'))")
# thread NAME POLICY PRIO: the policy (0 normal, 1 fifo) and priority of each thread, from /proc.
threads=$("$PYTHON" - "$DAEMON_PID" <<'PY'
import os, sys
pid = sys.argv[1]
for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
    try:
        comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
        f = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    print(comm, f[38], f[37])
PY
)
echo "$threads" | sed 's/^/# /'
if [ "$(id -u)" -eq 0 ] || [ "$(ulimit -r)" != 0 ]; then
    check "status: the loop runs 'fifo 17' ($sched)" test "$sched" = "fifo 17"
    check "every bus thread runs SCHED_FIFO at 17" \
        sh -c "! grep '^bus-' <<EOT | grep -qv ' 1 17\$'
$threads
EOT
grep -q '^bus-' <<EOT
$threads
EOT"
    check "the main (loop) thread runs SCHED_FIFO at 17" sh -c "head -1 <<EOT | grep -q ' 1 17\$'
$threads
EOT"
    check "the recorder runs at normal priority" sh -c "grep '^recorder' <<EOT | grep -q ' 0 0\$'
$threads
EOT"
    sim_pol=$(awk '{print $41}' "/proc/$SIM_PID/stat" 2>/dev/null)
    check "perfuse-sim runs at normal priority (policy ${sim_pol:-?})" test "${sim_pol:-x}" = 0
else
    check "without the permission, status says normal ($sched)" test "$sched" = normal
    check "  ... and the log says why" grep -q "cannot run at real-time priority 17" "$T/rt/perfused.log"
fi
ctl abort --yes --reason done >/dev/null 2>&1 || ctl abort --reason done >/dev/null
finish
