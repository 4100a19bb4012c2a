#!/bin/bash
# The walking skeleton end to end: perfused --sim runs protocols/demo.yaml
# through the real client, drivers and wire protocols; the run file is then
# checked with h5py (tests/e2e/check_demo.py) and h5dump.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_daemon demo || { not_ok "daemon starts"; finish; }
ok "daemon starts with the simulated rig (sim pid ${SIM_PID:-none})"
[ -n "$SIM_PID" ] && ok "perfuse-sim runs as a child of perfused" || not_ok "perfuse-sim is a child"

out=$(ctl run protocols/demo.yaml --operator e2e)
file=$(echo "$out" | sed -n 's/^file //p')
check "run starts and names its file ($file)" test -n "$file"

st=$(ctl --json status)
check "status reports the run as running" grep -q '"state": "running"' <<<"$st"
check "status names the current step" grep -q '"step"' <<<"$st"

res=$(ctl --json wait)
check "the demo completes" grep -q '"state": "completed"' <<<"$res"

check "the file exists" test -f "$file"
check "h5dump reads the file" sh -c "h5dump -H '$file' >/dev/null"
check "h5dump shows the NXlog groups" sh -c "h5dump -a /channels/chip1.pressure/NX_class '$file' | grep -q NXlog"
if "$PYTHON" tests/e2e/check_demo.py "$file" protocols/demo.yaml; then
    ok "run file content (check_demo.py)"
else
    not_ok "run file content (check_demo.py)"
fi

kill -TERM "$DAEMON_PID"
check "perfused exits on SIGTERM" wait_gone "$DAEMON_PID" 15
[ -n "$SIM_PID" ] && check "perfuse-sim is stopped with it" wait_gone "$SIM_PID" 5
finish
