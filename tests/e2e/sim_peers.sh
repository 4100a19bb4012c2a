#!/bin/bash
# perfuse-sim against third-party Modbus masters (mbpoll, pymodbus) and raw pty
# I/O: register values against the physics, and every fault kind on the wire.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/perfuse-peers.XXXXXX")
trap 'rm -rf "$work"' EXIT
timeout 180 "$PYTHON" tests/e2e/sim_peers.py "$BUILD" "$work"
