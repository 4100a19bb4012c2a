#!/bin/bash
# Hostile clients during a 10 Hz waveform run (see hostile_clients.py): the
# alias bomb, 60 KB of nesting, a burst of 200 connects, 100 clients that never
# read, half a line; a well-behaved client, the watchdog, the sample rates and
# the dispatch lateness are compared with a quiet run of the same protocol.
# e2e: alone (its timing is measured against a quiet machine)
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
timeout 150 "$PYTHON" tests/e2e/hostile_clients.py "$BUILD" "$T"
check "the daemon serves everyone while hostile clients do their worst (see above)" test $? -eq 0
finish
