#!/bin/bash
# Each fault the simulator injects (timeout, garbage, CRC error, exception, NaN,
# disconnect and return; on the RTU line, on Modbus TCP and on the serial lab
# lines: Reglo ICC, Harvard, Hamilton) during one run: the
# daemon survives, the fault and the recovery are in /events, the device
# resumes by itself, and healthy devices on other buses keep their sample rate
# within 5 % (fault_matrix.py).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/perfuse-faults.XXXXXX")
trap 'rm -rf "$work"' EXIT
timeout 400 "$PYTHON" tests/e2e/fault_matrix.py "$BUILD" "$work"
rc=$?
[ $rc -ne 0 ] && grep -v "setpoint" "$work/perfused.log" | tail -n 40
exit $rc
