# Helpers for the MQTT tests (bash, after common.sh): a real mosquitto on a
# loopback port chosen at random, with its own password file and ACL.
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}

# free_port: print a loopback TCP port that is free now.
free_port() {
    "$PYTHON" -c "
import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

# broker_setup DIR: a password file (rig1..rig4/rigpw, alice/alicepw operator,
# bob/bobpw viewer) and the ACL from scripts/mosquitto/ for the site "lab".
broker_setup() {
    local dir=$1
    mkdir -p "$dir"
    : >"$dir/passwd"
    for u in rig1:rigpw rig2:rigpw rig3:rigpw rig4:rigpw alice:alicepw bob:bobpw; do
        mosquitto_passwd -b "$dir/passwd" "${u%%:*}" "${u#*:}" 2>/dev/null
    done
    {
        cat scripts/mosquitto/acl
        for r in rig1 rig2 rig3 rig4; do
            printf '\nuser %s\ntopic readwrite perfuse/v1/lab/%s/#\n' "$r" "$r"
        done
        printf '\nuser bob\ntopic deny perfuse/v1/+/+/cmd/#\n'
    } >"$dir/acl"
    chmod 0600 "$dir/passwd" "$dir/acl"
}

# broker_start DIR PORT [EXTRA_CONF_LINES]: start mosquitto on 127.0.0.1:PORT
# with DIR's password file and ACL (persistence in DIR); waits until it listens.
broker_start() {
    local dir=$1 port=$2 extra=${3:-}
    cat >"$dir/mosquitto.conf" <<CONF
per_listener_settings false
user $(id -un)
allow_anonymous false
password_file $dir/passwd
acl_file $dir/acl
persistence true
persistence_location $dir/
autosave_interval 1
max_queued_messages 100000
log_dest file $dir/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
listener $port 127.0.0.1
$extra
CONF
    "$MOSQUITTO" -c "$dir/mosquitto.conf" >/dev/null 2>&1 &
    BROKER_PID=$!
    PIDS="$PIDS $BROKER_PID"
    timeout 10 sh -c "until grep -q 'Opening ipv4 listen socket on port $port' '$dir/mosquitto.log' 2>/dev/null; do sleep 0.05; done"
}

# sim_rig NAME DIR MQTT_YAML [SIM_ARGS...]: start a perfuse-sim, write its rig
# file renamed NAME with MQTT_YAML appended to DIR/rig.yaml.
sim_rig() {
    local name=$1 dir=$2 mq=$3
    shift 3
    mkdir -p "$dir"
    "$BUILD/perfuse-sim" --rig-out "$dir/rig0.yaml" --die-with-parent "$@" >"$dir/sim.json" 2>"$dir/sim.log" &
    PIDS="$PIDS $!"
    timeout 10 sh -c "until [ -s '$dir/sim.json' ]; do sleep 0.05; done"
    sed "s|^rig: sim$|rig: $name|" "$dir/rig0.yaml" >"$dir/rig.yaml"
    printf '%s\n' "$mq" >>"$dir/rig.yaml"
}

# start_rig_daemon DIR: perfused on DIR/rig.yaml; sets DAEMON_PID and SOCK.
start_rig_daemon() {
    local dir=$1
    rm -f "$dir/ready"; mkfifo "$dir/ready"
    "$BUILD/perfused" --rig "$dir/rig.yaml" --socket "$dir/sock" --data-dir "$dir/runs" --ready-fd 3 \
        3>"$dir/ready" 2>"$dir/perfused.log" &
    DAEMON_PID=$!; PIDS="$PIDS $DAEMON_PID"; SOCK="$dir/sock"
    timeout 20 sh -c "read -r line <'$dir/ready'" || { echo "perfused did not start:"; cat "$dir/perfused.log"; return 1; }
}
