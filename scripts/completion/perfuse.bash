# bash completion for perfuse: perfusectl, perfused, perfuse-sim and the
# run-file scripts. Commands and options are read from each program's own
# --help, so they stay in step with the programs.

# The long options a program's help lists.
_perfuse_options()
{
    "$@" --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*' | sort -u
}

# Files ending in one of the given extensions, and directories.
_perfuse_files()
{
    local IFS=$'\n' ext
    COMPREPLY=()
    for ext in "$@"; do
        COMPREPLY+=($(compgen -f -X "!*.$ext" -- "$cur"))
    done
    COMPREPLY+=($(compgen -d -- "$cur"))
}

_perfusectl()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd="" i
    case $prev in
        --socket|--rig|-o|--password-file|--ca) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --server-user) COMPREPLY=($(compgen -u -- "$cur")); return ;;
    esac
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --socket|--server-user) ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$(_perfuse_options perfusectl)" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$(perfusectl --help 2>/dev/null |
                sed -n 's/^  \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p')" -- "$cur"))
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_perfuse_options perfusectl "$cmd")" -- "$cur"))
        return
    fi
    case $cmd in
        run|check|simulate) _perfuse_files yaml yml ;;
        recover) _perfuse_files h5 ;;
        help) COMPREPLY=($(compgen -W "$(perfusectl --help 2>/dev/null |
                sed -n 's/^  \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p')" -- "$cur")) ;;
    esac
}

_perfuse_program()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    case $prev in
        --rig|--data-dir|--socket|--csv|-o|--output|--rig-out|--profiles|--trace|--control|--check)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_perfuse_options "$1")" -- "$cur"))
    else
        case $1 in
            perfuse-export|perfuse-plot|perfuse-summary) _perfuse_files h5 ;;
        esac
    fi
}

complete -F _perfusectl perfusectl
complete -F _perfuse_program perfused perfuse-sim perfuse-export perfuse-plot perfuse-summary perfuse-mqtt-series
