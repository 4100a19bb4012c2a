#!/bin/bash
# perfusectl check: every example protocol passes against the simulated rig;
# planned totals equal hand-computed sums to the millisecond (repeats
# included); errors are FILE:LINE:COLUMN; exit codes follow DESIGN.md.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
CTL="$BUILD/perfusectl"

for p in protocols/*.yaml; do
    if "$CTL" check "$p" >/dev/null 2>"$T/err"; then ok "$p passes check"
    else not_ok "$p passes check: $(cat "$T/err")"; fi
done

# Totals, by hand from each file: heart 5 min + 6 x (50 + 10) min; kidney
# 5 min + 24 h + 5 d; liver 10 min + 24 h + 3 x 24 h + 2 h + 2 d; medium
# 5 min + 5 x 24 h; vessel 5 + 10 min + 4 h + 3 h; demo 8 + 7 + 15 + 15 s.
while read -r file want; do
    got=$("$CTL" check "$file" --json | "$PYTHON" -c "import json,sys; print(round(json.load(sys.stdin)['total_s'] * 1000))")
    check "$file total is $want ms (got $got)" test "$got" = "$want"
done <<'LIST'
protocols/demo.yaml 45000
protocols/heart-pulsatile.yaml 21900000
protocols/kidney-proximal-tubule.yaml 518700000
protocols/liver-drug-dosing.yaml 526200000
protocols/medium-exchange-multiday.yaml 432300000
protocols/vessel-shear-ramp.yaml 26100000
LIST

cat >"$T/nested.yaml" <<'P'
perfuse: 1
name: nested totals
steps:
  - {set: {pump1: 1 uL/min}, for: 1 h 30 min}
  - repeat: 3
    steps:
      - {set: {pump1: 2 uL/min}, for: 250 ms}
      - repeat: 4
        steps:
          - {ramp: {pump1: [1 uL/min, 2 uL/min]}, over: 1 min 0.5 s}
  - {prompt: done?}
P
got=$("$CTL" check "$T/nested.yaml" --json | "$PYTHON" -c "import json,sys; print(round(json.load(sys.stdin)['total_s'] * 1000))")
# 5400000 + 3 x (250 + 4 x 60500) ms
check "nested repeats total 6126750 ms (got $got)" test "$got" = 6126750

cat >"$T/bad.yaml" <<'P'
perfuse: 1
name: bad
steps:
  - {set: {pump1: 10 ul/mn}, for: 1 s}
  - {set: {pumpp1: 1 uL/min}, for: 1 s}
P
"$CTL" check "$T/bad.yaml" >/dev/null 2>"$T/err"; rc=$?
check "an invalid protocol exits 1 (got $rc)" test "$rc" -eq 1
check "errors are FILE:LINE:COLUMN with a suggestion" grep -q "bad.yaml:4:22: error: unknown unit 'ul/mn' for a flow (did you mean 'uL/min'" "$T/err"
check "all errors are reported" grep -q "bad.yaml:5:12: error: unknown channel 'pumpp1' on rig 'sim' (did you mean 'pump1'" "$T/err"

cat >"$T/empty.yaml" <<'P'
perfuse: 1
name: syringe runs out
steps:
  - {set: {pump1: 100 uL/min}, for: 2 h}
  - {wait_until: chip1.pressure < 10 mbar}
P
"$CTL" check "$T/empty.yaml" >/dev/null 2>"$T/err"; rc=$?
check "warnings alone exit 0 (got $rc)" test "$rc" -eq 0
check "a syringe running out is a warning with its time" grep -q "empty.yaml:4:5: warning: pump1.flow runs out: its syringe (10 mL) is empty 1 h 40 min after the start" "$T/err"
check "an open-ended wait is a warning" grep -q "empty.yaml:5:5: warning: step 'wait_until (line 5)' waits for a condition" "$T/err"

"$CTL" check "$T/missing.yaml" >/dev/null 2>&1; rc=$?
check "a missing file exits 1 (got $rc)" test "$rc" -eq 1
"$CTL" check >/dev/null 2>&1; rc=$?
check "a usage error exits 2 (got $rc)" test "$rc" -eq 2
"$CTL" --socket "$T/nobody.sock" status >/dev/null 2>&1; rc=$?
check "an unreachable daemon exits 3 (got $rc)" test "$rc" -eq 3
head -c 4096 /dev/urandom >"$T/garbage.yaml"
timeout 10 "$CTL" check "$T/garbage.yaml" >/dev/null 2>&1; rc=$?
check "binary garbage is refused cleanly (exit $rc)" test "$rc" -eq 1
# The rig's recorder section: each mistake named at its place, with the fix.
sed 's/^rig: sim$/rig: sim\nrecorder: {compression: fast, flush: 2 s, chekpoint: 10 s}/' \
    protocols/rigs/sim.yaml >"$T/rec-rig.yaml"
"$BUILD/perfusectl" check --rig "$T/rec-rig.yaml" protocols/demo.yaml >"$T/rec.out" 2>&1
check "a bad recorder section is refused" test $? -ne 0
check "unknown recorder key gets a suggestion" grep -q "rec-rig.yaml:5:43: error: unknown key 'chekpoint' in 'recorder' (did you mean 'checkpoint'?)" "$T/rec.out"
check "bad compression names the choices" grep -q "rec-rig.yaml:5:25: error: recorder compression must be off, deflate, or a deflate level 1 to 9" "$T/rec.out"
check "flush out of range names the range" grep -q "rec-rig.yaml:5:38: error: recorder flush must be between 0.1 s and 1 s" "$T/rec.out"
sed -e 's/^rig: sim$/rig: sim\nrecorder: {compression: deflate, flush: 250 ms, checkpoint: 30 s}/' \
    -e "s#\.\./profiles/#$PWD/protocols/profiles/#" protocols/rigs/sim.yaml >"$T/rec-ok.yaml"
check "a good recorder section is accepted" "$BUILD/perfusectl" check --rig "$T/rec-ok.yaml" protocols/demo.yaml
# Claims: check --alongside says whether protocols can run at once, naming the holder.
cat >"$T/dose.yaml" <<'P'
perfuse: 1
name: Kidney dose 10
steps:
  - {set: {pump1: 10 uL/min}, for: 1 s}
P
cat >"$T/ctrl.yaml" <<'P'
perfuse: 1
name: control
steps:
  - {set: {pump2: 10 uL/min}, for: 1 s}
  - {wait_until: chip1.pressure < 500 mbar, timeout: 1 s, on_timeout: continue}
P
cat >"$T/clash.yaml" <<'P'
perfuse: 1
name: clash
safe_state: {pump1: 0 uL/min}
steps:
  - {set: {valve1: 2}, for: 1 s}
P
"$CTL" check "$T/dose.yaml" >"$T/claims.out" 2>&1
check "check lists the actuators a protocol claims" grep -q "^claims: pump1.flow$" "$T/claims.out"
check "two protocols on pump1 and pump2 may run alongside" "$CTL" check "$T/dose.yaml" --alongside "$T/ctrl.yaml"
"$CTL" check "$T/dose.yaml" --alongside "$T/clash.yaml" >/dev/null 2>"$T/clash.err"; rc=$?
check "a protocol whose safe state claims a held pump cannot run alongside (exit $rc)" test "$rc" -eq 1
check "the overlap names the channel and the run holding it" \
    grep -q "clash.yaml: error: cannot run alongside .*dose.yaml: pump1.flow is held by run kidney-dose-10 until it ends" "$T/clash.err"
"$CTL" --json check "$T/ctrl.yaml" >"$T/claims.json"
check "check --json lists claims and the sensors named" "$PYTHON" -c "import json,sys
d = json.load(open(sys.argv[1])); assert d['claims'] == ['pump2.flow'] and d['sensors'] == ['chip1.pressure'], d" "$T/claims.json"
finish
