# On a pure cgroup v2 host (run in the test VM by tests/vm/guest.sh): every
# process of a card sits in the card's own v2 cgroup, with its limits from the
# config, from the firmware's first instruction on; the cgroups go with micd.
# MIC_CGROUP set: micd was started alone in that cgroup, delegated to it as
# systemd's Delegate=yes does, and keeps everything below it; else micd is in
# the root cgroup and the cards go to /micstack.<micd pid>/.
. "$(dirname "$0")/../integration/lib.sh"
CG=/sys/fs/cgroup
# timeouts stretch by MIC_TIME_SCALE in an emulated VM
scale=${MIC_TIME_SCALE:-1}
cat > "$RUNDIR/micd.conf" <<CONF
[daemon]
reset_timeout_ms = $((5000 * scale))
shutdown_timeout_ms = $((5000 * scale))
watchdog_ms = $((5000 * scale))
[mic0]
net = no
memory_mb = 300
pids_max = 77
cpu_weight = 250
[mic1]
net = no
CONF
start_micd --config "$RUNDIR/micd.conf" --image "$IMAGE"
micctl wait mic0 ready --timeout $((10 * scale)) >/dev/null
micctl wait mic1 ready --timeout $((10 * scale)) >/dev/null
check "mic0 boots" micctl boot mic0
check "mic1 boots" micctl boot mic1

cg_of() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }
if [ -n "${MIC_CGROUP:-}" ]; then
    base=${MIC_CGROUP#"$CG"}
    check "micd moved itself into a leaf of its cgroup ($(cg_of "$MICD_PID"))" \
        [ "$(cg_of "$MICD_PID")" = "$base/daemon" ]
    check "nothing is left in micd's own cgroup, so it can hand controllers down" \
        [ -z "$(cat "$MIC_CGROUP/cgroup.procs")" ]
else
    base=/micstack.$MICD_PID
    check "micd stays in the root cgroup" [ "$(cg_of "$MICD_PID")" = / ]
fi
grep -qw memory "$CG$base/cgroup.subtree_control" && grep -qw pids "$CG$base/cgroup.subtree_control"
check "memory and pids are enabled below $base" [ $? = 0 ]

fw=$(json_field mic0 firmware_pid)
dir=$CG$base/mic0
check "mic0's firmware is in $base/mic0 ($(cg_of "$fw"))" [ "$(cg_of "$fw")" = "$base/mic0" ]
procs=$(descendants "$fw")
n=0 out=""
for p in $procs; do
    n=$((n + 1))
    c=$(cg_of "$p") || continue
    [ "$c" = "$base/mic0" ] || out="$out $p:$c"
done
check "all $n processes of the card are there${out:+ (not:$out)}" [ "$n" -gt 1 -a -z "$out" ]
check "memory.max is memory_mb ($(cat "$dir/memory.max"))" [ "$(cat "$dir/memory.max")" = $((300 << 20)) ]
check "pids.max is pids_max ($(cat "$dir/pids.max"))" [ "$(cat "$dir/pids.max")" = 77 ]
check "cpu.weight is cpu_weight ($(cat "$dir/cpu.weight"))" [ "$(cat "$dir/cpu.weight")" = 250 ]
check "an OOM kill takes the whole card (memory.oom.group)" [ "$(cat "$dir/memory.oom.group")" = 1 ]
check "the card's memory is charged there ($(cat "$dir/memory.current") bytes)" [ "$(cat "$dir/memory.current")" -gt 0 ]
fw1=$(json_field mic1 firmware_pid)
check "mic1 has a cgroup of its own ($(cg_of "$fw1")), with the defaults" \
    [ "$(cg_of "$fw1"):$(cat "$CG$base/mic1/pids.max")" = "$base/mic1:1024" ]
check "power off and boot: the card comes back into its cgroup" sh -c \
    "micctl reset mic0 >/dev/null && micctl boot mic0 >/dev/null"
fw=$(json_field mic0 firmware_pid)
check "the new firmware is in $base/mic0" [ "$(cg_of "$fw")" = "$base/mic0" ]
stop_micd
gone() { [ ! -e "$dir" ] && [ ! -e "$CG$base/mic1" ]; }
check "micd took the cards' cgroups with it" gone
[ -n "${MIC_CGROUP:-}" ] || check "and its own level" [ ! -e "$CG$base" ]
finish
