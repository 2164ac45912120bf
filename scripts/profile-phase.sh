#!/bin/bash
# CPU per byte of one phase of a micbench run, on a shared machine: runs
# micbench, waits until a process of its own whose command line matches
# PATTERN appears (e.g. the eighth iperf3 client of `net8`'s card phase),
# then profiles the whole machine for SECS s (perf record -a -g -e
# cpu-clock) and reports the samples (about 1 ms of CPU each) of the
# benchmark's own processes only, picked by process tree: by command, and
# how many were copies (_copy_to_iter, _copy_from_iter, memmove, memcpy).
# With the bytes the host ends of micbench's links received meanwhile
# (/proc/PID/net/dev of its namespace), CPU seconds per GB;
# docs/profile.md ("Floors") has the figures this gave.
#
#   scripts/profile-phase.sh [-b BUILD] [-o OUTDIR] PATTERN -- micbench-args...
#   e.g. scripts/profile-phase.sh 'iperf3 -c 10.77.8.1' -- net8 --runs 1 --seconds 12
#        scripts/profile-phase.sh 'iperf3 -c 10.81.8.1' -- floor --runs 1 --seconds 12
#
# Start the phase's meters for longer than WAIT + SECS (defaults 2 + 4 s)
# so the window lies inside it.  Root; perf.
set -eu
BUILD=build
OUT=/tmp/micstack-phase
while [ $# -gt 0 ]; do
    case $1 in
    -b) BUILD=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    *) break ;;
    esac
done
[ $# -ge 2 ] && [ "$2" = "--" ] || { sed -n '2,17p' "$0" >&2; exit 2; }
PAT=$1
shift 2
SECS=${SECS:-4}
WAIT=${WAIT:-2}
BIN=$(cd "$BUILD/bin" && pwd)
mkdir -p "$OUT"

# every process below $1, and $1, comma-separated
desc() {
    ps -e -o pid=,ppid= | awk -v root="$1" '{ p[$1] = $2 }
        END { for (x in p) { y = x; while ((y in p) && y != root && y > 1) y = p[y]
                             if (y == root) printf "%s,", x }
              print root }'
}
mine() { # a process of the benchmark's matching PAT
    local d p
    d=$(desc "$MB")
    for p in $(pgrep -f -- "$PAT"); do
        case ",$d," in *",$p,"*) return 0 ;; esac
    done
    return 1
}

"$BIN/micbench" "$@" >"$OUT/bench.md" 2>"$OUT/bench.err" &
MB=$!
trap 'kill $MB 2>/dev/null' INT TERM
found=
for _ in $(seq 1800); do
    kill -0 "$MB" 2>/dev/null || break
    if mine; then found=1; break; fi
    sleep 0.1
done
[ -n "$found" ] || { echo "no process matching '$PAT' appeared" >&2; wait "$MB"; exit 1; }
sleep "$WAIT"
# bytes received by the interfaces of micbench's network namespace (the
# host ends: TAPs and veths; the idle kind adds nothing)
# (read by the command perf times: its start-up and write-out are not in
# the window)
rxbytes() { awk -F'[: ]+' 'NR > 2 && $2 != "lo" { s += $3 } END { print s + 0 }' "$1"; }
# the processes alive in the middle of the window
(sleep "$((SECS / 2 + 1))"; desc "$MB" >"$OUT/pids") &
DESC=$!
perf record -a -g -e cpu-clock -F 999 -o "$OUT/perf.data" -- \
    sh -c 'cat "$1" >"$2.0"; sleep "$3"; cat "$1" >"$2.1"' sh "/proc/$MB/net/dev" "$OUT/netdev" "$SECS" 2>/dev/null
rx0=$(rxbytes "$OUT/netdev.0")
rx1=$(rxbytes "$OUT/netdev.1")
wait "$DESC" || true
load=$(cut -d' ' -f1-3 /proc/loadavg)
kill -0 "$MB" 2>/dev/null || echo "warning: the benchmark ended inside the window" >&2
wait "$MB" || echo "warning: micbench failed: $(cat "$OUT/bench.err")" >&2

pids=$(perf script -i "$OUT/perf.data" -F pid 2>/dev/null | awk -v L="$(cat "$OUT/pids")" '
    BEGIN { n = split(L, a, ","); for (i = 1; i <= n; i++) m[a[i]] = 1 }
    ($1 in m) { u[$1] = 1 } END { for (x in u) printf "%s,", x }')
total=$(perf script -i "$OUT/perf.data" -F pid 2>/dev/null | wc -l)
gb=$(awk -v a="$rx0" -v b="$rx1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
echo "window: ${SECS} s, all samples ${total}, load ${load}; ${gb} GB received by the host ends"
echo "the benchmark's processes (samples ~ ms of CPU; s per GB = samples / 1000 / GB):"
[ -n "$pids" ] || { echo "  none sampled"; exit 1; }
perf report -i "$OUT/perf.data" --pid "${pids%,}" --no-children --sort comm,sym -g none \
    --stdio -F sample,comm,sym 2>/dev/null | awk -v gb="$gb" '/^ +[0-9]+ / {
        s = $1; t += s; c[$2] += s
        if ($4 ~ /copy_to_iter|copy_from_iter|memmove|memcpy|copy_user/) { cp += s; cc[$2] += s } }
    END { for (x in c) printf "  %-14s %6d samples, copies %6d\n", x, c[x], cc[x]
          printf "  %-14s %6d samples, copies %6d (%.0f %%)\n", "all", t, cp, t ? 100 * cp / t : 0
          if (gb > 0) printf "  CPU s per GB: %.2f, of which copies %.2f\n", t / 1000 / gb, cp / 1000 / gb }'
