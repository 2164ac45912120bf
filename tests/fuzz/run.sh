#!/bin/sh
# Builds the vop fuzz harness with clang (libFuzzer + ASan + UBSan) and runs
# it for a bounded time.  usage: run.sh [OUTDIR] [SECONDS]
# Exit 77 (skipped) when clang or its fuzzer runtime is missing.
set -e
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/micstack-fuzz}
SECS=${2:-60}
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null 2>&1 || { echo "fuzz: $CC not found, skipped"; exit 77; }
mkdir -p "$OUT/corpus"
if ! "$CC" -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Wall -Wextra -Werror -D_GNU_SOURCE \
    -I"$SRC/include" -I"$SRC" \
    "$SRC/tests/fuzz/fuzz_vop.c" "$SRC/vop/host/vop_host.c" "$SRC/vop/dp.c" "$SRC/hw/view.c" \
    -o "$OUT/fuzz_vop" 2>"$OUT/build.log"; then
    if grep -q "libclang_rt.fuzzer\|cannot find -l" "$OUT/build.log"; then
        echo "fuzz: no libFuzzer runtime, skipped"; cat "$OUT/build.log"; exit 77
    fi
    cat "$OUT/build.log"; exit 1
fi
# The corpus persists in OUTDIR, so repeated runs go deeper.
exec "$OUT/fuzz_vop" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$OUT/" "$OUT/corpus"
