#!/bin/sh
# Where the time goes on the data path: profiles micd and the card while one
# workload runs at a time, and writes the raw summaries to OUTDIR
# (docs/profile.md is written from them).
#
#   scripts/profile.sh [BUILD] [OUTDIR]        (root; perf, iperf3, fio)
#
# Workloads (each runs for WARM + SECS + 4 s; profiled over SECS s after WARM):
#   net     iperf3 TCP card -> host, the client in the card
#   disk    fio 4k random write QD32, libaio, direct, on the card's /dev/vda
#   console key echo: one key typed on the card's console, its echo awaited
# For each: perf record -a -g -e cpu-clock, reported for micd's and the
# card's processes and the meters only (the machine may be shared); the
# syscalls of those processes (strace -c, one second); voluntary context switches
# per thread over the window (each is a sleep, so one wake-up); and micctl
# stats before and after (packets, requests), for wake-ups per packet.
# Everything runs in a network namespace, run directory and cgroup of the
# script's own micd, removed at the end.
set -eu
BIN=$(cd "${1:-build}/bin" && pwd)
OUT=${2:-/tmp/micstack-profile}
SECS=${SECS:-4}
WARM=${WARM:-1}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/micprof.XXXXXX)
MICD=
cleanup() {
    [ -n "$MICD" ] && kill -TERM "$MICD" 2>/dev/null && wait "$MICD" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT INT TERM
export MIC_RUNDIR="$W/run" MIC_STATEDIR="$W/state"

"$BIN/mic-mkimage" -o "$W/card.img" --default --runtime "$BIN/mic-card" \
    --add /usr/bin/iperf3 --add /usr/bin/fio >/dev/null
head -c 268435456 /dev/urandom >"$W/disk.img"
cat >"$W/micd.conf" <<EOF
[mic0]
image = $W/card.img
aperture_mb = 1024
disk = $W/disk.img
cmdline = mic.ip=10.77.1.2/24
host_ip = 10.77.1.1/24
EOF
unshare --net setpriv --pdeathsig TERM "$BIN/micd" --rundir "$W/run" --config "$W/micd.conf" \
    >"$W/micd.log" 2>&1 &
MICD=$!
for _ in $(seq 100); do "$BIN/micctl" status >/dev/null 2>&1 && break; sleep 0.05; done
"$BIN/micctl" wait mic0 ready --timeout 10 >/dev/null
"$BIN/micctl" boot mic0 >/dev/null
FW=$("$BIN/micctl" status mic0 --json | sed 's/.*"firmware_pid":\([0-9]*\).*/\1/')
OS=$(cut -d' ' -f1 "/proc/$FW/task/$FW/children")
nsenter -t "$MICD" -n ip link set lo up
incard() { nsenter -t "$OS" -a -- /bin/busybox timeout -s KILL 60 "$@"; }
for _ in $(seq 100); do incard test -e /dev/vda && break; sleep 0.05; done

# pids of micd and of every process below it or below this script (the
# meters), comma-separated; never another user's processes of the same name
ours() {
    ps -e -o pid=,ppid=,comm= | awk -v m="$MICD" -v me="$$" '
        { p[NR] = $1; pp[NR] = $2; c[NR] = $3 }
        END { s[m] = 1; s[me] = 1
              do { n = 0; for (i in p) if (!(p[i] in s) && (pp[i] in s)) { s[p[i]] = 1; n = 1 } } while (n)
              for (i in p) if (p[i] in s && p[i] != me && c[i] != "ps" && c[i] != "awk") print p[i] }' |
        sort -n | paste -sd, -
}

# alive PIDS: those of the comma-separated list still running
alive() {
    for p in $(echo "$1" | tr , ' '); do [ -d "/proc/$p" ] && echo "$p"; done | paste -sd, -
}

# ctxsw PIDS: "tid comm voluntary nonvoluntary" for every thread
ctxsw() {
    for p in $(echo "$1" | tr , ' '); do
        for t in /proc/"$p"/task/*; do
            [ -r "$t/status" ] || continue
            printf '%s %s %s %s\n' "$(basename "$t")" "$(cat "$t/comm" 2>/dev/null)" \
                "$(awk '/^voluntary_ctxt/ {print $2}' "$t/status" 2>/dev/null)" \
                "$(awk '/^nonvoluntary_ctxt/ {print $2}' "$t/status" 2>/dev/null)"
        done
    done
}

# measure NAME: profiles the running workload over SECS s
measure() {
    name=$1
    sleep "$WARM"
    pids=$(ours)
    pids=$(alive "$pids")
    "$BIN/micctl" stats mic0 --json >"$OUT/$name.stats0.json"
    ctxsw "$pids" >"$W/cs0"
    perf record -q -a -g -e cpu-clock -F 999 -o "$OUT/$name.data" -- sleep "$SECS" 2>/dev/null
    ctxsw "$pids" >"$W/cs1"
    "$BIN/micctl" stats mic0 --json >"$OUT/$name.stats1.json"
    # the syscalls of each of our busy processes (all threads), in a second
    # window of a second while the workload still runs (strace slows what
    # it traces: counts, not times, are the figures to read)
    tr=""
    for p in $(alive "$pids" | tr , ' '); do
        case "$(cat /proc/"$p"/comm 2>/dev/null)" in micd|mic-card|iperf3|fio|python3) ;; *) continue ;; esac
        args=$(for t in /proc/"$p"/task/*; do printf -- '-p %s ' "$(basename "$t")"; done)
        # shellcheck disable=SC2086
        timeout -s INT 1 strace -c -q $args 2>"$OUT/$name.syscalls.$(cat /proc/"$p"/comm).$p.txt" &
        tr="$tr $!"
    done
    for t in $tr; do wait "$t" || true; done
    # wake-ups per thread over the window
    awk 'NR == FNR { v[$1] = $3; n[$1] = $4; next }
         ($1 in v) { printf "%s %s %d %d\n", $1, $2, $3 - v[$1], $4 - n[$1] }' \
        "$W/cs0" "$W/cs1" | sort -k3 -n -r >"$OUT/$name.ctxsw.txt"
    perf report -i "$OUT/$name.data" --stdio --no-children -q --pid="$pids" \
        -g none -n --sort pid,comm 2>/dev/null | grep -v '^$' | head -40 >"$OUT/$name.threads.txt" || true
    perf report -i "$OUT/$name.data" --stdio --no-children -q --pid="$pids" -g none \
        --sort comm,dso,sym 2>/dev/null | grep -v '^$' | head -60 >"$OUT/$name.symbols.txt" || true
    perf report -i "$OUT/$name.data" --stdio --no-children -q --pid="$pids" -g none \
        --sort pid,sym 2>/dev/null | grep -v '^$' | head -80 >"$OUT/$name.tid-symbols.txt" || true
    echo "$name: $(cat "$OUT/$name.threads.txt" | head -5 | tr -s ' ' | paste -sd';' -)"
}

total=$((WARM + SECS + 4))

# net: iperf3 card -> host
nsenter -t "$MICD" -n timeout -s KILL $((total + 10)) iperf3 -s -1 -B 10.77.1.1 >/dev/null 2>&1 &
sleep 0.3
incard /usr/bin/iperf3 -c 10.77.1.1 -t "$total" >"$OUT/net.iperf3.txt" 2>&1 &
job=$!
measure net
wait "$job"

# disk: fio 4k random write QD32
incard /usr/bin/fio --name=prof --filename=/dev/vda --rw=randwrite --bs=4k --iodepth=32 \
    --ioengine=libaio --direct=1 --time_based --runtime="$total" >"$OUT/disk.fio.txt" 2>&1 &
job=$!
measure disk
wait "$job"

# console: key echo, one key at a time
python3 - "$W/run/mic0/console" "$total" >"$OUT/console.echo.txt" 2>&1 <<'PY' &
import os, select, sys, termios, time, tty
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
end = time.time() + float(sys.argv[2])
n = 0
lat = []
while time.time() < end:
    t = time.perf_counter()
    os.write(fd, b"x")
    if not select.select([fd], [], [], 2)[0]:
        break
    os.read(fd, 4096)
    lat.append(time.perf_counter() - t)
    n += 1
    if n % 50 == 0:
        os.write(fd, b"\x15")
        while select.select([fd], [], [], 0.05)[0]:
            os.read(fd, 4096)
lat.sort()
print(f"{n} echoes, p50 {lat[len(lat)//2]*1e6:.0f} us" if lat else "no echo")
PY
job=$!
measure console
wait "$job"
echo "profile: $OUT"
