#!/bin/bash
# kill -9 perfused at 20 random moments of a run on the simulator; recover and
# check each file (CRASH_KILLS sets the count: `make soak` uses 200).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/perfuse-crash.XXXXXX")
[ -n "${CRASH_KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
PYTHONPATH=tests/lib timeout "${CRASH_TIMEOUT:-540}" "$PYTHON" tests/e2e/recorder_crash.py \
    "$BUILD" "$work" "${CRASH_KILLS:-20}" ${CRASH_SEED:-}
rc=$?
[ $rc -ne 0 ] && { echo "--- perfused.log (tail)"; tail -n 30 "$work/perfused.log"; }
exit $rc
