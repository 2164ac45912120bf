#!/bin/bash
# micbench floor end to end, one short run: the pieces (hand-offs, PTY and
# TAP hops, copies) and the model card (two TAPs or PTYs joined by two
# processes and shared memory) carry an echo, iperf3 on one and on eight
# links, and a console shell, each row with figures; and nothing is left
# running (the relays, shells and servers are micbench's children).
. "$(dirname "$0")/lib.sh"

ARGS="floor --runs 1 --seconds 1"
"$BIN/micbench" $ARGS >"$RUNDIR/floor.out" 2>&1 &
MB=$!
timeout 180 tail --pid="$MB" -f /dev/null
kill -TERM "$MB" 2>/dev/null
wait "$MB"
rc=$?
out=$(cat "$RUNDIR/floor.out")
check "micbench floor exits 0" test "$rc" -eq 0
num='[0-9.]+ \([0-9.]+-[0-9.]+\)'
piece() { grep -Eq "^\| $1.*\| $num \|\$" <<<"$out"; }
model() { grep -Eq "^\| $1 \| $num $2 \| $num $2 \| $num \| $3 \|\$" <<<"$out"; }
for p in "hand-off between two processes over a pipe" "the same over an eventfd" \
    "hand-off in a ring of four processes" "PTY hop" "TAP hop" "memcpy of 64 KiB"; do
    if piece "$p"; then ok "piece with a figure: $p"; else fail "piece: $p"; fi
done
for m in "TCP 64-byte echo round trip, p50|us|1.5x" "iperf3 TCP card -> host|Gbit/s|0.8" \
    "iperf3 TCP host -> card|Gbit/s|0.8" "eight links at once, aggregate|Gbit/s|0.8" \
    "console key echo, p50|us|1.5x" "console throughput|MB/s|1.0" \
    "echo p50, the veth's ends pinned to one CPU|us|1.5x" "echo p99, the veth's ends pinned to two CPUs|us|2x"; do
    IFS='|' read -r what unit aim <<<"$m"
    if model "$what" "$unit" "$aim"; then ok "model card row with figures: $what"; else fail "model card: $what"; fi
done
# the model card's sides sleep between packets: about one wake-up each per round trip, never none
wake=$(sed -nE 's/^\| wake-ups per echo round trip .*\| ([0-9.]+) \(.*\| ([0-9.]+) \(.*/\1 \2/p' <<<"$out")
check "model card sides woke per echo ($wake)" awk -v w="$wake" 'BEGIN { split(w, a, " "); exit !(a[1] >= 0.5 && a[2] >= 0.5) }'
# each side's CPU per round trip: two TAP or ring crossings each, never nothing
cpu=$(sed -nE 's/^\| CPU per echo round trip .*\| ([0-9.]+) \(.*\| ([0-9.]+) \(.*/\1 \2/p' <<<"$out")
check "model card sides' CPU per echo ($cpu us)" awk -v c="$cpu" 'BEGIN { split(c, a, " "); exit !(a[1] > 1 && a[2] > 1) }'
# the console stream's relays: CPU per MB, never nothing
check "model card console path CPU per MB" grep -Eq '^\| console stream: CPU of the path .* \| [0-9.]*[1-9][0-9.]* \(' <<<"$out"
check "nothing of micbench floor left running" eval "! pgrep -f \"micbench $ARGS\" >/dev/null"
[ "$T_FAILS" -eq 0 ] || say "$out"
finish
