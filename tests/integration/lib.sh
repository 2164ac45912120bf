# Helpers for integration tests: a private micd per test, assertions.
# Tests run as root; each one uses its own run directory and cards.
set -u
BIN=${MIC_BIN:?MIC_BIN must point at build/bin}
SRC=${MIC_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
IMAGE=${MIC_IMAGE:-$BIN/../images/card.img}
T_NAME=$(basename "$0" .sh)
T_FAILS=0
T_CHECKS=0
RUNDIR=$(mktemp -d /tmp/micstack-test.XXXXXX)
export MIC_RUNDIR=$RUNDIR
# the cards' state directories (ssh host keys), never the machine's
export MIC_STATEDIR=$RUNDIR/state
MICD_PID=
MICCTL="$BIN/micctl"

say() { echo "[$T_NAME] $*"; }
# Milliseconds on a monotonic clock (/proc/uptime, 10 ms steps), for the
# tests' time bounds and deadlines: this VM's wall clock can step (a status
# call once "took" 23 s inside a 7 s test), so never `date +%s` for those.
mono_ms() { local u; read -r u _ </proc/uptime; echo $((10#${u/./} * 10)); }
ok() { T_CHECKS=$((T_CHECKS + 1)); say "ok: $*"; }
fail() { T_CHECKS=$((T_CHECKS + 1)); T_FAILS=$((T_FAILS + 1)); say "FAIL: $*"; }
check() { # check DESCRIPTION COMMAND...
    local d=$1; shift
    if "$@"; then ok "$d"; else fail "$d"; fi
}
export PATH="$BIN:$PATH"

# start_micd [micd args...]: starts micd in a network namespace of its own
# (its TAPs, mic0.., must not meet those of tests running in parallel, nor
# the machine's) and waits for its control socket.  unshare execs micd, so
# MICD_PID is micd; `nsenter -t $MICD_PID -n CMD` runs CMD in its namespace.
# setpriv: micd gets SIGTERM if the test itself is killed (a ctest timeout),
# so no daemon outlives its test.
# MIC_CGROUP=DIR (a cgroup v2 directory): micd starts in that cgroup, as
# systemd starts a service (tests/vm/v2_cgroup.sh).
start_micd() {
    sh -c '[ -z "$0" ] || echo $$ > "$0/cgroup.procs" && exec "$@"' "${MIC_CGROUP:-}" \
        unshare --net setpriv --pdeathsig TERM "$BIN/micd" --rundir "$RUNDIR" "$@" >>"$RUNDIR/micd.log" 2>&1 &
    MICD_PID=$!
    for _ in $(seq 1 200); do
        micctl status >/dev/null 2>&1 && return 0
        kill -0 "$MICD_PID" 2>/dev/null || break
        sleep 0.02
    done
    say "micd did not start:"; cat "$RUNDIR/micd.log"
    exit 1
}

# descendants PID: every process below PID
descendants() {
    local p
    for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done
}

# stop_micd: SIGTERM, wait, and check that no process of the cards is left.
stop_micd() {
    [ -n "$MICD_PID" ] || return 0
    local kids
    kids=$(descendants "$MICD_PID")
    kill -TERM "$MICD_PID"
    wait "$MICD_PID" 2>/dev/null
    local left=""
    for p in $kids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    if [ -z "$left" ]; then ok "micd stopped, no card process left"; else fail "left running:$left"; fi
    MICD_PID=
}

state_of() { micctl status "$1" --json | sed -E 's/^\{"cards":\[\{"name":"[^"]*","state":"([a-z_]+)".*/\1/'; }
json_field() { micctl status "$1" --json | sed -E "s/.*\"$2\":([^,}]*).*/\\1/"; }
# pid of the card OS init (child of the card's firmware)
card_os_pid() { pgrep -P "$(json_field "$1" firmware_pid)" | head -1; }
# hostns CMD...: CMD in micd's network namespace (where the TAPs are)
hostns() { nsenter -t "$MICD_PID" -n "$@"; }
# card_sh CARD CMD...: a busybox command in the card OS's mount namespace
card_sh() { local c=$1; shift; nsenter -t "$(card_os_pid "$c")" -m -- /bin/busybox "$@"; }
# card_ush CARD CMD...: busybox CMD as the card's root (its user, mount and
# PID namespaces)
card_ush() { local c=$1; shift; nsenter -t "$(card_os_pid "$c")" -U -m -p -- /bin/busybox "$@"; }
# dev_state [CARD [TYPE]]: a device's state and reason in micctl status
dev_state() { micctl status "${1:-mic0}" --json | grep -o "\"type\":\"${2:-block}\",\"state\":\"[a-z]*\",\"reason\":\"[^\"]*\""; }
wait_dev() { # wait_dev STATE [REASON-PATTERN [CARD [TYPE]]], WAIT_N tries of 50 ms
    for _ in $(seq 1 ${WAIT_N:-100}); do
        dev_state "${3:-mic0}" "${4:-block}" | grep -q "\"state\":\"$1\",\"reason\":\"${2:-}" && return 0; sleep 0.05
    done
    return 1
}
# qsd IMAGE SOCKET LOG: qemu-storage-daemon exports qcow2 IMAGE as a
# vhost-user-blk backend on SOCKET (it creates the socket and waits for a
# front end there); its pid in QSD_STARTED
qsd() {
    rm -f "$2"
    setpriv --pdeathsig TERM qemu-storage-daemon \
        --blockdev driver=file,node-name=file0,filename="$1" \
        --blockdev driver=qcow2,node-name=disk0,file=file0 \
        --export type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path="$2",writable=on \
        >>"$3" 2>&1 &
    QSD_STARTED=$!
    for _ in $(seq 1 100); do [ -S "$2" ] && return 0; sleep 0.05; done
    say "qemu-storage-daemon did not start:"; cat "$3"; exit 1
}
# micd_res: micd's open fds, threads and RSS (kB)
micd_res() {
    echo "$(ls /proc/$MICD_PID/fd | wc -l) $(awk '/^Threads/{print $2}' /proc/$MICD_PID/status) $(awk '/^VmRSS/{print $2}' /proc/$MICD_PID/status)"
}

finish() {
    stop_micd
    if [ "$T_FAILS" -ne 0 ]; then
        say "micd log:"; tail -50 "$RUNDIR/micd.log"
    fi
    rm -rf "$RUNDIR"
    say "$((T_CHECKS - T_FAILS)) of $T_CHECKS checks passed"
    [ "$T_FAILS" -eq 0 ]
}
trap 'stop_micd >/dev/null 2>&1; rm -rf "$RUNDIR"' INT TERM
