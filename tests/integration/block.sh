# virtio-block end to end: a host image file is the card's /dev/vda, which
# the card reads, writes and mounts; the host checks the file afterwards.
. "$(dirname "$0")/lib.sh"
for t in mkfs.ext4 debugfs e2fsck nsenter; do
    command -v $t >/dev/null || { say "SKIP: $t missing"; rm -rf "$RUNDIR"; exit 0; }
done
IMG=$RUNDIR/disk.img
RO=$RUNDIR/ro.img
# The card's FUSE mounts (the disk, fuse2fs) answer only processes of the
# card's user namespace: enter it.  card_ush C ARGS: busybox ARGS in card C,
# in its PID namespace too, as the console's shell is (a fuse2fs it starts
# dies with the card).  card_lsh C CMD: a login shell, whose /etc/profile
# routes mount and umount to the card's front end (fuse2fs for the disk).
card_lsh() { card_ush "$1" sh -lc "$2"; }
# The fuse2fs processes serving mounts in a card's mount namespace.
card_fuse2fs() {
    local ns; ns=$(readlink "/proc/$(card_os_pid "$1")/ns/mnt")
    for p in $(pgrep -x fuse2fs); do [ "$(readlink /proc/$p/ns/mnt)" = "$ns" ] && echo $p; done
}
gone() { [ -n "$*" ] || return 1; for _ in $(seq 1 50); do kill -0 $* 2>/dev/null || return 0; sleep 0.1; done; return 1; }

# 64 MiB image: a known pattern at 0 and at 1 MiB, written by the host
truncate -s 64M "$IMG"
head -c 65536 /dev/urandom > "$RUNDIR/pat0"
head -c 4096 /dev/urandom > "$RUNDIR/pat1"
dd if="$RUNDIR/pat0" of="$IMG" conv=notrunc status=none
dd if="$RUNDIR/pat1" of="$IMG" bs=1M seek=1 conv=notrunc status=none
truncate -s 8M "$RO"
mkfs.ext4 -F -q "$RO"
# (the first KiB of an ext4 image is free for this)
printf 'read-only-disk' | dd of="$RO" conv=notrunc status=none
cat > "$RUNDIR/micd.conf" <<EOF
[mic0]
disk = $IMG
cmdline = mic.blk_selftest
[mic1]
disk = $RO
disk_readonly = yes
EOF
start_micd --config "$RUNDIR/micd.conf"
micctl wait mic0 ready --timeout 3 >/dev/null
micctl wait mic1 ready --timeout 3 >/dev/null

wait_vda() {
    for _ in $(seq 1 100); do card_ush "$1" test -s /dev/vda 2>/dev/null && return 0; sleep 0.05; done
    return 1
}

# (1) raw reads and writes
micctl boot mic0 >/dev/null
check "card has /dev/vda" wait_vda mic0
check "the disk is a file (no loop or block device)" card_ush mic0 sh -c 'test -f /dev/vda && ! test -b /dev/vda && ! ls /dev/loop* 2>/dev/null'
check "card log names the disk" sh -c "micctl log mic0 | grep -q 'virtio-block: /dev/vda (file'"
card_ush mic0 dd if=/dev/vda bs=4096 count=16 2>/dev/null > "$RUNDIR/got0"
check "card reads the host's pattern at 0" cmp -s "$RUNDIR/pat0" "$RUNDIR/got0"
card_ush mic0 dd if=/dev/vda bs=4096 skip=256 count=1 2>/dev/null > "$RUNDIR/got1"
check "card reads the host's pattern at 1 MiB" cmp -s "$RUNDIR/pat1" "$RUNDIR/got1"
head -c 3145728 /dev/urandom > "$RUNDIR/pat2"
# "DMA_BYTES WRITE_BYTES" of mic0's disk, from micctl stats
blk_counts() {
    micctl stats mic0 --json | python3 -c 'import json, sys
c = json.load(sys.stdin)["cards"][0]
print(sum(x["bytes"] for x in c["dma"] if x["user"] == "block"),
      sum(x["write_bytes"] for x in c["devices"] if x["type"] == "block"))'
}
set -- $(blk_counts)
card_ush mic0 dd of=/dev/vda bs=1M seek=5 conv=fsync < "$RUNDIR/pat2" 2>/dev/null
check "card writes 3 MiB at 5 MiB" [ $? -eq 0 ]
# without disk_dma, large writes go to the file straight from card memory
set -- "$@" $(blk_counts)
check "the 3 MiB were written from card memory, not by DMA ($*)" \
    sh -c "[ $3 -eq $1 ] && [ $(($4 - $2)) -ge 3145728 ]"
card_ush mic0 dd of=/dev/vda bs=512 seek=20481 count=1 conv=fsync 2>/dev/null <<< "sector-20481"
card_ush mic0 dd if=/dev/vda bs=1M skip=5 count=3 iflag=direct 2>/dev/null > "$RUNDIR/got2"
check "card reads back what it wrote (direct I/O)" cmp -s "$RUNDIR/pat2" "$RUNDIR/got2"

# (5) hostile requests: IOERR / UNSUPP, file untouched beyond its size
check "hostile requests answered with IOERR/UNSUPP" sh -c "micctl log mic0 | grep -q 'virtio-block selftest: 6/6 as expected'"
check "GET_ID answers the card's serial" sh -c "micctl log mic0 | grep -q \"selftest: id 'micstack-mic0'\""
check "image size unchanged" [ "$(stat -c %s "$IMG")" -eq 67108864 ]
check "block device not broken" sh -c "micctl status mic0 --json | grep -q '\"type\":\"block\",\"state\":\"ready\"'"

micctl shutdown mic0 >/dev/null
check "card synced and detached its disk on shutdown" sh -c "micctl log mic0 | grep -q 'disk synced, unmounted'"
# the card gave back all its card memory: console, net and block buffers and
# request slots (the console's used to stay allocated)
check "card memory all freed at removal" sh -c "micctl log mic0 | grep -q 'card: halted' && ! micctl log mic0 | grep -q 'cma: .* bytes in use'"
check "host file has the card's 3 MiB byte for byte" sh -c "dd if='$IMG' bs=1M skip=5 count=3 status=none | cmp -s - '$RUNDIR/pat2'"
check "host file has the card's sector write" sh -c "dd if='$IMG' bs=512 skip=20481 count=1 status=none | head -c 12 | grep -q sector-20481"
check "host pattern at 0 intact" sh -c "head -c 65536 '$IMG' | cmp -s - '$RUNDIR/pat0'"

# (2) filesystem: ext4 made on the host, mounted and written on the card
mkfs.ext4 -F -q "$IMG"
echo "written by the host" > "$RUNDIR/hostfile"
debugfs -w -R "write $RUNDIR/hostfile hostfile" "$IMG" >/dev/null 2>&1
head -c 1048576 /dev/urandom > "$RUNDIR/newfile"
micctl boot mic0 >/dev/null
wait_vda mic0
check "card mounts /dev/vda on /mnt" card_lsh mic0 "mount -t ext4 /dev/vda /mnt"
check "the mount is fuse2fs's, in the card" card_ush mic0 grep -q '^/dev/vda /mnt fuse.ext4 ' /proc/mounts
f2fs=$(card_fuse2fs mic0)
check "card reads the host's file" [ "$(card_ush mic0 cat /mnt/hostfile)" = 'written by the host' ]
# conv=fsync, not sync(1): a global sync would also wait for every other
# filesystem on this host
card_ush mic0 dd of=/mnt/newfile bs=64K conv=fsync 2>/dev/null < "$RUNDIR/newfile"
check "card sees its new file" [ "$(card_ush mic0 md5sum /mnt/newfile | cut -c1-32)" = "$(md5sum < "$RUNDIR/newfile" | cut -c1-32)" ]
micctl shutdown mic0 >/dev/null
check "shutdown unmounted the card's mount" sh -c "micctl log mic0 | tail -8 | grep -q 'disk synced, unmounted'"
check "the card's fuse2fs exited" gone $f2fs
debugfs -R "cat /newfile" "$IMG" 2>/dev/null > "$RUNDIR/newfile.got"
check "host reads the card's new file (debugfs)" cmp -s "$RUNDIR/newfile" "$RUNDIR/newfile.got"
check "e2fsck -fn passes" e2fsck -fn "$IMG"

# (3) read-only disk
micctl boot mic1 >/dev/null
# online means the card's devices are up: the disk is there at once, and
# the host's status says so (no waiting for a device thread's next look;
# mic1 runs no self-test that would wake it)
st=$(micctl status mic1)
online_ready() { echo "$st" | grep -q 'block ready' && card_ush mic1 test -e /dev/vda; }
check "online means the disk is ready ($st)" online_ready
check "read-only card has /dev/vda" wait_vda mic1
check "read-only disk reads" [ "$(card_ush mic1 dd if=/dev/vda bs=14 count=1 2>/dev/null)" = read-only-disk ]
md5_ro=$(md5sum < "$RO")
card_ush mic1 dd of=/dev/vda bs=512 count=1 conv=fsync < /dev/zero 2>/dev/null
check "read-only disk refuses writes" [ $? -ne 0 ]
check "read-only card log says so" sh -c "micctl log mic1 | grep -q 'read-only'"
check "read-only disk mounts read-only" card_lsh mic1 "mkdir -p /ro && mount /dev/vda /ro 2>&1 | grep -q write-protected && grep -q '^/dev/vda /ro fuse.ext4 ro' /proc/mounts"
check "read-only mount refuses writes" card_lsh mic1 "! touch /ro/x 2>/dev/null"
micctl shutdown mic1 >/dev/null
check "read-only image unchanged" [ "$(md5sum < "$RO")" = "$md5_ro" ]

# (4) reboot cycles: the device comes back every time, data persists.  The
# forced reset happens while the disk is attached but not mounted: a reset
# with a mounted rw filesystem is a known limitation (see README, "Disk").
for i in 1 2 3; do
    micctl boot mic0 >/dev/null
    wait_vda mic0 || { fail "cycle $i: no /dev/vda"; break; }
    if [ $i -eq 2 ]; then micctl reset mic0 >/dev/null; micctl wait mic0 ready --timeout 5 >/dev/null; continue; fi
    card_lsh mic0 "mount /dev/vda /mnt" && card_ush mic0 sh -c "echo cycle-$i >> /mnt/cycles"
    micctl shutdown mic0 >/dev/null
done
check "reboot cycles kept the device and the data" sh -c "debugfs -R 'cat /cycles' '$IMG' 2>/dev/null | tr '\n' ' ' | grep -q 'cycle-1 .*cycle-3'"
check "e2fsck after cycles (one forced reset) is clean" e2fsck -fn "$IMG"
# (6) a forced reset while a read-write filesystem is mounted and being
# written: like a power loss, it must not hang anything, and the disk must
# be usable again after the next boot (the journal recovers it).
micctl boot mic0 >/dev/null
wait_vda mic0
card_lsh mic0 "mount /dev/vda /mnt"
card_ush mic0 sh -c "dd if=/dev/zero of=/mnt/crash bs=1M count=8 2>/dev/null"
old_os=$(card_os_pid mic0)
f2fs=$(card_fuse2fs mic0)
check "reset with the disk mounted returns promptly" timeout 20 micctl reset mic0
check "every process of the old card OS is gone" sh -c "! kill -0 $old_os 2>/dev/null"
check "its fuse2fs too" gone $f2fs
micctl boot mic0 >/dev/null
check "disk back after the forced reset" wait_vda mic0
check "filesystem mounts again after the forced reset (e2fsck -p first)" card_lsh mic0 "mount /dev/vda /mnt"
f2fs=$(card_fuse2fs mic0)
check "umount unmounts and waits for fuse2fs to flush and exit" card_lsh mic0 "umount /mnt && ! grep -q ' /mnt ' /proc/mounts"
check "fuse2fs gone after umount" sh -c "[ -n '$f2fs' ] && ! kill -0 $f2fs 2>/dev/null"
check "mount -o: ro and rw, the last wins over -r, defaults ignored" card_lsh mic0 "mount -o defaults,ro /dev/vda /mnt && grep -q '^/dev/vda /mnt fuse.ext4 ro' /proc/mounts && umount /mnt && mount -r -o ro,rw /dev/vda /mnt && grep -q '^/dev/vda /mnt fuse.ext4 rw' /proc/mounts && umount /mnt"
micctl shutdown mic0 >/dev/null
check "daemon responsive" micctl status

# (6b) a card process still writing to the mounted filesystem, its shell
# sitting in it, at shutdown: the card OS stops its processes first, so the
# unmount is a real one (not lazy) and the filesystem is clean
micctl boot mic0 >/dev/null
wait_vda mic0
micctl console mic0 --linger 0.5 <<< 'mount /dev/vda /mnt && cd /mnt && (while :; do echo busy >> /mnt/busy; done) &' >/dev/null
sleep 0.5
busy_seen() { debugfs -R 'stat /busy' "$IMG" >/dev/null 2>&1 || card_ush mic0 test -s /mnt/busy; }
check "a writer is busy on the card's mount" busy_seen
micctl shutdown mic0 >/dev/null
check "busy mount: writers stopped, disk synced and unmounted (not lazily)" sh -c "micctl log mic0 | tail -8 | grep -q 'disk synced, unmounted'"
check "filesystem clean after a shutdown with a writer" e2fsck -fn "$IMG"

# (6c) the card makes its own filesystem on /dev/vda, mounts and fills it
micctl boot mic0 >/dev/null
wait_vda mic0
check "card runs mkfs.ext4 /dev/vda" card_lsh mic0 "mkfs.ext4 -q -F -L cardmade /dev/vda"
check "card's e2fsck is clean on it" card_lsh mic0 "e2fsck -fn /dev/vda >/dev/null 2>&1"
card_lsh mic0 "mount /dev/vda /mnt && echo card-made > /mnt/own && umount /mnt"
check "card mounts its own filesystem again" card_lsh mic0 "mount /dev/vda /mnt && grep -q card-made /mnt/own"
micctl shutdown mic0 >/dev/null
check "host sees the card's filesystem and file" sh -c "debugfs -R 'cat /own' '$IMG' 2>/dev/null | grep -q card-made && dumpe2fs -h '$IMG' 2>/dev/null | grep -q 'volume name:.*cardmade'"
check "host e2fsck clean on the card's filesystem" e2fsck -fn "$IMG"
micctl boot mic0 >/dev/null
wait_vda mic0
check "busybox mke2fs works on /dev/vda too" card_ush mic0 mke2fs -F -q /dev/vda
micctl shutdown mic0 >/dev/null
check "host e2fsck clean on busybox's filesystem" e2fsck -fn "$IMG"

# (7) stopping micd (SIGTERM) shuts the card down cleanly first: data the
# card wrote but never synced reaches the host file
micctl boot mic0 >/dev/null
wait_vda mic0
card_lsh mic0 "mount /dev/vda /mnt"
head -c 300000 /dev/urandom > "$RUNDIR/unsynced"
card_ush mic0 dd of=/mnt/unsynced bs=4096 < "$RUNDIR/unsynced" 2>/dev/null
stop_micd
check "micd's stop flushed the card's unsynced file to the host" sh -c "debugfs -R 'cat /unsynced' '$IMG' 2>/dev/null | cmp -s - '$RUNDIR/unsynced'"
check "filesystem clean after micd's stop" e2fsck -fn "$IMG"
finish
