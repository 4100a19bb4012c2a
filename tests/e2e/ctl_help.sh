#!/bin/bash
# perfusectl's one command table (controller/ctl/perfusectl.c): every command
# in it is listed by the usage with the synopsis its --help gives, help
# COMMAND says the same as COMMAND --help, and dispatch reaches each command
# (a bad option gets that command's own usage error). An unknown command is
# refused with the list. No daemon is needed.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/common.sh

CTL="$BUILD/perfusectl"
NOSOCK="$T/no-daemon.sock"

# squash: the text with every run of blanks and newlines made one space, so
# that a wrapped synopsis reads as one line.
squash() { tr -s ' \n' '  ' | sed 's/^ *//; s/ *$//'; }

# The table's names, read from the table itself.
names=$(sed -n '/^static const struct ctl_command commands\[\] = {/,/^};/s/^ *\.name = "\([a-z]*\)",$/\1/p' \
        controller/ctl/perfusectl.c)
n=$(wc -w <<<"$names")
check "the command table lists commands ($n)" test "$n" -ge 10

usage=$("$CTL" --help); rc=$?
check "perfusectl --help exits 0 (got $rc)" test "$rc" -eq 0
usage_flat=" $(squash <<<"$usage") "

for c in $names; do
    help=$("$CTL" "$c" --help); rc=$?
    # The usage line(s) of COMMAND --help, up to the first blank line, without
    # perfusectl's own options if they are shown ("[--socket PATH] [--json]").
    syn=$(sed -n '1,/^$/p' <<<"$help" | squash |
          sed 's/^usage: perfusectl //; s/^\(\[--[a-z-]*\( [A-Z]*\)\?\] \)*//')
    if [ $rc -eq 0 ] && [ "${syn%% *}" = "$c" ]; then
        ok "$c --help gives its synopsis: $syn"
    else
        not_ok "$c --help ($rc) gives no synopsis: $help"
        continue
    fi
    check "$c --help has an example" grep -q "^example: perfusectl $c\b" <<<"$help"
    case "$usage_flat" in
        *" $syn "*) ok "the usage lists $c with the same synopsis" ;;
        *) not_ok "the usage does not list '$syn'" ;;
    esac
    check "help $c says what $c --help says" test "$("$CTL" help "$c")" = "$help"
    # Dispatch: a bad option reaches the command, which answers with its own usage.
    err=$("$CTL" --socket "$NOSOCK" "$c" --no-such-option extra 2>&1 >/dev/null); rc=$?
    if [ "$c" = help ]; then
        want="unknown command '--no-such-option'"
    else
        want="usage: perfusectl $c"
    fi
    if [ $rc -eq 2 ] && grep -qF "$want" <<<"$err" && ! grep -qF "unknown command '$c'" <<<"$err"; then
        ok "$c is dispatched: a bad option is its usage error (exit 2)"
    else
        not_ok "$c with a bad option (exit $rc): $err"
    fi
done

check "set's synopsis has the unit optional (a valve's port takes none)" \
    grep -q "^usage: perfusectl set CHANNEL VALUE \[UNIT\]$" <<<"$("$CTL" set --help)"

# An unknown command is refused, with every command listed.
err=$("$CTL" --socket "$NOSOCK" frobnicate 2>&1 >/dev/null); rc=$?
check "an unknown command exits 2 (got $rc)" test "$rc" -eq 2
check "an unknown command is named" grep -qF "perfusectl: unknown command 'frobnicate'" <<<"$err"
missing=""
for c in $names; do
    grep -q "^  $c\b" <<<"$err" || missing="$missing $c"
done
check "the refusal lists every command (missing:${missing:- none})" test -z "$missing"

"$CTL" >/dev/null 2>&1; rc=$?
check "no command at all is a usage error (exit $rc)" test "$rc" -eq 2
out=$("$CTL" help 2>&1); rc=$?
check "help alone prints the usage (exit $rc)" test "$rc" -eq 0 -a "$out" = "$usage"
"$CTL" help frobnicate >/dev/null 2>&1; rc=$?
check "help of an unknown command is a usage error (exit $rc)" test "$rc" -eq 2

finish
