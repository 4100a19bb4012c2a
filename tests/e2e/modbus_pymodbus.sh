#!/bin/bash
# The generic Modbus driver against a third-party server, pymodbus, over TCP and
# over RTU on a pty: every type and word order read and written through the
# whole daemon (modbus_pymodbus.py).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/perfuse-pymodbus.XXXXXX")
trap 'rm -rf "$work"' EXIT
timeout 300 "$PYTHON" tests/e2e/modbus_pymodbus.py "$BUILD" "$work"
rc=$?
[ $rc -ne 0 ] && for l in "$work"/*/perfused.log; do echo "--- $l"; tail -n 30 "$l"; done
exit $rc
