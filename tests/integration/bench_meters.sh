#!/bin/bash
# micbench's meters: an image made with `mic-mkimage --add` carries a host
# program and its libraries, which then runs inside the card (iperf3 from the
# card to its host end); `micbench net`, `micbench block` and `micbench vblk`
# (fio on a disk from qemu-storage-daemon over vhost-user vs the built-in
# backend) run iperf3 and fio in the card end to end (one short run each) and
# leave no process, namespace or file behind.
. "$(dirname "$0")/lib.sh"

IMG=$RUNDIR/bench.img
if mic-mkimage -o "$IMG" --default --runtime "$BIN/mic-card" --add usr/bin/iperf3 >/dev/null 2>&1; then
    fail "--add took a relative path"
else
    ok "--add refuses a relative path"
fi
check "image with iperf3 built" mic-mkimage -o "$IMG" --default --runtime "$BIN/mic-card" --add /usr/bin/iperf3
cat >"$RUNDIR/micd.conf" <<EOF
[mic0]
image = $IMG
cmdline = mic.ip=10.77.9.2/24
host_ip = 10.77.9.1/24
EOF
start_micd --config "$RUNDIR/micd.conf"
micctl wait mic0 ready --timeout 10 >/dev/null
check "card with the image boots" micctl boot mic0
OS=$(card_os_pid mic0)
# the card's own copy, from the card's root: the host's files are not there
incard() { nsenter -t "$OS" -a -- /bin/busybox timeout -s KILL 20 "$@"; }
iperf_version() { incard /usr/bin/iperf3 --version | grep -q '^iperf 3'; }
no_fio() { incard test -e /bin/busybox && ! incard test -e /usr/bin/fio; }
check "iperf3 runs inside the card" iperf_version
check "a host program not added is not in the card" no_fio
hostns timeout 20 iperf3 -s -1 -B 10.77.9.1 >/dev/null 2>&1 &
srv=$!
for _ in $(seq 50); do hostns ss -ltn 2>/dev/null | grep -q '10.77.9.1:5201' && break; sleep 0.05; done
json=$(incard /usr/bin/iperf3 -c 10.77.9.1 -t 1 -J 2>/dev/null)
wait "$srv"
bps=$(echo "$json" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))' 2>/dev/null)
check "iperf3 card -> host moved data (${bps:-no} bit/s)" test "${bps:-0}" -gt 0
stop_micd

# the benchmarks end to end, one short run each
# (their working directories in a TMPDIR of the test's own: benchmarks run
# by others on the machine at the same time make and remove theirs; open
# to search like /tmp, since the cards' unprivileged ids use files there)
TMPDIR=$(mktemp -d /tmp/micstack-benchtmp.XXXXXX) && chmod 0755 "$TMPDIR"
export TMPDIR
net_rows() {
    grep -Eq '^\| iperf3 TCP card -> host \| [0-9.]+ \([0-9.]+-[0-9.]+\) Gbit/s \| [0-9.]+ .* \| [0-9.]+ ' <<<"$1" &&
        grep -Eq '^\| TCP 64-byte echo round trip, p99 \| [0-9.]+ ' <<<"$1"
}
block_rows() {
    grep -Eq '^\| 4k random write, QD32 \| [0-9]+ \([0-9]+-[0-9]+\) IOPS \| [0-9]+ ' <<<"$1" &&
        grep -Eq '^\| 1M sequential read, QD8 \| [0-9]+ .* MB/s' <<<"$1"
}
vblk_row() {
    grep -Eq '^\| 4k random read, QD32 \| [0-9]+ \([0-9]+-[0-9]+\) IOPS \| [0-9]+ \([0-9]+-[0-9]+\) IOPS \| [0-9.]+ \([0-9.]+-[0-9.]+\) \|$' <<<"$1"
}
# run_bench CMD...: micbench CMD with a time limit; its output in $out, its pid in $MB
run_bench() {
    micbench "$@" >"$RUNDIR/bench.out" 2>&1 &
    MB=$!
    timeout 240 tail --pid="$MB" -f /dev/null
    kill -TERM "$MB" 2>/dev/null
    wait "$MB"
    out=$(cat "$RUNDIR/bench.out")
}
# left_behind: the benchmark's micd (run directory /tmp/micbench.<pid>) or its directory
left_behind() { pgrep -f "/tmp/micbench\.$MB( |/|\$)" >/dev/null || [ -e "/tmp/micbench.$MB" ]; }
run_bench net --runs 1 --seconds 1
if net_rows "$out"; then ok "micbench net: iperf3 and echo rows with figures"; else fail "micbench net"; say "$out"; fi
# the echo's hand-offs: micd's and the card's wake-ups per round trip, counted
check "micbench net: wake-ups per echo round trip of micd and the card OS" \
    grep -Eq 'micd [0-9.]*[1-9][0-9.]* \([0-9.]+-[0-9.]+\), card OS [0-9.]*[1-9][0-9.]* \(' <<<"$out"
# CPU per GB received card -> host, through the card and the veth pair
check "micbench net: CPU seconds per GB received, card and veth" \
    grep -Eq '^\| CPU seconds per GB received, card -> host \| [0-9.]*[1-9][0-9.]* \([0-9.]+-[0-9.]+\) s \| [0-9.]*[1-9][0-9.]* ' <<<"$out"
# and what each side's CPU costs per round trip (schedstat): never nothing
check "micbench net: CPU per echo round trip of micd and the card OS" \
    grep -Eq 'CPU micd [0-9.]*[1-9][0-9.]* \([0-9.]+-[0-9.]+\) us, card OS [0-9.]*[1-9][0-9.]* \(' <<<"$out"
# the veth baseline in both placements, pinned: one CPU and two
check "micbench net: the veth echo pinned to one CPU and to two" \
    grep -Eq 'pinned, p50: on one CPU [0-9.]+ \([0-9.]+-[0-9.]+\) us, on two CPUs [0-9.]+ \(' <<<"$out"
check "micbench net: and its p99 pinned, with the card's ratio to each" \
    grep -Eq 'Pinned the same way, p99: on one CPU [0-9.]+ .* us \(the card.s p99 / these: [0-9.]+ and [0-9.]+\)' <<<"$out"
check "micbench net left nothing running" eval '! left_behind'
run_bench console --quick
check "micbench console: throughput and key echo rows with figures" \
    grep -Eq '^\| key echo round trip, p50 \| [0-9.]+ \([0-9.]+-[0-9.]+\) us \| [0-9.]+ ' <<<"$out"
check "micbench console: CPU of the card's path per MB of the stream" \
    grep -Eq 'per MB of the stream: [0-9.]*[1-9][0-9.]* \([0-9.]+-[0-9.]+\) ms' <<<"$out"
check "micbench console left nothing running" eval '! left_behind'
run_bench block --runs 1 --seconds 1
if block_rows "$out"; then ok "micbench block: fio rows with figures"; else fail "micbench block"; say "$out"; fi
check "micbench block left nothing running" eval '! left_behind'
run_bench vblk --quick
if vblk_row "$out"; then ok "micbench vblk: vhost-user vs built-in row with figures"; else fail "micbench vblk"; say "$out"; fi
check "micbench vblk left nothing running" eval '! left_behind'
check "micbench vblk's qemu-storage-daemon is gone" eval '! pgrep -f "^qemu-storage-daemon .*/micbench-vblk\." >/dev/null'
check "no benchmark directory left" test -z "$(ls -A "$TMPDIR")"
rmdir "$TMPDIR"
finish
