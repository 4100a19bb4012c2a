#!/bin/bash
# The web dashboard in a real browser (headless Chromium through Selenium,
# tests/e2e/dashboard.py) against make dashboard's set-up (scripts/dashboard
# --json): the operator's view, pause and ack from the page, a tripped limit's
# alarm within 2 s, the viewer's read-only page, and the pause recorded in the
# run file with the MQTT user. Screenshots go to $BUILD/e2e/.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

SHOTS=$BUILD/e2e
mkdir -p "$SHOTS"
if [ ! -f "$BUILD/dashboard/index.html" ]; then not_ok "the dashboard is built ($BUILD/dashboard)"; finish; fi

# A run long enough for the whole test (the test skips to the prompt), which a
# device's hiccup on a loaded machine does not pause (the page shows its alarm
# and the test pauses it itself); pump1 at 40 uL/min keeps chip1 near
# 120 mbar, under the set-up's 300 mbar alarm limit until chip1 clogs.
cat >"$T/p.yaml" <<'P'
perfuse: 1
name: dashboard test
rig: sim
on_fault: continue
safe_state: {pump1: 0 uL/min, pump2: 0 uL/min}
steps:
  - {name: flow, set: {pump1: 40 uL/min, pump2: 10 uL/min}, for: 90 s}
  - {name: media exchange, prompt: "Replace the media reservoir, then confirm"}
  - {name: hold, set: {pump1: 10 uL/min}, for: 60 s}
P
mkfifo "$T/setup.out"
scripts/dashboard --json --dir "$T/dash" --protocol "$T/p.yaml" >"$T/setup.out" 2>"$T/dashboard.log" &
PIDS="$PIDS $!"
if ! timeout 40 sh -c 'head -n 1 <"$1" >"$2"' _ "$T/setup.out" "$T/setup.json" || [ ! -s "$T/setup.json" ]; then
    not_ok "scripts/dashboard sets up"; cat "$T/dashboard.log"; finish
fi
ok "scripts/dashboard sets up (broker, rig, page)"
sock=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['socket'])" "$T/setup.json")
SOCK=$sock
# The run starts in the background: wait for it (bounded) before the browser looks.
for _ in $(seq 1 100); do ctl --json status 2>/dev/null | grep -q '"state": "running"' && break; sleep 0.1; done
check "the test run is running" sh -c "'$BUILD/perfusectl' --socket '$sock' --json status | grep -q '\"state\": \"running\"'"
file=$(ctl --json status | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin).get('file',''))")

timeout 120 "$PYTHON" tests/e2e/dashboard.py "$T/setup.json" "$SHOTS" >"$T/browser.out" 2>"$T/browser.err"
rc=$?
cat "$T/browser.out"
checks=$((checks + $(grep -c '^ok - \|^not ok - ' "$T/browser.out")))
failures=$((failures + $(grep -c '^not ok - ' "$T/browser.out")))
if [ "$rc" -ne 0 ] && ! grep -q '^not ok - ' "$T/browser.out"; then
    not_ok "the browser test ran (exit $rc)"; tail -n 20 "$T/browser.err"
fi

ctl abort --reason "end of the dashboard test" >/dev/null
ctl --json wait >/dev/null
ev=$(run_events "$file")
echo "$ev" | grep "mqtt user\|^paused\|^resumed\|^alarm_" | sed 's/^/# /'
check "the run file's /events: the pause was made by the MQTT user" grep -q "^cmd_pause|pause by mqtt user operator: ok" <<<"$ev"
check "  ... with the reason given on the page" grep -q "^paused|run paused: bubble seen in line 2 (dashboard test)" <<<"$ev"
check "  ... and the resume" grep -q "^cmd_resume|.*mqtt user operator" <<<"$ev"
check "  ... and the ack" grep -q "^alarm_acked|.*mqtt user operator" <<<"$ev"
check "  ... and the prompt's confirmation" grep -q "^prompt_confirmed|.*mqtt user operator" <<<"$ev"
if grep -q "mqtt user viewer\|viewer by hand" <<<"$ev"; then
    not_ok "nothing from the viewer reached the run"
else
    ok "nothing from the viewer reached the run"
fi
finish
