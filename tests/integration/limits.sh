# A card that forks without bound or fills its memory is contained by its
# own cgroup: the fork bomb stops at pids_max, the memory hog takes the card
# down as a whole ("lost", out of memory) within its limit, while micd and
# the other card carry on; reset and boot bring the card back.
. "$(dirname "$0")/lib.sh"
# waits stretch by MIC_TIME_SCALE on a slow machine (an emulated VM)
scale=${MIC_TIME_SCALE:-1}
# within SECONDS CMD...: CMD succeeds within SECONDS (times the scale)
within() {
    local end=$((SECONDS + $1 * scale))
    shift
    until "$@"; do [ "$SECONDS" -lt "$end" ] || return 1; sleep 0.1; done
}
cat > "$RUNDIR/micd.conf" <<CONF
[daemon]
reset_timeout_ms = $((5000 * scale))
shutdown_timeout_ms = $((5000 * scale))
watchdog_ms = $((5000 * scale))
[mic0]
pids_max = 100
net = no
[mic1]
net = no
CONF
start_micd --config "$RUNDIR/micd.conf" --image "$IMAGE"
micctl wait mic0 ready --timeout $((10 * scale)) >/dev/null
micctl wait mic1 ready --timeout $((10 * scale)) >/dev/null
micctl boot mic0 >/dev/null
micctl boot mic1 >/dev/null

# cg_file CARD CONTROLLER FILE: the card's cgroup file, v2 or v1, found from
# its firmware's /proc/PID/cgroup as the host sees it
cg_file() {
    local fw line
    fw=$(json_field "$1" firmware_pid)
    line=$(grep -E "^[0-9]+:([^:]*,)?$2(,[^:]*)?:" "/proc/$fw/cgroup")
    if [ -n "$line" ]; then echo "/sys/fs/cgroup/$2${line#*:*:}/$3"; return; fi
    echo "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$fw/cgroup")/$3"
}
con() { micctl console "$1" | tr -d '\r'; }
other_card_works() { con mic1 <<< hostname | grep -qx mic1; }

# (1) memory: one process of the card asks for more than the card's RAM
mem=$(cg_file mic0 memory memory.limit_in_bytes)
[ -e "$mem" ] || mem=$(cg_file mic0 memory memory.max)
limit=$(cat "$mem")
check "the card has a memory limit of its RAM, 512 MiB ($limit)" [ "$limit" = $((512 << 20)) ]
micd_rss0=$(awk '/^VmRSS/{print $2}' /proc/$MICD_PID/status)
# (dd reads /dev/zero into one 700 MiB buffer: the kernel touches every page)
con mic0 <<< 'dd if=/dev/zero of=/dev/null bs=700M count=1; echo done' >"$RUNDIR/hog" 2>&1 &
hog=$!
is_lost() { [ "$(state_of mic0)" = lost ]; }
within 30 is_lost
check "the card is lost" [ "$(state_of mic0)" = lost ]
[ "$(state_of mic0)" = lost ] || sed 's/^/    /' "$RUNDIR/hog"
check "status says it ran out of memory" sh -c "micctl status mic0 | grep -q 'out of memory'"
peak=$(cat "$(dirname "$mem")/memory.max_usage_in_bytes" 2>/dev/null || cat "$(dirname "$mem")/memory.peak")
check "the card's memory never passed its limit ($peak bytes)" [ "$peak" -le "$limit" ]
micd_rss1=$(awk '/^VmRSS/{print $2}' /proc/$MICD_PID/status)
check "micd's memory did not grow with it ($micd_rss0 -> $micd_rss1 kB)" [ "$micd_rss1" -lt $((micd_rss0 + 65536)) ]
check "micd answers" micctl status
check "the other card's console works" other_card_works
wait $hog
check "reset brings the card back" micctl reset mic0
check "and it boots" micctl boot mic0
check "its console works" sh -c "echo hostname | micctl console mic0 | tr -d '\\r' | grep -qx mic0"

# (2) processes: the card's shell forks 300 sleepers; only pids_max exist
# (short sleepers: with the card at its limit no kill could be forked)
pids=$(cg_file mic0 pids pids.max)
check "the card has a pids limit of 100 ($pids)" grep -qx 100 "$pids"
micctl console mic0 --linger $((4 * scale)) <<< "i=0; while [ \$i -lt 300 ]; do sleep $((8 * scale)) & i=\$((i+1)); done; echo forked-\$((i))" >"$RUNDIR/bomb" &
within 15 grep -q "can't fork" "$RUNDIR/bomb"
n=$(cat "$(dirname "$pids")/pids.current")
check "the card's shell was refused a fork" grep -q "can't fork" "$RUNDIR/bomb"
grep -q "can't fork" "$RUNDIR/bomb" || tail -3 "$RUNDIR/bomb" | sed 's/^/    /'
check "fork bomb held at the limit ($n processes)" [ "$n" -le 100 ]
check "micd answers during the fork bomb" micctl status
check "the other card's console works" other_card_works
# the sleepers end; a builtin (no fork) lets the shell reap them
sleep $((8 * scale))
con mic0 <<< 'echo reaped' >/dev/null
few_left() { [ "$(cat "$(dirname "$pids")/pids.current")" -lt 20 ]; }
within 10 few_left
check "the card's shell forks again once its processes are gone" sh -c "echo 'cat /proc/sys/kernel/hostname' | micctl console mic0 | tr -d '\\r' | grep -qx mic0"
finish
