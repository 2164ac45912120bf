# 50 boot/shutdown cycles: the daemon's file descriptors, threads and memory
# do not grow, and no process is left behind.
. "$(dirname "$0")/lib.sh"
# Under ASan, freed memory waits in a quarantine (up to 256 MiB) before it is
# reused, so RSS grows with churn, not leaks (LeakSanitizer reports those at
# exit): without it, this measures what it does in a normal build.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
start_micd
micctl wait mic0 ready --timeout 2 >/dev/null
cycle() { micctl boot mic0 >/dev/null && micctl shutdown mic0 >/dev/null; }
for i in 1 2 3 4 5; do cycle; done   # warm up: lazy allocations settle
set -- $(micd_res); fd0=$1; th0=$2; rss0=$3
bad=0
for i in $(seq 1 50); do cycle || bad=$((bad + 1)); done
set -- $(micd_res); fd1=$1; th1=$2; rss1=$3
say "before: fds=$fd0 threads=$th0 rss=${rss0}kB; after: fds=$fd1 threads=$th1 rss=${rss1}kB"
check "50 cycles all succeeded" [ "$bad" -eq 0 ]
# Read after the measurement, which the log requests would skew.  A card
# logs its card memory still in use after its devices went only if any is:
# a driver that leaks (the console did) says so at every shutdown.
log=$(micctl log mic0)
check "cards halted, their card memory all freed" sh -c "echo \"\$1\" | grep -q 'card: halted' && ! echo \"\$1\" | grep -q 'cma: .* bytes in use'" sh "$log"
check "no fd growth" [ "$fd1" -le "$fd0" ]
check "no thread growth" [ "$th1" -le "$th0" ]
check "memory growth under 1 MiB" [ "$rss1" -le $((rss0 + 1024)) ]
check "firmware is the only card process after shutdown" [ "$(descendants $MICD_PID | wc -l)" -eq 1 ]
check "boot count is 55" [ "$(json_field mic0 boots)" -eq 55 ]
finish
