# virtio-fs: a host directory in the card.  micd starts Debian's virtiofsd
# on the directory of `fs = TAG:DIR` and is its vhost-user front end; the
# card's driver forwards its FUSE mount's requests (mount -t virtiofs TAG
# DIR).  Every change one side makes the other sees; 100 MiB cross both
# ways intact; virtiofsd killed -9 is restarted and the share works again
# in the same boot.
. "$(dirname "$0")/lib.sh"
VIRTIOFSD=
for p in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd; do [ -x "$p" ] && VIRTIOFSD=$p && break; done
[ -n "$VIRTIOFSD" ] || { say "FAIL: virtiofsd missing (scripts/install-deps.sh)"; rm -rf "$RUNDIR"; exit 1; }
card_ush() { local c=$1; shift; nsenter -t "$(card_os_pid "$c")" -U -m -p -- /bin/busybox "$@"; }
card_lsh() { card_ush "$1" sh -lc "$2"; }
dev_state() { micctl status "${1:-mic0}" --json | grep -o "\"type\":\"fs\",\"state\":\"[a-z]*\",\"reason\":\"[^\"]*\""; }
wait_dev() { # wait_dev STATE [REASON-PATTERN [CARD]]
    for _ in $(seq 1 200); do
        dev_state "${3:-mic0}" | grep -q "\"state\":\"$1\",\"reason\":\"${2:-}" && return 0; sleep 0.05
    done
    return 1
}
vfsd_pid() { pgrep -f "^$VIRTIOFSD .*--socket-path=$RUNDIR/mic0-" | head -1; }
SHARE=$RUNDIR/share
mkdir -p "$SHARE"
# refused at start: a tag that could name a path, a relative directory, a
# comma (virtiofsd's option separator), a directory that does not exist
refused() { # refused CONF-VALUE MESSAGE
    printf '[mic0]\nfs = %s\n' "$1" > "$RUNDIR/bad.conf"
    timeout 10 unshare --net "$BIN/micd" --rundir "$RUNDIR/bad" --config "$RUNDIR/bad.conf" > "$RUNDIR/bad.log" 2>&1 && return 1
    grep -q "$2" "$RUNDIR/bad.log"
}
check "config: tag '../x' refused" refused "../x:$SHARE" "bad value"
check "config: tag with a slash refused" refused "a/b:$SHARE" "bad value"
check "config: relative directory refused" refused "t:share" "bad value"
check "config: directory with a comma refused" refused "t:$SHARE,x" "bad value"
check "config: missing directory refused" refused "t:$RUNDIR/nonexistent" "shared directory .*No such file"
echo "made on the host" > "$SHARE/hello.txt"
# mic1: a hostile card OS that writes FUSE requests into its own share's
# queue (tests/hostile: fsraw)
"$BIN/mic-mkimage" --default --runtime "$BIN/mic-hostile-card" -o "$RUNDIR/hostile.img" >/dev/null
mkdir -p "$RUNDIR/share1"
truncate -s 16M "$RUNDIR/disk.img"
cat > "$RUNDIR/micd.conf" <<EOF
[mic0]
fs = hostshare:$SHARE
disk = $RUNDIR/disk.img
[mic1]
image = $RUNDIR/hostile.img
cmdline = mic.hostile=fsraw
fs = h1:$RUNDIR/share1
EOF
start_micd --config "$RUNDIR/micd.conf"
micctl wait mic0 ready --timeout 5 >/dev/null
check "micd started virtiofsd on the share" sh -c "[ -n \"\$(pgrep -f '^$VIRTIOFSD .*-o source=$SHARE')\" ]"
micctl boot mic0 >/dev/null
micctl wait mic0 online --timeout 20 >/dev/null
check "card found the device and its tag" sh -c "micctl log mic0 | grep -q 'probe virtio-fs: tag hostshare'"
check "status: fs ready" wait_dev ready
# four devices (console, net, disk, share): the card's driver memory holds all
check "card: its disk probed beside the share" sh -c "micctl log mic0 | grep -q 'probe virtio-block: 32768 sectors'"

# (1) mount, and each change seen on the other side
check "card mounts the share (mount -t virtiofs)" card_lsh mic0 "mount -t virtiofs hostshare /mnt"
check "card: mount table shows it" sh -c "card_ush() { nsenter -t $(card_os_pid mic0) -U -m -p -- /bin/busybox \"\$@\"; }; card_ush cat /proc/mounts | grep -q '^hostshare /mnt fuse.virtiofs'"
check "card: ls sees the host's file" sh -c "[ \"\$(nsenter -t $(card_os_pid mic0) -U -m -p -- /bin/busybox ls /mnt)\" = hello.txt ]"
check "card: cat reads it" [ "$(card_ush mic0 cat /mnt/hello.txt)" = "made on the host" ]
card_lsh mic0 "echo 'written in the card' > /mnt/fromcard"
check "host sees a file the card wrote" [ "$(cat "$SHARE/fromcard" 2>/dev/null)" = "written in the card" ]
card_lsh mic0 "echo 'appended' >> /mnt/hello.txt"
check "host sees the card's append" [ "$(tail -1 "$SHARE/hello.txt")" = appended ]
card_ush mic0 mv /mnt/fromcard /mnt/moved
check "host sees mv" sh -c "[ ! -e '$SHARE/fromcard' ] && [ \"\$(cat '$SHARE/moved')\" = 'written in the card' ]"
card_ush mic0 mkdir /mnt/dir
check "host sees mkdir" [ -d "$SHARE/dir" ]
card_ush mic0 ln -s moved /mnt/dir/link
check "host sees ln -s" [ "$(readlink "$SHARE/dir/link")" = moved ]
card_ush mic0 rm /mnt/moved
check "host sees rm" [ ! -e "$SHARE/moved" ]
echo "changed on the host" > "$SHARE/dir/hostnew"
check "card sees a file the host made later" [ "$(card_ush mic0 cat /mnt/dir/hostnew)" = "changed on the host" ]
card_ush mic0 rmdir /mnt/dir 2>/dev/null
check "rmdir of a non-empty directory fails in the card" [ -d "$SHARE/dir" ]

# virtiofsd serves without CAP_MKNOD (27) and CAP_SETFCAP (31), keeping
# CAP_CHOWN (0): a card writing raw FUSE requests makes no device node and
# sets no file capability in the host directory
serving_caps_ok() {
    local p eff
    for p in $(pgrep -f "^$VIRTIOFSD .*--socket-path=$RUNDIR/mic0-"); do
        eff=$(awk '/^CapEff/{print $2}' /proc/$p/status 2>/dev/null)
        [ -n "$eff" ] || continue
        [ $((0x$eff & 1)) = 1 ] && [ $((0x$eff >> 27 & 1)) = 0 ] && [ $((0x$eff >> 31 & 1)) = 0 ] && return 0
    done
    return 1
}
check "virtiofsd serves without CAP_MKNOD and CAP_SETFCAP" serving_caps_ok

# (2) 100 MiB each way, checksums equal
head -c $((100 << 20)) /dev/urandom > "$SHARE/h100"
want=$(md5sum < "$SHARE/h100" | cut -c1-32)
t0=$(date +%s%N)
got=$(card_ush mic0 md5sum /mnt/h100 | cut -c1-32)
ms=$((($(date +%s%N) - t0) / 1000000))
check "100 MiB host -> card, same md5 ($ms ms)" [ "$got" = "$want" ]
t0=$(date +%s%N)
card_ush mic0 dd if=/mnt/h100 of=/mnt/c100 bs=1M 2>/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
check "100 MiB card -> host (dd in the card, $ms ms), same md5" [ "$(md5sum < "$SHARE/c100" | cut -c1-32)" = "$want" ]
rm -f "$SHARE/h100" "$SHARE/c100"
# cache=auto: the card may trust what it looked up for a second
gone_in_card() {
    for _ in $(seq 1 60); do card_ush mic0 test -e /mnt/h100 || return 0; sleep 0.05; done
    return 1
}
check "card sees the host's rm (within the cache's second)" gone_in_card

# (3) a second mount of the same share is refused, an unknown tag too
check "second mount of the share refused" sh -c "! nsenter -t $(card_os_pid mic0) -U -m -p -- /bin/busybox sh -lc 'mkdir -p /m2 && mount -t virtiofs hostshare /m2' 2>/dev/null"
check "unknown tag refused" sh -c "! nsenter -t $(card_os_pid mic0) -U -m -p -- /bin/busybox sh -lc 'mount -t virtiofs nosuch /m2' 2>/dev/null"

# (3b) the hostile card: its MKNOD of a block device is refused by
# virtiofsd (no CAP_MKNOD), its malformed request kills its own virtiofsd;
# only its share breaks, micd restarts that virtiofsd, mic0's share goes on
micctl boot mic1 >/dev/null
for _ in $(seq 1 200); do grep -q 'fs request of 8 bytes sent' "$RUNDIR/micd.log" && break; sleep 0.05; done
check "hostile: the card sent its own FUSE requests" grep -q 'fs INIT answered 0' "$RUNDIR/micd.log"
check "hostile: MKNOD of a block device refused (EPERM)" grep -q 'fs MKNOD of a block device answered -1$' "$RUNDIR/micd.log"
check "hostile: no device node in the host directory" [ -z "$(ls -A "$RUNDIR/share1")" ]
for _ in $(seq 1 100); do grep -q 'mic1: fs: vhost-user backend (pid [0-9]*) \(killed\|exited\)' "$RUNDIR/micd.log" && break; sleep 0.05; done
check "hostile: the malformed request ended mic1's virtiofsd" grep -q 'mic1: fs: vhost-user backend (pid [0-9]*) \(killed\|exited\)' "$RUNDIR/micd.log"
check "hostile: mic1's share broken" wait_dev broken 'vhost-user backend gone' mic1
for _ in $(seq 1 100); do grep -q 'mic1: fs: vhost-user backend .* is back' "$RUNDIR/micd.log" && break; sleep 0.05; done
check "hostile: micd restarted mic1's virtiofsd" grep -q 'mic1: fs: vhost-user backend .* is back' "$RUNDIR/micd.log"
echo "still here" > "$SHARE/still"
check "hostile: mic0's share still works" [ "$(card_ush mic0 cat /mnt/still 2>/dev/null)" = "still here" ]
check "hostile: mic0's share ready" wait_dev ready
check "hostile: micd answers" micctl status mic1
micctl reset mic1 >/dev/null

# (4) kill -9 of virtiofsd: seen at once, restarted, the card's driver
# resets the device and mounts the share again; same boot
old=$(vfsd_pid)
kill -KILL "$old"
t0=$(date +%s%N)
check "status: fs broken, backend gone" wait_dev broken 'vhost-user backend gone'
say "virtiofsd death seen after $((($(date +%s%N) - t0) / 1000000)) ms"
check "card still online" [ "$(state_of mic0)" = online ]
for _ in $(seq 1 200); do new=$(vfsd_pid); [ -n "$new" ] && [ "$new" != "$old" ] && break; sleep 0.05; done
check "micd restarted virtiofsd" [ -n "$new" ] && [ "$new" != "$old" ]
check "status: fs ready again" wait_dev ready
for _ in $(seq 1 100); do micctl log mic0 | grep -q 'virtio-fs hostshare: mounted on /mnt' && [ "$(micctl log mic0 | grep -c 'virtio-fs hostshare: mounted on /mnt')" -ge 2 ] && break; sleep 0.05; done
check "card's driver reset the device and mounted the share again" sh -c "micctl log mic0 | grep -q 'virtio-fs hostshare: device reset'"
echo "after the restart" > "$SHARE/after"
check "card reads the share again, no reboot" [ "$(card_ush mic0 cat /mnt/after 2>/dev/null)" = "after the restart" ]
card_lsh mic0 "echo 'card after restart' > /mnt/c-after"
check "host sees the card's write after the restart" [ "$(cat "$SHARE/c-after" 2>/dev/null)" = "card after restart" ]
check "still the same boot" [ "$(state_of mic0)" = online ]

check "card unmounts the share" card_lsh mic0 "umount /mnt"
check "card: the share is gone from /mnt" sh -c "! nsenter -t $(card_os_pid mic0) -U -m -p -- /bin/busybox test -e /mnt/after"
check "card mounts it again" card_lsh mic0 "mount -t virtiofs hostshare /mnt"
check "and reads" [ "$(card_ush mic0 cat /mnt/after 2>/dev/null)" = "after the restart" ]
micctl shutdown mic0 >/dev/null
check "card shut down cleanly" [ "$(state_of mic0)" = ready ]
# the next boot of the card: same virtiofsd (its rings stopped and started
# again, a new INIT from the new card OS), the share mounts and works
micctl boot mic0 >/dev/null
micctl wait mic0 online --timeout 20 >/dev/null
check "rebooted card mounts the share" card_lsh mic0 "mount -t virtiofs hostshare /mnt"
check "and reads it" [ "$(card_ush mic0 cat /mnt/after 2>/dev/null)" = "after the restart" ]
card_lsh mic0 "echo reboot > /mnt/rebooted"
check "and writes it" [ "$(cat "$SHARE/rebooted" 2>/dev/null)" = reboot ]
micctl reset mic0 >/dev/null
micctl wait mic0 ready --timeout 10 >/dev/null
micctl boot mic0 >/dev/null
micctl wait mic0 online --timeout 20 >/dev/null
check "after a reset the card mounts and reads the share" sh -c "nsenter -t $(card_os_pid mic0) -U -m -p -- /bin/busybox sh -lc 'mount -t virtiofs hostshare /mnt && cat /mnt/rebooted' | grep -qx reboot"
micctl shutdown mic0 >/dev/null
# micd stops virtiofsd with the device; virtiofsd's sandboxed child (its
# own PID namespace) follows its parent a moment later
kids=$(descendants "$MICD_PID")
check "virtiofsd runs below micd" [ -n "$(for p in $kids; do grep -l virtiofsd /proc/$p/cmdline 2>/dev/null; done)" ]
kill -TERM "$MICD_PID"; wait "$MICD_PID" 2>/dev/null; MICD_PID=
all_gone() {
    for _ in $(seq 1 60); do
        left=""; for p in $kids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
        [ -z "$left" ] && return 0; sleep 0.05
    done
    return 1
}
check "micd stopped: no card process and no virtiofsd left" all_gone
finish
