#!/bin/bash
# The researcher's side of a run file: a generic NeXus reader walks the NX_class
# tree from NXroot through NXentry to every NXlog; the old paths still work;
# readback channels say where their setpoints are; a simulation's times are
# simulated and say so; pump counters start at the run's start (a second run
# on the same simulated rig); perfuse-export windows, resamples, writes a long
# gzipped table and UTC times for events and steps.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
CTL="$BUILD/perfusectl"

"$CTL" simulate protocols/demo.yaml -o "$T/demo.h5" --seed 4 >/dev/null
check "a simulated demo file is written" test -s "$T/demo.h5"

timeout 60 "$PYTHON" - "$T/demo.h5" <<'PY'
import datetime, sys
import h5py
sys.path.insert(0, "tests/lib")
from h5run import open_run, text
f = open_run(sys.argv[1])
bad = 0
def fail(msg):
    global bad
    print("not ok:", msg); bad += 1

def nx(obj):
    return text(obj.attrs.get("NX_class", ""))

# A generic reader: start at the root, go only into groups that have an
# NX_class, and collect every NXlog with its path.
if nx(f) != "NXroot":
    fail(f"the root is {nx(f)!r}, not NXroot")
entries = [k for k, g in f.items() if isinstance(g, h5py.Group) and nx(g) == "NXentry"]
if entries != ["entry"]:
    fail(f"one NXentry expected, found {entries}")
logs = {}
def walk(g, path, depth=0):
    for k in g:
        link = g.get(k, getlink=True)
        if not isinstance(link, h5py.HardLink):
            continue              # a reader walks the tree, not the links into it
        o = g[k]
        if isinstance(o, h5py.Group) and nx(o):
            if nx(o) == "NXlog":
                logs[f"{path}/{k}"] = o
            else:
                walk(o, f"{path}/{k}", depth + 1)
for e in entries:
    walk(f[e], f"/{e}")
want = {f"/entry/{grp}/{n}" for grp in ("channels", "setpoints", "confirmed") for n in f[grp]}
if "regulators" in f:       # each regulator's series, one group per regulator
    want |= {f"/entry/regulators/{r}/{n}" for r in f["regulators"] for n in f["regulators"][r]}
if set(logs) != want:
    fail(f"the NXlog walk found {sorted(set(logs) ^ want)} differently from the old paths")
for p, g in logs.items():
    if "time" not in g or "value" not in g or text(g["time"].attrs.get("units", "")) != "s" \
            or "start" not in g["time"].attrs or "units" not in g["value"].attrs:
        fail(f"{p} is not a complete NXlog (time with units and start, value with units)")
for grp in ("channels", "setpoints", "confirmed"):
    if nx(f["entry"][grp]) != "NXcollection":
        fail(f"/entry/{grp} is not an NXcollection")
    if f[grp] != f["entry"][grp] or not isinstance(f.get(grp, getlink=True), h5py.SoftLink):
        fail(f"/{grp} is not a link to /entry/{grp}")
if nx(f["entry/sample"]) != "NXsample" or nx(f["entry/user"]) != "NXuser":
    fail("no NXsample or NXuser in the entry")
for k, want_v in (("title", text(f.attrs["protocol_name"])), ("experiment_identifier", text(f.attrs["run_id"])),
                  ("start_time", text(f.attrs["start_time"])), ("end_time", text(f.attrs["end_time"]))):
    if text(f["entry"][k][()]) != want_v:
        fail(f"/entry/{k} is {text(f['entry'][k][()])!r}, not {want_v!r}")
print(f"{len(logs)} NXlog groups found by the NeXus walk")
# pump1.flow read back: kind readback, and a pointer to what was commanded.
g = f["channels/pump1.flow"]
if text(g.attrs["kind"]) != "readback" or text(g.attrs.get("commanded", "")) != "/entry/setpoints/pump1.flow" \
        or "pump1.flow" not in f["entry/setpoints"]:
    fail(f"pump1.flow: kind {text(g.attrs['kind'])}, commanded {text(g.attrs.get('commanded', ''))}")
# A simulation: its end is start + the simulated time, and the file says so.
iso = lambda s: datetime.datetime.fromisoformat(text(s).replace("Z", "+00:00"))
span = (iso(f.attrs["end_time"]) - iso(f.attrs["start_time"])).total_seconds()
last = max(f["steps"]["end"])
if text(f.attrs.get("time_source", "")) != "simulated" or abs(span - last) > 1:
    fail(f"simulated file: time_source {text(f.attrs.get('time_source', ''))!r}, end - start {span} s, "
         f"last step ends at {last} s")
sys.exit(1 if bad else 0)
PY
check "a generic NeXus walk finds every series; old paths link; simulated times say so" test $? -eq 0
h5dump -H "$T/demo.h5" >"$T/dump" 2>&1
check "h5dump reads the tree and shows the links" grep -q 'LINKTARGET "/entry/channels"' "$T/dump"
check "h5dump reads a series by its old path" sh -c "h5dump -d /channels/chip1.pressure/value '$T/demo.h5' | grep -q DATASET"

# Two runs on the same simulated rig: the second's pump counter starts at 0,
# its raw reading at the start kept.
cat >"$T/short.yaml" <<'P'
perfuse: 1
name: short
safe_state: {pump1: 0 uL/min}
steps:
  - {name: pump, set: {pump1: 600 uL/min}, for: 2 s}
P
start_daemon d || { not_ok "daemon starts"; finish; }
f1=$(ctl run "$T/short.yaml" --operator e2e | sed -n 's/^file //p')
ctl --json wait >/dev/null
f2=$(ctl run "$T/short.yaml" --operator e2e --sample chip_id=C-17 --notes "lot 2211" | sed -n 's/^file //p')
ctl --json wait >/dev/null
check "two runs leave two files" test -f "$f1" -a -f "$f2"
timeout 60 "$PYTHON" - "$f1" "$f2" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, text
a, b = open_run(sys.argv[1]), open_run(sys.argv[2])
ga, gb = a["channels/pump1.dispensed"], b["channels/pump1.dispensed"]
va, vb = ga["value"][:], gb["value"][:]
va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
raw_a, raw_b = ga.attrs["counter_at_start"], gb.attrs["counter_at_start"]
ds_b = gb["counter_at_start"][0]
print(f"run 1: from {raw_a} uL, {va[0]}..{va[-1]}; run 2: from {raw_b} uL (dataset {ds_b}), {vb[0]}..{vb[-1]}")
# The run's sample and notes are in the NeXus entry (and the old places).
meta = (text(b["entry/sample"].attrs["NX_class"]) == "NXsample" and text(b["entry/sample/chip_id"][()]) == "C-17"
        and text(b["sample/chip_id"][()]) == "C-17" and text(b["entry/notes"][()]) == "lot 2211"
        and text(b.attrs["notes"]) == "lot 2211")
print("sample and notes in /entry:", meta)
# The second run's start is where the first left the counter (or later).
ok = (va[0] == 0 and vb[0] == 0 and va[-1] > 0 and vb[-1] > 0 and
      raw_b >= raw_a + va[-1] - 1e-6 and ds_b == raw_b and meta)
sys.exit(0 if ok else 1)
PY
check "pump1.dispensed starts at 0 in each run, its raw start kept; --sample and --notes in /entry" test $? -eq 0
kill -TERM "$DAEMON_PID"; wait_gone "$DAEMON_PID" 15 >/dev/null

# perfuse-export: a window, 1 s means, a long gzipped table, UTC times.
"$PYTHON" scripts/perfuse-export "$T/demo.h5" --csv "$T/x" --from 10s --to 20 --resample 1s >/dev/null
check "export with --from/--to --resample runs" test $? -eq 0
"$PYTHON" scripts/perfuse-export "$T/demo.h5" --csv "$T/l" --long --gzip --to 0.5min >/dev/null
check "export --long --gzip runs" test -s "$T/l/long.csv.gz"
timeout 60 "$PYTHON" - "$T/demo.h5" "$T/x" "$T/l" <<'PY'
import csv, datetime, gzip, sys
import numpy as np
sys.path.insert(0, "tests/lib")
from h5run import open_run, text
f = open_run(sys.argv[1]); x, l = sys.argv[2], sys.argv[3]
bad = 0
def fail(msg):
    global bad
    print("not ok:", msg); bad += 1
start = datetime.datetime.fromisoformat(text(f.attrs["start_time"]).replace("Z", "+00:00"))
g = f["channels/chip1.pressure"]
t, v = g["time"][:], g["value"][:]
rows = list(csv.reader(open(f"{x}/chip1.pressure.csv")))
if rows[0] != ["run_time_s", "time_utc", "value", "min", "max", "count", "unit"]:
    fail(f"resampled header {rows[0]}")
if [float(r[0]) for r in rows[1:]] != [float(s) for s in range(10, 20)]:
    fail(f"the window 10-20 s in 1 s bins: {[r[0] for r in rows[1:]]}")
for r in rows[1:]:
    sel = (t >= float(r[0])) & (t < float(r[0]) + 1) & np.isfinite(v)
    if not (np.isclose(float(r[2]), v[sel].mean()) and float(r[3]) == v[sel].min()
            and float(r[4]) == v[sel].max() and int(r[5]) == sel.sum() and r[6] == "mbar"):
        fail(f"bin {r} against {v[sel].mean()} {v[sel].min()} {v[sel].max()} {sel.sum()}")
    u = datetime.datetime.fromisoformat(r[1].replace("Z", "+00:00"))
    if abs((u - start).total_seconds() - float(r[0])) > 0.001:
        fail(f"time_utc {r[1]} is not start + {r[0]} s")
ev = list(csv.reader(open(f"{x}/events.csv")))
if ev[0][-1] != "time_utc" or any(not (10 <= float(r[0]) < 20) for r in ev[1:]):
    fail(f"events.csv: header {ev[0]}, or rows outside the window")
st = list(csv.reader(open(f"{x}/steps.csv")))
if st[0][-3:] != ["planned_start_utc", "start_utc", "end_utc"] or len(st) < 2:
    fail(f"steps.csv header {st[0]} ({len(st) - 1} rows)")
lr = list(csv.reader(gzip.open(f"{l}/long.csv.gz", "rt")))
if lr[0] != ["time_utc", "run_time_s", "channel", "value", "unit"]:
    fail(f"long header {lr[0]}")
n = {}
for r in lr[1:]:
    n[r[2]] = n.get(r[2], 0) + 1
want = int(((t < 30)).sum())
if n.get("chip1.pressure") != want or "setpoints/pump1.flow" not in n:
    fail(f"long table: {n.get('chip1.pressure')} chip1.pressure rows (want {want}); channels {sorted(n)}")
if any(float(r[1]) >= 30 for r in lr[1:]):
    fail("long table has rows past --to")
print(f"{len(rows) - 1} resampled rows, {len(lr) - 1} long rows checked")
sys.exit(1 if bad else 0)
PY
check "export values: window, means/min/max/count, UTC, long table" test $? -eq 0
"$PYTHON" scripts/perfuse-export "$T/demo.h5" --csv "$T/p" --progress >/dev/null 2>"$T/progress"
check "--progress draws a bar on stderr" grep -q '100.0%' "$T/progress"
"$PYTHON" scripts/perfuse-export "$T/demo.h5" --csv "$T/q" >/dev/null 2>"$T/noprogress"
check "no bar when stderr is not a terminal" test ! -s "$T/noprogress"
"$PYTHON" scripts/perfuse-export "$T/demo.h5" --csv "$T/e" --resample "1 parsec" >/dev/null 2>"$T/err"
check "a bad interval is refused with the units it takes" grep -q "unknown unit 'parsec'" "$T/err"
finish
