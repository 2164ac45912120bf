# virtio-fs: a host directory in the card.  micd starts Debian's virtiofsd
# on the directory of `fs = TAG:DIR` and is its vhost-user front end; the
# card's driver forwards its FUSE mount's requests (mount -t virtiofs TAG
# DIR).  Every change one side makes the other sees; 100 MiB cross both
# ways intact; virtiofsd killed -9 is restarted and the share works again
# in the same boot.  virtiofsd is the card's root on the host (a user
# namespace mapping the card's ids): what the card makes in the share is
# owned by the card's host uids, never by host root, and setuid or setgid
# executables cannot be made there.
. "$(dirname "$0")/lib.sh"
VIRTIOFSD=
for p in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd; do [ -x "$p" ] && VIRTIOFSD=$p && break; done
[ -n "$VIRTIOFSD" ] || { say "FAIL: virtiofsd missing (scripts/install-deps.sh)"; rm -rf "$RUNDIR"; exit 1; }
card_lsh() { card_ush "$1" sh -lc "$2"; }
dev_state() { micctl status "${1:-mic0}" --json | grep -o "\"type\":\"fs\",\"state\":\"[a-z]*\",\"reason\":\"[^\"]*\""; }
wait_dev() { # wait_dev STATE [REASON-PATTERN [CARD]]
    for _ in $(seq 1 200); do
        dev_state "${3:-mic0}" | grep -q "\"state\":\"$1\",\"reason\":\"${2:-}" && return 0; sleep 0.05
    done
    return 1
}
SHARE=$RUNDIR/share
VFSD_PAT="^$VIRTIOFSD .*source=$SHARE -o"
vfsd_pid() { pgrep -f "$VFSD_PAT" | head -1; }
map_base() { awk 'NR==1{print $1 == 0 ? $2 : "bad"}' "/proc/$1/uid_map" 2>/dev/null; }
mkdir -p "$SHARE"
# virtiofsd, as the card's root, must reach the share through the run dir
chmod 711 "$RUNDIR"
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
# virtiofsd is the card's root (a host uid of the card's range): a share
# it cannot reach is refused with the chown to run
mkdir -m 700 "$RUNDIR/closed"
check "config: directory closed to the card's root refused" refused "t:$RUNDIR/closed" "closed/*[^/]* is closed to the card's root.*chown"
mkdir -p "$RUNDIR/closedp/share"; chmod 700 "$RUNDIR/closedp"
check "config: directory with a parent closed to it refused" refused "t:$RUNDIR/closedp/share" "closedp is closed to the card's root"
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
check "micd started virtiofsd on the share" sh -c "[ -n \"\$(pgrep -f '$VFSD_PAT')\" ]"
# virtiofsd runs as root of a user namespace whose ids are a card's range
# on the host: host uid and gid BASE.., no capability outside it
B0=$(map_base "$(vfsd_pid)")
B1=$(map_base "$(pgrep -f "^$VIRTIOFSD .*source=$RUNDIR/share1 -o" | head -1)")
check "virtiofsd: uid map of a card's range, not host root (base $B0)" sh -c "[ '$B0' -gt 0 ] 2>/dev/null"
check "virtiofsd: gid map the same" [ "$(cat /proc/"$(vfsd_pid)"/gid_map)" = "$(cat /proc/"$(vfsd_pid)"/uid_map)" ]
check "virtiofsd: host uid and gid are the card's root" sh -c "grep -q '^Uid:.$B0.$B0.$B0.$B0\$' /proc/$(vfsd_pid)/status && grep -q '^Gid:.$B0.$B0.$B0.$B0\$' /proc/$(vfsd_pid)/status"
check "virtiofsd: each card's in its own range" sh -c "[ '$B1' -gt 0 ] 2>/dev/null && [ '$B1' != '$B0' ]"
check "micd notes a share the card does not own" grep -q "mic0: fs: shared directory $SHARE is owned by host uid 0, not by the card's root" "$RUNDIR/micd.log"
# the admin gives each card its directory (README: chown to the card's root)
chown -R "$B0:$B0" "$SHARE"
chown "$B1:$B1" "$RUNDIR/share1"
micctl boot mic0 >/dev/null
micctl wait mic0 online --timeout 20 >/dev/null
check "card's root is virtiofsd's: the same id map" [ "$(cat /proc/"$(card_os_pid mic0)"/uid_map)" = "$(cat /proc/"$(vfsd_pid)"/uid_map)" ]
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
check "the card's file is owned by the card's root on the host ($B0), not 0" [ "$(stat -c %u:%g "$SHARE/fromcard")" = "$B0:$B0" ]
card_ush mic0 touch /mnt/fromuser
card_ush mic0 chown 1000:1000 /mnt/fromuser
check "card's chown to its uid 1000: host uid $((B0 + 1000))" [ "$(stat -c %u:%g "$SHARE/fromuser")" = "$((B0 + 1000)):$((B0 + 1000))" ]
# setuid: the card's chmod u+s and chown 0 give a setuid file of the
# card's root at most, never one of host root
echo "host root's" > "$SHARE/hostonly"
cp /bin/true "$SHARE/suid"; chown "$B0:$B0" "$SHARE/suid"
card_ush mic0 chown 0:0 /mnt/suid
card_ush mic0 chmod 4755 /mnt/suid
check "card's chmod u+s, chown 0: no setuid file of host root" sh -c "[ \"\$(stat -c %u '$SHARE/suid')\" = $B0 ] && [ -z \"\$(find '$SHARE' -user 0 -perm -4000)\" ]"
# nor one of the card's root: a host user running it would become the
# card's uid (fs_filter.c under virtiofsd); plain modes and the sticky bit
# still work
cp /bin/true "$SHARE/exe"; chown "$B0:$B0" "$SHARE/exe"; chmod 755 "$SHARE/exe"
fails() { ! "$@" 2>/dev/null; }
no_priv_bits() { [ -z "$(find "$SHARE" -perm /6000)" ]; }
check "card: chmod u+s of a share file refused" fails card_ush mic0 chmod u+s /mnt/exe
check "card: chmod 4755 refused" fails card_ush mic0 chmod 4755 /mnt/exe
check "card: chmod 2755 (setgid executable) refused" fails card_ush mic0 chmod 2755 /mnt/exe
# a file made with the bits (busybox cp -p: open(O_CREAT, 04755), chmod)
card_lsh mic0 "cp /bin/busybox /tmp/su && chmod 4755 /tmp/su"
check "card: a setuid file in its own /tmp (the source)" [ "$(card_ush mic0 stat -c %a /tmp/su)" = 4755 ]
card_ush mic0 cp -p /tmp/su /mnt/copied 2>/dev/null
check "card: cp -p of it into the share leaves no setuid file" no_priv_bits
check "no setuid or setgid file or directory in the share" no_priv_bits
card_ush mic0 chmod 700 /mnt/exe
check "card: chmod 700 works" [ "$(stat -c %a "$SHARE/exe")" = 700 ]
card_ush mic0 chmod 644 /mnt/exe
check "card: chmod 644 works" [ "$(stat -c %a "$SHARE/exe")" = 644 ]
card_ush mic0 mkdir /mnt/sticky && card_ush mic0 chmod 1777 /mnt/sticky
check "card: chmod 1777 of a directory works" [ "$(stat -c %a "$SHARE/sticky")" = 1777 ]
rm -rf "$SHARE/exe" "$SHARE/copied" "$SHARE/sticky"
card_ush mic0 chown 0:0 /mnt/hostonly 2>/dev/null
card_ush mic0 chmod 4755 /mnt/hostonly 2>/dev/null
card_lsh mic0 "echo card >> /mnt/hostonly" 2>/dev/null
check "card's chown, chmod u+s, write of host root's file refused" sh -c "[ \"\$(stat -c %u:%a '$SHARE/hostonly')\" = 0:644 ] && [ \"\$(cat '$SHARE/hostonly')\" = \"host root's\" ]"
check "card reads host root's file (others may)" [ "$(card_ush mic0 cat /mnt/hostonly)" = "host root's" ]
check "card sees host root's file as nobody's" [ "$(card_ush mic0 stat -c %u /mnt/hostonly)" = 65534 ]
rm -f "$SHARE/suid" "$SHARE/fromuser" "$SHARE/hostonly"
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
    for p in $(pgrep -f "$VFSD_PAT"); do
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
t0=$(mono_ms)
got=$(card_ush mic0 md5sum /mnt/h100 | cut -c1-32)
ms=$(($(mono_ms) - t0))
check "100 MiB host -> card, same md5 ($ms ms)" [ "$got" = "$want" ]
t0=$(mono_ms)
card_ush mic0 dd if=/mnt/h100 of=/mnt/c100 bs=1M 2>/dev/null
ms=$(($(mono_ms) - t0))
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
t0=$(mono_ms)
check "status: fs broken, backend gone" wait_dev broken 'vhost-user backend gone'
say "virtiofsd death seen after $(($(mono_ms) - t0)) ms"
check "card still online" [ "$(state_of mic0)" = online ]
for _ in $(seq 1 200); do new=$(vfsd_pid); [ -n "$new" ] && [ "$new" != "$old" ] && break; sleep 0.05; done
check "micd restarted virtiofsd" [ -n "$new" ] && [ "$new" != "$old" ]
check "the new virtiofsd: the card's range again" [ "$(map_base "$new")" = "$B0" ]
check "status: fs ready again" wait_dev ready
for _ in $(seq 1 100); do micctl log mic0 | grep -q 'virtio-fs hostshare: mounted on /mnt' && [ "$(micctl log mic0 | grep -c 'virtio-fs hostshare: mounted on /mnt')" -ge 2 ] && break; sleep 0.05; done
check "card's driver reset the device and mounted the share again" sh -c "micctl log mic0 | grep -q 'virtio-fs hostshare: device reset'"
echo "after the restart" > "$SHARE/after"
check "card reads the share again, no reboot" [ "$(card_ush mic0 cat /mnt/after 2>/dev/null)" = "after the restart" ]
card_lsh mic0 "echo 'card after restart' > /mnt/c-after"
check "host sees the card's write after the restart" [ "$(cat "$SHARE/c-after" 2>/dev/null)" = "card after restart" ]
check "owned by the card's root" [ "$(stat -c %u "$SHARE/c-after")" = "$B0" ]
check "still the same boot" [ "$(state_of mic0)" = online ]

check "card unmounts the share" card_lsh mic0 "umount /mnt"
check "card: the share is gone from /mnt" sh -c "! nsenter -t $(card_os_pid mic0) -U -m -p -- /bin/busybox test -e /mnt/after"
check "mount -o: ro, noexec, noatime reach the mount, rw wins over -r, others refused" card_lsh mic0 "mount -t virtiofs -o defaults,ro,noexec,noatime hostshare /mnt && grep -q '^hostshare /mnt fuse.virtiofs ro,.*noexec.*noatime' /proc/mounts && umount /mnt && ! mount -t virtiofs -o loop hostshare /mnt 2>/dev/null && mount -r -t virtiofs -o rw hostshare /mnt && grep -q '^hostshare /mnt fuse.virtiofs rw' /proc/mounts && umount /mnt"
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
# micd does not move a vhost-user device's data, so it shows no counters of its own for it
check "stats: the share's traffic is its backend's to count" sh -c "micctl stats mic0 | grep -q '^  fs .*served by a vhost-user backend' && micctl stats mic0 --json | grep -q '\"type\":\"fs\",\"backend\":\"vhost-user\"}'"
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
