#!/bin/bash
# A full disk during a run: on a small tmpfs (or, without the rights to mount
# one, a file-size limit set with prlimit), the run file cannot grow. The
# daemon raises a storage alarm, control goes on, samples wait in a bounded
# memory buffer; the part that did not fit is counted in a samples_lost event
# once the disk has room again, and everything else reaches the file.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

mkdir -p "$T/disk"
mode=${STORAGE_FULL_MODE:-tmpfs}
if [ "$mode" = tmpfs ] && ! mount -t tmpfs -o size=6m tmpfs "$T/disk" 2>/dev/null; then
    mode=prlimit
fi
cleanup_mount() { [ "$mode" = tmpfs ] && umount "$T/disk" 2>/dev/null; cleanup; }
trap cleanup_mount EXIT
echo "# full disk by $mode"

start_sim sim --rig-out "$T/rig0.yaml" || { not_ok "perfuse-sim starts"; finish; }
# A small buffer, so that a few seconds of a full disk overflow it.
sed "s|^rig: sim$|rig: sim\nrecorder: {buffer: 100}|" "$T/rig0.yaml" >"$T/rig.yaml"
mkdir -p "$T/full" "$T/disk/runs"
mkfifo "$T/ready"
if [ "$mode" = tmpfs ]; then
    # Fill the disk but for 256 KiB: enough to create the file, not its data.
    dd if=/dev/zero of="$T/disk/filler" bs=64k count=$(( (6 * 1024 - 256) / 64 )) 2>/dev/null
    "$BUILD/perfused" --rig "$T/rig.yaml" --socket "$T/sock" --data-dir "$T/disk/runs" --ready-fd 3 \
        3>"$T/ready" 2>"$T/full/perfused.log" &
else
    prlimit --fsize=262144: "$BUILD/perfused" --rig "$T/rig.yaml" --socket "$T/sock" \
        --data-dir "$T/disk/runs" --ready-fd 3 3>"$T/ready" 2>"$T/full/perfused.log" &
fi
DAEMON_PID=$!; PIDS="$PIDS $DAEMON_PID"; SOCK="$T/sock"
timeout 20 sh -c "read -r line <'$T/ready'" || { not_ok "daemon starts"; finish; }
cat >"$T/p.yaml" <<'P'
perfuse: 1
name: full disk
rig: sim
safe_state: {pump1: 0 uL/min}
steps:
  - {name: one, set: {pump1: 10 uL/min}, for: 6 s}
  - {name: two, set: {pump1: 20 uL/min}, for: 8 s}
P
file=$(ctl run "$T/p.yaml" | sed -n 's/^file //p')
check "the run starts on the nearly full disk" test -n "$file"
for _ in $(seq 1 100); do ctl --json status | grep -q '"code": "storage_fault"' && break; sleep 0.1; done
st=$(ctl --json status)
check "a storage alarm is raised" grep -q '"code": "storage_fault"' <<<"$st"
check "the run goes on" grep -q '"state": "running"' <<<"$st"
sleep 6                  # the disk stays full this long: the buffer (100 samples) overflows
if [ "$mode" = tmpfs ]; then rm -f "$T/disk/filler"; else prlimit --pid "$DAEMON_PID" --fsize=unlimited; fi
for _ in $(seq 1 100); do ctl --json status | grep -q '"state": "cleared"' && break; sleep 0.1; done
check "the alarm clears once the disk has room" sh -c "ctl() { timeout 20 '$BUILD/perfusectl' --socket '$SOCK' \"\$@\"; }; ctl --json status | grep -q '\"state\": \"cleared\"'"
ctl ack all >/dev/null
res=$(ctl --json wait)
check "the run completes" grep -q '"state": "completed"' <<<"$res"
timeout 60 "$PYTHON" - "$file" <<'PY'
import re, sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, series, text
f = open_run(sys.argv[1])
ev = {text(e["code"]): text(e["message"]) for e in f["events"]}
lost = re.match(r"(\d+) samples lost between ([0-9.]+) s and ([0-9.]+) s", ev.get("samples_lost", ""))
print("samples_lost:", ev.get("samples_lost"))
bad = 0
def need(c, w):
    global bad
    print(("ok - " if c else "not ok - ") + w); bad += not c
need(lost is not None and int(lost.group(1)) > 0, "the loss is counted in a samples_lost event")
raised = [text(e["message"]) for e in f["events"] if text(e["code"]) == "alarm_raised"]
need(any("storage_fault" in m for m in raised), "the storage alarm is in the file")
need(any("journal_failed" in m for m in raised), "so is the journal's (it cannot be written either)")
steps = [text(s["name"]) for s in f["steps"]]
need(steps == ["one", "two"] and all(text(s["outcome"]) == "done" for s in f["steps"]), "both steps ran to the end")
t, v = series(f, "channels", "chip1.pressure")
t0, t1 = float(lost.group(2)), float(lost.group(3))
need(len(t) > 50 and np.all(np.diff(t) > 0), f"{len(t)} samples kept, in order")
need(((t > t1 + 0.5) & (t < 13)).sum() > 30, "samples after the disk had room again are all there")
sys.exit(1 if bad else 0)
PY
check "the file accounts for the full disk (see above)" test $? -eq 0
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
finish
