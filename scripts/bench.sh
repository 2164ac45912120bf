#!/bin/sh
# Runs every benchmark and writes the results into BENCHMARKS.md's sections.
#   scripts/bench.sh [BUILD [SECTION...]]   (make bench BENCH="net net8")
# With sections, only those run and only their sections are replaced.
set -e
BIN=$(cd "${1:-build}/bin" && pwd)
if [ $# -gt 0 ]; then shift; fi
all="boot dma console net net8 block vblk fs idle floor"
sections=${*:-$all}
for b in $sections; do
    case " $all " in
    *" $b "*) ;;
    *) echo "bench.sh: no benchmark '$b' ($all)" >&2; exit 2 ;;
    esac
done
out=$(mktemp -d)
# steal time of all CPUs so far, in clock ticks (/proc/stat)
steal() { awk '/^cpu /{print $9}' /proc/stat; }
for b in $sections; do
    if "$BIN/micbench" --help 2>&1 | grep -q "^  $b "; then
        echo "== micbench $b"
        # the machine's load before the run goes into the section's stamp:
        # figures from a busy machine say so
        cut -d' ' -f1-3 /proc/loadavg >"$out/$b.load"
        # and the time the hypervisor gave this machine's CPUs to others
        # while it ran (steal): the latencies follow it (docs/profile.md)
        s0=$(steal); t0=$(date +%s)
        "$BIN/micbench" "$b" --out "$out/$b.md" || rm -f "$out/$b.md"
        echo "$(( $(steal) - s0 )) $(( $(date +%s) - t0 )) $(nproc)" >"$out/$b.steal"
    fi
done
python3 scripts/update-benchmarks.py BENCHMARKS.md "$out"
rm -rf "$out"
