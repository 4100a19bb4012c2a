#!/bin/bash
# Closed-loop flow regulation through a generic Modbus pressure controller
# (protocols/profiles/pressure-controller.yaml, no C) on perfuse-sim: pc1.flow
# regulated by flow4 pushing pc1.p1 (the suite is tests/lib/regulation_suite.bash), with a
# relay test and a manual set of the actuator during the pause.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
REG=flow4 MEAS=pc1.flow ACT=pc1.p1 ACT_READ=pc1.p1_actual FDEV=pc1 KP=2.5 KI=5.0 TUNE_PAUSED=1
. tests/lib/regulation_suite.bash
