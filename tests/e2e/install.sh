#!/bin/bash
# make install into a temporary prefix, from a copy of the build directory (so
# the suites running beside this one keep theirs): the programs are rebuilt for
# the prefix and find their rig and profiles there; check, simulate and
# perfuse-summary work from the installed tree; every program answers
# --version; man pages, docs, bash completion and the web dashboard are
# installed; DESTDIR stages.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh
SRC=$PWD

mkdir -p "$T/build"
cp -a "$BUILD/config.mk" "$BUILD/obj" "$BUILD/libperfuse.a" "$BUILD/perfused" "$BUILD/perfusectl" \
    "$BUILD/perfuse-sim" "$T/build/"
[ -f "$BUILD/prefix" ] && cp -a "$BUILD/prefix" "$T/build/"
[ -d "$BUILD/dashboard" ] && cp -a "$BUILD/dashboard" "$T/build/"
P="$T/prefix"
timeout 300 make --no-print-directory -j2 install BUILD="$T/build" PREFIX="$P" >"$T/install.log" 2>&1
check "make install PREFIX=$P succeeds" test $? -eq 0 || tail -20 "$T/install.log"
check "the installed perfusectl is built for its prefix" grep -q "$P" "$P/bin/perfusectl"
check "the web dashboard is installed (share/perfuse/dashboard)" test -s "$P/share/perfuse/dashboard/index.html" -a -s "$P/share/perfuse/dashboard/app.js"

cd /
out=$("$P/bin/perfusectl" check "$P/share/perfuse/protocols/demo.yaml" 2>&1)
check "installed perfusectl check finds the rig in its prefix ($(head -1 <<<"$out"))" grep -q "total duration" <<<"$out"
"$P/bin/perfusectl" simulate "$P/share/perfuse/protocols/demo.yaml" -o "$T/run.h5" --seed 1 >"$T/sim.out" 2>&1
check "installed perfusectl simulate writes a run file" test -s "$T/run.h5"
out=$("$P/bin/perfuse-summary" "$T/run.h5" 2>&1)
check "installed perfuse-summary reads it" grep -q "completed" <<<"$out"
"$P/bin/perfuse-export" "$T/run.h5" --csv "$T/csv" --resample 1s >/dev/null 2>&1
check "installed perfuse-export exports it" test -s "$T/csv/chip1.pressure.csv"
version=$(cat "$SRC/VERSION")
for p in perfused perfusectl perfuse-sim perfuse-export perfuse-plot perfuse-summary perfuse-mqtt-series; do
    v=$("$P/bin/$p" --version 2>&1)
    check "$p --version says $version ($v)" grep -q "^$p $version" <<<"$v"
    check "$p has a man page" sh -c "MANWIDTH=80 man -l '$P/share/man/man1/$p.1' 2>/dev/null | grep -q '^NAME'"
done
for d in README.md run-files.md CONTROL.md FORMAT.md; do
    check "doc $d installed" test -s "$P/share/doc/perfuse/$d"
done
out=$(PATH="$P/bin:$PATH" bash -c ". '$P/share/bash-completion/completions/perfusectl'
COMP_WORDS=(perfusectl sim); COMP_CWORD=1; _perfusectl; echo \"\${COMPREPLY[*]}\"
COMP_WORDS=(perfuse-export run.h5 --res); COMP_CWORD=2; _perfuse_program perfuse-export; echo \"\${COMPREPLY[*]}\"")
check "bash completion completes commands and options ($out)" test "$out" = "simulate
--resample"
cd "$SRC"

# A package build: staged under DESTDIR, built for the final prefix.
timeout 300 make --no-print-directory -j2 install BUILD="$T/build" PREFIX=/opt/perfuse DESTDIR="$T/stage" \
    >"$T/stage.log" 2>&1
check "make install DESTDIR=... PREFIX=/opt/perfuse succeeds" test $? -eq 0 || tail -20 "$T/stage.log"
check "staged under DESTDIR" test -x "$T/stage/opt/perfuse/bin/perfusectl" -a -s "$T/stage/opt/perfuse/share/perfuse/protocols/rigs/sim.yaml"
check "staged programs are built for /opt/perfuse, not the staging path" \
    sh -c "grep -q /opt/perfuse '$T/stage/opt/perfuse/bin/perfusectl' && ! grep -q '$T/stage' '$T/stage/opt/perfuse/bin/perfusectl'"
check "the installed systemd unit starts /opt/perfuse/bin/perfused" \
    grep -q "^ExecStart=/opt/perfuse/bin/perfused " "$T/stage/opt/perfuse/share/perfuse/perfused.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify wants the binary at its path: point it at the staged one.
    sed "s|/opt/perfuse/bin/perfused|$T/stage/opt/perfuse/bin/perfused|" \
        "$T/stage/opt/perfuse/share/perfuse/perfused.service" >"$T/perfused.service"
    out=$(systemd-analyze verify "$T/perfused.service" 2>&1)
    if grep -qi 'unknown\|invalid\|failed to parse' <<<"$out"; then
        not_ok "systemd-analyze verify finds nothing wrong with the unit: $out"
    else
        ok "systemd-analyze verify finds nothing wrong with the unit${out:+ (it said: $out)}"
    fi
fi
finish
