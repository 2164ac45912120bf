#!/bin/sh
# PID 1 of the test VM once its root is the host's / (tests/vm/init): a pure
# cgroup v2 host (cgroup_no_v1=all).  Runs the cgroup v2 tests against the
# build named by micvm.bin=, prints one "MICVM-RESULT NAME RC" line per test
# and "MICVM-DONE", and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C
SRC=$(cd "$(dirname "$0")/../.." && pwd)
arg() { sed -n "s/.*micvm\\.$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
BIN=$(arg bin)
# the tests' waits stretch on an emulated machine (no KVM)
export MIC_TIME_SCALE=$(arg scale)
off() { echo MICVM-DONE; sync; busybox poweroff -f; echo o > /proc/sysrq-trigger; }
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t fusectl fusectl /sys/fs/fuse/connections
hostname micvm
ip link set lo up

# the build's files into the page cache: a cold read over 9p is no part of
# what the tests time
cat "$BIN"/* "$BIN"/../images/*.img > /dev/null 2>&1

result() { echo "MICVM-RESULT $1 $2"; }
# wanted NAME: NAME is one of micvm.tests= (comma-separated)
wanted() { case ",$(arg tests)," in *",$1,"*) return 0 ;; esac; return 1; }
# run NAME SCRIPT [VAR=VALUE...]: one test script of the project, bounded
run() {
    local name=$1 script=$2
    shift 2
    local t0=$(cut -d. -f1 /proc/uptime) rc
    env MIC_BIN="$BIN" MIC_SRC="$SRC" "$@" timeout $((150 * ${MIC_TIME_SCALE:-1})) bash "$script"
    rc=$?
    echo "micvm: $name took $(($(cut -d. -f1 /proc/uptime) - t0)) s"
    result "$name" $rc
}

# the host is what the tests assume: v2 only, with the card's controllers
v1=$(mkdir -p /tmp/v1 && mount -t cgroup -o memory none /tmp/v1 2>&1 && echo mounted)
ctl=$(cat /sys/fs/cgroup/cgroup.controllers)
echo "micvm: kernel $(uname -r), v2 controllers: $ctl; v1 memory: ${v1:-refused}"
case "$v1 $ctl" in
    *mounted*) result host 1 ;;
    *memory*pids*) result host 0 ;;
    *) result host 1 ;;
esac

# micd in the root cgroup (no systemd, a container's root): the cards go to
# /micstack.<micd pid>/<card>
wanted placement-root && run placement-root "$SRC/tests/vm/v2_cgroup.sh"

# micd in a cgroup delegated to it, as systemd starts micd.service
# (Delegate=yes: the controllers enabled down to it, the service alone in it)
# (a fresh one per micd, as systemd's is per start of the service)
echo "+memory +pids +cpu" > /sys/fs/cgroup/cgroup.subtree_control
svc=/sys/fs/cgroup/micd.service
fresh() { [ -d $svc ] && find $svc -depth -type d -exec rmdir {} +; mkdir $svc; }
fresh
wanted placement-delegated && run placement-delegated "$SRC/tests/vm/v2_cgroup.sh" MIC_CGROUP=$svc
fresh
wanted limits && run limits "$SRC/tests/integration/limits.sh" MIC_CGROUP=$svc
off
