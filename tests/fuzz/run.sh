#!/bin/sh
# Builds a fuzz harness with clang (libFuzzer + ASan + UBSan) and runs it
# for a bounded time.  usage: run.sh [OUTDIR] [SECONDS] [TARGET]
# TARGET: vop (default: device page and chain walker, fuzz_vop.c) or
# backends (block and net backends against card-written requests,
# fuzz_backends.c).  Exit 77 (skipped) when clang or its fuzzer runtime is
# missing.
set -e
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/micstack-fuzz}
SECS=${2:-60}
TARGET=${3:-vop}
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null 2>&1 || { echo "fuzz: $CC not found, skipped"; exit 77; }
case "$TARGET" in
vop)
    SRCS="tests/fuzz/fuzz_vop.c vop/host/vop_devpage.c vop/host/vop_ring.c vop/dp.c hw/view.c"
    CORPUS="$OUT/corpus" SEEDS="" PREFIX="$OUT/" LIBS="" ;;
backends)
    SRCS="tests/fuzz/fuzz_backends.c host/vdev.c host/backends/block.c host/backends/net.c
          vop/host/vop_devpage.c vop/host/vop_ring.c vop/dp.c vop/card/vop_card.c vop/card/cma.c
          hw/view.c hw/sim.c hw/sandbox.c hw/attach.c hw/dma_engine.c lib/clock.c lib/log.c lib/proc.c dma/mic_dma.c"
    CORPUS="$OUT/corpus-backends" SEEDS="$SRC/tests/fuzz/seeds-backends" PREFIX="$OUT/backends-"
    LIBS="-luring" ;;
*)
    echo "usage: run.sh [OUTDIR] [SECONDS] [vop|backends]"; exit 2 ;;
esac
mkdir -p "$CORPUS"
if ! (cd "$SRC" && "$CC" -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Wall -Wextra -Werror -D_GNU_SOURCE \
    -I"$SRC/include" -I"$SRC" $SRCS $LIBS -lpthread \
    -o "$OUT/fuzz_$TARGET") 2>"$OUT/build-$TARGET.log"; then
    if grep -q "libclang_rt.fuzzer\|cannot find -l" "$OUT/build-$TARGET.log"; then
        echo "fuzz: no libFuzzer runtime, skipped"; cat "$OUT/build-$TARGET.log"; exit 77
    fi
    cat "$OUT/build-$TARGET.log"; exit 1
fi
# The corpus persists in OUTDIR, so repeated runs go deeper; checked-in
# seeds (regression cases) are read too.
exec "$OUT/fuzz_$TARGET" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$PREFIX" "$CORPUS" $SEEDS
