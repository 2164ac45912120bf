#!/bin/sh
# Where one echo round trip's CPU goes, by process and system call, with
# everything on one CPU (docs/profile.md, "The p50 gap, measured on one
# CPU").  Runs `micbench net` or `floor` (echo only) pinned to CPU CPU,
# records that CPU with perf (cpu-clock, call graphs) and keeps only the
# samples inside the card's echo (its round trips come from
# MICBENCH_ECHO_DUMP, on the same clock as perf's -k CLOCK_MONOTONIC).
# Pinned, the CPU is busy for the whole round trip, so the per-process
# figures add up to it.  perf lengthens the round trip and changes the
# scheduling it measures, not alike for micstack and the model card: read
# where each side's time goes here, and the gap between them from runs
# without perf (micbench's own CPU per round trip).
#
#   [BUILD=build] [OUT=/tmp/micstack-echo] [CPU=1] scripts/profile-echo.sh net|floor [ROUNDS]
#   e.g. scripts/profile-echo.sh net; scripts/profile-echo.sh floor
#
# Root; perf, taskset.
set -eu
BUILD=${BUILD:-build}
OUT=${OUT:-/tmp/micstack-echo}
case ${1:-} in
net) IP=10.77.1.2 ;;
floor) IP=10.81.1.2 ;;
*) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
WHAT=$1
ROUNDS=${2:-20000}
CPU=${CPU:-1}
BIN=$(cd "$BUILD/bin" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
rm -f "$OUT/$WHAT.dump"
MICBENCH_ECHO_DUMP="$OUT/$WHAT.dump" MICBENCH_ECHO_ONLY=1 MICBENCH_ECHO_ROUNDS="$ROUNDS" \
    perf record -q -k CLOCK_MONOTONIC -C "$CPU" -g -F 4999 -o "$OUT/$WHAT.data" -- \
    taskset -c "$CPU" "$BIN/micbench" "$WHAT" --runs 1 --seconds 1 >"$OUT/$WHAT.out" 2>"$OUT/$WHAT.err" || {
    cat "$OUT/$WHAT.err" >&2
    exit 1
}
grep "^ECHO $IP " "$OUT/$WHAT.err" || true
perf script -i "$OUT/$WHAT.data" -F comm,tid,time,ip,sym 2>/dev/null |
    python3 "$HERE/echo-window.py" "$OUT/$WHAT.dump" "$IP" 4999
