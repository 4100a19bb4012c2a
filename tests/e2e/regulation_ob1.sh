#!/bin/bash
# Closed-loop flow regulation through the OB1-style pressure controller driver
# on perfuse-sim: chip3.flow regulated by flow3 pushing ob1.p1 (the suite is
# tests/lib/regulation_suite.bash), and perfusectl tune on the live rig.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
REG=flow3 MEAS=chip3.flow ACT=ob1.p1 ACT_READ=ob1.p1 FDEV=chip3 KP=2.0 KI=4.0 TUNE=1
. tests/lib/regulation_suite.bash
