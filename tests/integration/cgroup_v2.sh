# The cards' cgroup v2 path, which this hybrid host (v1 controllers) never
# takes: boots Debian's kernel in a VM with cgroup v1 off (tests/vm: the
# host's / read-only over 9p, tmpfs where the guest writes) and runs there,
# against this build, the placement checks (tests/vm/v2_cgroup.sh: micd in
# the root cgroup, and in a cgroup delegated to it) and the limits test.
set -u
BIN=${MIC_BIN:?MIC_BIN must point at build/bin}
BIN=$(cd "$BIN" && pwd)
SRC=${MIC_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
VM=$(cd "$BIN/.." && pwd)/vm
say() { echo "[cgroup_v2] $*"; }

sh "$SRC/tests/vm/mkvm.sh" "$VM" || { say "FAIL: no kernel for the VM"; exit 1; }
# Under ASan the emulated VM is about twice as slow again: the sanitizer
# build runs the placement checks (every cgroup file micd writes, charging,
# reset, removal), the normal build the limits test as well (the same
# code: only the kernel's OOM and fork refusals differ from the host's).
tests="placement-root placement-delegated limits"
grep -qs '^MIC_SANITIZE:BOOL=ON' "$BIN/../CMakeCache.txt" && tests="placement-root placement-delegated"
out=$(mktemp /tmp/micstack-vm.XXXXXX)
trap 'rm -f "$out"' EXIT
# vm ACCEL-OPTIONS: the VM in the background (qemu's pid in $qpid)
vm() {
    : > "$out"
    # shellcheck disable=SC2086
    timeout "$limit" qemu-system-x86_64 "$@" -smp 2 -m 2048 -nodefaults -no-user-config \
        -display none -no-reboot -serial "file:$out" \
        -kernel "$VM/vmlinuz" -initrd "$VM/initrd.gz" \
        -append "console=ttyS0 cgroup_no_v1=all panic=-1 quiet micvm.run=$SRC/tests/vm/guest.sh micvm.bin=$BIN micvm.scale=$scale micvm.tests=$(echo $tests | tr ' ' ,)" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
        </dev/null &
    qpid=$!
}
t0=$(date +%s)
# KVM where it works: a stock kernel must reach the initramfs's init within
# seconds.  (Under nested KVM the host CPU's IA32_ARCH_CAPABILITIES may not
# be settable: qemu aborts; a KVM that runs only paravirtualised guests,
# such as kvm-pvm, starts qemu but the guest never gets far.)
accel=""
for cpu in host host,-arch-capabilities; do
    [ -w /dev/kvm ] || break
    limit=420 scale=1
    vm -accel kvm -cpu "$cpu" 2>/dev/null
    for _ in $(seq 100); do
        grep -q '^micvm: init' "$out" 2>/dev/null && { accel="kvm -cpu $cpu"; break 2; }
        kill -0 "$qpid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$qpid" 2>/dev/null
    wait "$qpid" 2>/dev/null
done
if [ -z "$accel" ]; then
    # emulated: several times slower
    limit=1000 scale=3 accel=tcg
    vm -accel tcg
fi
wait "$qpid"
rc=$?
tr -d '\r' < "$out" | grep -v '^MICVM-'
say "qemu ($accel) exited $rc after $(($(date +%s) - t0)) s"
fails=0
for t in host $tests; do
    r=$(tr -d '\r' < "$out" | sed -n "s/^MICVM-RESULT $t //p")
    if [ "$r" = 0 ]; then say "ok: $t"; else say "FAIL: $t (${r:-no result})"; fails=$((fails + 1)); fi
done
tr -d '\r' < "$out" | grep -q '^MICVM-DONE' || { say "FAIL: the VM did not finish"; fails=$((fails + 1)); }
n=$(($(echo host $tests | wc -w) + 1))
say "$((n - fails)) of $n checks passed"
[ "$fails" -eq 0 ]
