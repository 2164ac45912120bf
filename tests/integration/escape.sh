# Escape routes out of a card OS: tests/escape/probe.c, run as root in card
# mic0 through its console shell (a process of the card, under everything
# the card runs under), tries each route without harm; mic1 is the other card whose
# disk, loop device, FUSE connection and processes it must not reach.
# Passes when every route is closed.
. "$(dirname "$0")/lib.sh"
for t in mkfs.ext4 nsenter mountpoint; do
    command -v $t >/dev/null || { say "SKIP: $t missing"; rm -rf "$RUNDIR"; exit 0; }
done
ESCIMG=$BIN/../images/escape.img
[ -f "$ESCIMG" ] || { say "FAIL: $ESCIMG not built"; rm -rf "$RUNDIR"; exit 1; }

truncate -s 16M "$RUNDIR/mic0.img" "$RUNDIR/mic1-escape-target.img"
mkfs.ext4 -F -q "$RUNDIR/mic1-escape-target.img"
cat > "$RUNDIR/micd.conf" <<CONF
[mic0]
image = $ESCIMG
disk = $RUNDIR/mic0.img
[mic1]
disk = $RUNDIR/mic1-escape-target.img
CONF
start_micd --config "$RUNDIR/micd.conf"
micctl wait mic0 ready --timeout 5 >/dev/null
micctl wait mic1 ready --timeout 5 >/dev/null
check "mic0 boots the probe image" micctl boot mic0
check "mic1 boots" micctl boot mic1

# mic1's disk in use: its FUSE file served, mounted when the card can
for _ in $(seq 1 100); do card_sh mic1 test -b /dev/vda 2>/dev/null && break; sleep 0.05; done
card_sh mic1 mount -t ext4 /dev/vda /mnt 2>/dev/null
peer=(--peer mic1 --peer-disk "$RUNDIR/mic1-escape-target.img")
loop=$(micctl log mic1 | sed -nE 's/.*virtio-block: \/dev\/vda \(loop([0-9]+).*/\1/p' | tail -1)
[ -n "$loop" ] && peer+=(--peer-loop "$loop")
fuse=$(card_sh mic1 cat /proc/1/mountinfo 2>/dev/null | awk '/ - fuse/ {split($3, d, ":"); print d[2]; exit}')
[ -n "$fuse" ] && peer+=(--peer-fuse "$fuse")
host=(--host-hostname "$(hostname)" --host-dev "$(mountpoint -d /)")
kr=$("$BIN/mic-escape-probe" --user-keyring 2>/dev/null)
[ -n "$kr" ] && [ "$kr" -ge 0 ] 2>/dev/null && host+=(--host-keyring "$kr")
say "peer: ${peer[*]}; host: ${host[*]}"

# report NAME FILE: one check per route, failing on each open one
report() {
    local how=$1 out=$2
    if ! grep -q '^ESCAPE-PROBE open=' "$out"; then
        fail "$how: the probe did not finish"; sed 's/^/    /' "$out"; return
    fi
    grep '^INFO' "$out" | sed "s/^/[$T_NAME] $how: /"
    while read -r _ name state detail; do
        if [ "$state" = closed ]; then ok "$how: $name closed ($detail)"; else fail "$how: route $name OPEN: $detail"; fi
    done < <(grep '^ROUTE ' "$out")
    local sum
    sum=$(grep '^ESCAPE-PROBE open=' "$out")
    say "$how: $sum"
    check "$how: no route open" grep -q '^ESCAPE-PROBE open=0 ' "$out"
}

# (1) from the card's console shell: a child of the card's init
micctl console mic0 --linger 5 <<< "/bin/escape-probe ${peer[*]} ${host[*]} 2>&1; echo PROBE-EXIT-\$?" \
    | tr -d '\r' > "$RUNDIR/console.out"
report console "$RUNDIR/console.out"

# card_sh is not a second route: it is the host's root entering the card's
# mount namespace (a test tool), not a process of the card.  What a card can
# reach is measured from the card's own processes, above.

# no harm done: nothing of the probe left mounted or made
check "nothing left mounted by the probe" sh -c "! nsenter -t $(card_os_pid mic0) -m -- /bin/busybox cat /proc/1/mountinfo | grep -q escape-probe"
check "no probe scratch left in the card" sh -c "! nsenter -t $(card_os_pid mic0) -m -- /bin/busybox ls -d /tmp/escape-probe.* /dev/escape-probe.* 2>/dev/null | grep -q ."
check "no probe mount reached the host" sh -c "! grep -q escape-probe /proc/self/mountinfo"
check "mic1 still online" [ "$(state_of mic1)" = online ]
check "mic0 still online" [ "$(state_of mic0)" = online ]
micctl shutdown mic0 >/dev/null
micctl shutdown mic1 >/dev/null
finish
