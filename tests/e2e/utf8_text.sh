#!/bin/bash
# Text is UTF-8 from end to end: an operator "Müller" and step names with
# accents go into the run file as UTF-8 HDF5 strings (h5py and h5dump read
# them as such), into status and events whole; text that does not fit is
# refused where it enters, with the limit named; a 95-byte operator name
# ending in "é" is kept whole, its journal is written and the run continues
# after kill -9.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

start_daemon utf8 || { not_ok "daemon starts"; finish; }

# A 96-byte step name (the most a step name may have) ending in a two-byte character.
long_name="$(printf 'S%.0s' $(seq 1 94))é"
cat >"$T/p.yaml" <<P
perfuse: 1
name: Spülung
rig: sim
on_restart: resume
safe_state: {pump1: 0 uL/min}
steps:
  - {name: Spülung der Kammer, set: {pump1: 5 uL/min}, for: 1 s}
  - name: wiederholen
    repeat: 2
    steps:
      - {name: "$long_name", set: {pump1: 3 uL/min}, for: 1 s}
  - {name: Médium prüfen, prompt: Médium wechseln (µL-Spritze)}
P
check "the protocol is valid" "$BUILD/perfusectl" check "$T/p.yaml" >/dev/null 2>&1

# --- the operator name: refused where it enters when it cannot be kept whole
op96="$(printf 'x%.0s' $(seq 1 94))é"
out=$(ctl run "$T/p.yaml" --operator "$op96" 2>&1); rc=$?
check "a 96-byte operator name is refused by perfusectl, naming the limit (rc $rc: $out)" \
    sh -c "[ $rc -eq 1 ] && echo '$out' | grep -q 'is 96 bytes long; at most 95 bytes fit'"
reply=$("$PYTHON" - "$SOCK" "$T/p.yaml" "$op96" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
f = s.makefile("rwb")
f.readline()
req = {"id": 1, "cmd": "run", "protocol_path": sys.argv[2], "protocol_text": open(sys.argv[2]).read(),
       "operator": sys.argv[3]}
f.write((json.dumps(req) + "\n").encode()); f.flush()
print(f.readline().decode().strip())
PY
)
check "the daemon refuses it too, as invalid, naming the limit" "$PYTHON" -c "
import json, sys; r = json.loads(sys.argv[1])
sys.exit(0 if not r['ok'] and r['error']['code'] == 'invalid' and 'at most 95 bytes' in r['error']['message'] else 1)" "$reply"
out=$(ctl run "$T/p.yaml" --operator "$(printf 'M\xfcller')" 2>&1); rc=$?
check "an operator name that is not UTF-8 (Latin-1) is refused (rc $rc: $out)" \
    sh -c "[ $rc -eq 1 ] && echo '$out' | grep -q 'not valid UTF-8'"
printf 'perfuse: 1\nname: Sp\xfclung\nsteps:\n  - {set: {pump1: 1 uL/min}, for: 1 s}\n' >"$T/latin1.yaml"
out=$(ctl run "$T/latin1.yaml" 2>&1); rc=$?
check "a protocol saved as Latin-1 is refused at its line and column (rc $rc: $out)" \
    sh -c "[ $rc -eq 1 ] && echo '$out' | grep -q 'latin1.yaml:2:9: error: this byte is not UTF-8 text'"
sed "s/{name: \"S/{name: \"SS/" "$T/p.yaml" >"$T/long.yaml"
out=$("$BUILD/perfusectl" check "$T/long.yaml" 2>&1)
check "a step name longer than 96 bytes is an error at its place" \
    grep -q "long.yaml:11:16: error: the step 'name' is 97 bytes long; at most 96 bytes fit" <<<"$out"
check "nothing was started by the refusals" sh -c "! ls '$T/utf8/runs'/*.h5 >/dev/null 2>&1"

# --- Müller: status, events, the run file
file=$(ctl run "$T/p.yaml" --operator Müller | sed -n 's/^file //p')
check "run --operator Müller starts" test -n "$file"
for _ in $(seq 1 100); do ctl --json status | grep -q '"prompt": "Médium' && break; sleep 0.1; done
st=$(ctl --json status)
check "status shows the prompt's step and text whole" "$PYTHON" -c "
import json, sys; s = json.loads(sys.argv[1])
sys.exit(0 if s['step']['name'] == 'Médium prüfen' and s['prompt'] == 'Médium wechseln (µL-Spritze)' else 1)" "$st"
ev=$(ctl --json events)
check "events hold every step, the long name whole with its pass" "$PYTHON" -c "
import json, sys; e = json.loads(sys.argv[1])['events']; name = sys.argv[2]
msgs = [x['message'] for x in e]
want = ['Spülung der Kammer', name + ' [1/2]', name + ' [2/2]', 'Médium prüfen']
sys.exit(0 if all(any(\"'\" + w + \"'\" in m for m in msgs) for w in want) and
         any('operator Müller' in m for m in msgs) else 1)" "$ev" "$long_name"
ctl confirm >/dev/null
ctl wait >/dev/null
check "the run file's strings are UTF-8 and read back as written (h5py)" timeout 60 "$PYTHON" - "$file" "$long_name" <<'PY'
import sys; sys.path.insert(0, "tests/lib")
import h5py
from h5run import open_run
f = open_run(sys.argv[1]); name = sys.argv[2]
def enc(dt):
    info = h5py.check_string_dtype(dt)
    return info.encoding if info else None
a = f.attrs.get_id("operator")
assert enc(a.dtype) == "utf-8", enc(a.dtype)
assert f.attrs["operator"].decode(enc(a.dtype)) == "Müller"
assert f.attrs["protocol_name"].decode(enc(f.attrs.get_id("protocol_name").dtype)) == "Spülung"
for table, field in (("events", "message"), ("events", "source"), ("steps", "name"), ("steps", "outcome")):
    assert enc(f[table].dtype[field]) == "utf-8", (table, field)
names = [r["name"].decode("utf-8") for r in f["steps"]]
assert names == ["Spülung der Kammer", name + " [1/2]", name + " [2/2]", "Médium prüfen"], names
assert "Médium wechseln (µL-Spritze)" in f["protocol"].asstr()[()]
assert enc(f["channels/pump1.flow"].attrs.get_id("units").dtype) == "utf-8"
PY
h5dump -A "$file" >"$T/attrs.txt" 2>&1
check "h5dump types the operator as a UTF-8 string" "$PYTHON" -c "
import re, sys; t = open(sys.argv[1]).read()
m = re.search(r'ATTRIBUTE \"operator\" \{(.*?)\n   \}', t, re.S)
sys.exit(0 if m and 'CSET H5T_CSET_UTF8' in m.group(1) else 1)" "$T/attrs.txt"
# h5dump 1.10 prints every byte above 127 as an octal escape whatever the
# character set (HDFGroup/hdf5#4302); its binary output shows the text itself.
h5dump -a /operator -b -o "$T/operator.bin" "$file" >/dev/null 2>&1
check "h5dump's output of the operator is Müller" test "$(cat "$T/operator.bin")" = "Müller"
check "h5dump types the /steps names as UTF-8" sh -c "h5dump -H -d /steps '$file' | grep -q 'CSET H5T_CSET_UTF8'"

# --- 95 bytes ending in é: kept whole, journaled, and the run goes on after kill -9
op95="$(printf 'x%.0s' $(seq 1 93))é"
file=$(ctl run "$T/p.yaml" --operator "$op95" | sed -n 's/^file //p')
check "a 95-byte operator name ending in é is accepted" test -n "$file"
for _ in $(seq 1 100); do ctl --json status | grep -q '"prompt": "Médium' && break; sleep 0.1; done
check "the journal is written, with the name whole" "$PYTHON" -c "
import json, sys; j = json.load(open(sys.argv[1])); sys.exit(0 if j['operator'] == sys.argv[2] else 1)" \
    "$T/utf8/runs/run.journal" "$op95"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
start_daemon utf8 || { not_ok "daemon restarts"; finish; }
st=$(ctl --json status)
check "after kill -9 the run goes on in the same file" "$PYTHON" -c "
import json, sys; s = json.loads(sys.argv[1]); sys.exit(0 if s['run_active'] and s['file'] == sys.argv[2] else 1)" "$st" "$file"
for _ in $(seq 1 100); do ctl --json status | grep -q '"prompt": "Médium' && break; sleep 0.1; done
ctl confirm >/dev/null
ctl wait >/dev/null
check "its file keeps the operator whole" timeout 60 "$PYTHON" -c "
import sys; sys.path.insert(0, 'tests/lib')
from h5run import open_run
f = open_run(sys.argv[1]); sys.exit(0 if f.attrs['operator'].decode('utf-8') == sys.argv[2] and f.attrs['state'].decode() == 'completed' else 1)" "$file" "$op95"
finish
