#!/bin/bash
# kill -9 in the middle of every kind of step (inside a repeat, and with a
# prompt pending), restart, and check the run went on where it was (resume.py).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/perfuse-resume.XXXXXX")
trap 'rm -rf "$work"' EXIT
timeout 400 "$PYTHON" tests/e2e/resume.py "$BUILD" "$work"
rc=$?
[ $rc -ne 0 ] && for l in "$work"/*/perfused.log; do echo "--- $l"; grep -v "info: runner: step\|info: daemon: setpoint" "$l" | tail -n 25; done
exit $rc
