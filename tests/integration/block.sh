# virtio-block end to end: a host image file is the card's /dev/vda, which
# the card reads, writes and mounts; the host checks the file afterwards.
. "$(dirname "$0")/lib.sh"
for t in mkfs.ext4 debugfs e2fsck losetup nsenter; do
    command -v $t >/dev/null || { say "SKIP: $t missing"; rm -rf "$RUNDIR"; exit 0; }
done
IMG=$RUNDIR/disk.img
RO=$RUNDIR/ro.img
OURS="virtio-blk:mic0|virtio-blk:mic1|/run/virtio-blk/vda"
loops_before=$(losetup -a | grep -cE "$OURS")

# 64 MiB image: a known pattern at 0 and at 1 MiB, written by the host
truncate -s 64M "$IMG"
head -c 65536 /dev/urandom > "$RUNDIR/pat0"
head -c 4096 /dev/urandom > "$RUNDIR/pat1"
dd if="$RUNDIR/pat0" of="$IMG" conv=notrunc status=none
dd if="$RUNDIR/pat1" of="$IMG" bs=1M seek=1 conv=notrunc status=none
truncate -s 8M "$RO"
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
    for _ in $(seq 1 100); do card_sh "$1" test -b /dev/vda 2>/dev/null && return 0; sleep 0.05; done
    return 1
}

# (1) raw reads and writes
micctl boot mic0 >/dev/null
check "card has /dev/vda" wait_vda mic0
check "card log names the disk" sh -c "micctl log mic0 | grep -q 'virtio-block: /dev/vda (loop'"
card_sh mic0 dd if=/dev/vda bs=4096 count=16 2>/dev/null > "$RUNDIR/got0"
check "card reads the host's pattern at 0" cmp -s "$RUNDIR/pat0" "$RUNDIR/got0"
card_sh mic0 dd if=/dev/vda bs=4096 skip=256 count=1 2>/dev/null > "$RUNDIR/got1"
check "card reads the host's pattern at 1 MiB" cmp -s "$RUNDIR/pat1" "$RUNDIR/got1"
head -c 3145728 /dev/urandom > "$RUNDIR/pat2"
card_sh mic0 dd of=/dev/vda bs=1M seek=5 conv=fsync < "$RUNDIR/pat2" 2>/dev/null
check "card writes 3 MiB at 5 MiB" [ $? -eq 0 ]
card_sh mic0 dd of=/dev/vda bs=512 seek=20481 count=1 conv=fsync 2>/dev/null <<< "sector-20481"
card_sh mic0 dd if=/dev/vda bs=1M skip=5 count=3 iflag=direct 2>/dev/null > "$RUNDIR/got2"
check "card reads back what it wrote (direct I/O)" cmp -s "$RUNDIR/pat2" "$RUNDIR/got2"

# (5) hostile requests: IOERR / UNSUPP, file untouched beyond its size
check "hostile requests answered with IOERR/UNSUPP" sh -c "micctl log mic0 | grep -q 'virtio-block selftest: 6/6 as expected'"
check "GET_ID answers the card's serial" sh -c "micctl log mic0 | grep -q \"selftest: id 'micstack-mic0'\""
check "image size unchanged" [ "$(stat -c %s "$IMG")" -eq 67108864 ]
check "block device not broken" sh -c "micctl status mic0 --json | grep -q '\"type\":\"block\",\"state\":\"ready\"'"

micctl shutdown mic0 >/dev/null
check "card synced and detached its disk on shutdown" sh -c "micctl log mic0 | grep -q 'disk synced, unmounted, loop[0-9]* detached'"
check "host file has the card's 3 MiB byte for byte" sh -c "dd if='$IMG' bs=1M skip=5 count=3 status=none | cmp -s - '$RUNDIR/pat2'"
check "host file has the card's sector write" sh -c "dd if='$IMG' bs=512 skip=20481 count=1 status=none | head -c 12 | grep -q sector-20481"
check "host pattern at 0 intact" sh -c "head -c 65536 '$IMG' | cmp -s - '$RUNDIR/pat0'"
check "no loop device left after shutdown" [ "$(losetup -a | grep -cE "$OURS")" -eq "$loops_before" ]

# (2) filesystem: ext4 made on the host, mounted and written on the card
mkfs.ext4 -F -q "$IMG"
echo "written by the host" > "$RUNDIR/hostfile"
debugfs -w -R "write $RUNDIR/hostfile hostfile" "$IMG" >/dev/null 2>&1
head -c 1048576 /dev/urandom > "$RUNDIR/newfile"
micctl boot mic0 >/dev/null
wait_vda mic0
check "card mounts /dev/vda on /mnt" card_sh mic0 mount -t ext4 /dev/vda /mnt
check "card reads the host's file" sh -c "[ \"\$(nsenter -t $(card_os_pid mic0) -m -- /bin/busybox cat /mnt/hostfile)\" = 'written by the host' ]"
# conv=fsync, not sync(1): a global sync would also wait for every other
# filesystem on this host
card_sh mic0 dd of=/mnt/newfile bs=64K conv=fsync 2>/dev/null < "$RUNDIR/newfile"
check "card sees its new file" sh -c "nsenter -t $(card_os_pid mic0) -m -- /bin/busybox md5sum /mnt/newfile | grep -q $(md5sum < "$RUNDIR/newfile" | cut -c1-32)"
micctl shutdown mic0 >/dev/null
check "shutdown unmounted the card's mount" sh -c "micctl log mic0 | tail -8 | grep -q 'disk synced, unmounted'"
debugfs -R "cat /newfile" "$IMG" 2>/dev/null > "$RUNDIR/newfile.got"
check "host reads the card's new file (debugfs)" cmp -s "$RUNDIR/newfile" "$RUNDIR/newfile.got"
check "e2fsck -fn passes" e2fsck -fn "$IMG"

# (3) read-only disk
micctl boot mic1 >/dev/null
check "read-only card has /dev/vda" wait_vda mic1
check "read-only disk reads" sh -c "nsenter -t $(card_os_pid mic1) -m -- /bin/busybox dd if=/dev/vda bs=14 count=1 2>/dev/null | grep -q read-only-disk"
md5_ro=$(md5sum < "$RO")
card_sh mic1 dd of=/dev/vda bs=512 count=1 conv=fsync < /dev/zero 2>/dev/null
check "read-only disk refuses writes" [ $? -ne 0 ]
check "read-only card log says so" sh -c "micctl log mic1 | grep -q 'read-only'"
micctl shutdown mic1 >/dev/null
check "read-only image unchanged" [ "$(md5sum < "$RO")" = "$md5_ro" ]

# (4) reboot cycles: the device comes back every time, data persists.  The
# forced reset happens while the disk is attached but not mounted: a reset
# with a mounted rw filesystem is a known limitation (see README, "Disk").
for i in 1 2 3; do
    micctl boot mic0 >/dev/null
    wait_vda mic0 || { fail "cycle $i: no /dev/vda"; break; }
    if [ $i -eq 2 ]; then micctl reset mic0 >/dev/null; micctl wait mic0 ready --timeout 5 >/dev/null; continue; fi
    card_sh mic0 mount /dev/vda /mnt && card_sh mic0 sh -c "echo cycle-$i >> /mnt/cycles"
    micctl shutdown mic0 >/dev/null
done
check "reboot cycles kept the device and the data" sh -c "debugfs -R 'cat /cycles' '$IMG' 2>/dev/null | tr '\n' ' ' | grep -q 'cycle-1 .*cycle-3'"
check "e2fsck after cycles (one forced reset) is clean" e2fsck -fn "$IMG"
check "no loop device left after a reset" sh -c "for _ in \$(seq 1 50); do [ \$(losetup -a | grep -cE '$OURS') -eq $loops_before ] && exit 0; sleep 0.1; done; exit 1"
# (6) a forced reset while a read-write filesystem is mounted and being
# written: like a power loss, it must not hang anything, and the disk must
# be usable again after the next boot (the journal recovers it).
micctl boot mic0 >/dev/null
wait_vda mic0
card_sh mic0 mount /dev/vda /mnt
card_sh mic0 sh -c "dd if=/dev/zero of=/mnt/crash bs=1M count=8 2>/dev/null"
old_os=$(card_os_pid mic0)
check "reset with the disk mounted returns promptly" timeout 20 micctl reset mic0
check "every process of the old card OS is gone" sh -c "! kill -0 $old_os 2>/dev/null"
micctl boot mic0 >/dev/null
check "disk back after the forced reset" wait_vda mic0
check "filesystem mounts again after the forced reset" card_sh mic0 mount /dev/vda /mnt
card_sh mic0 umount /mnt
micctl shutdown mic0 >/dev/null
check "daemon responsive" micctl status

# (6b) a card process still writing to the mounted filesystem, its shell
# sitting in it, at shutdown: the card OS stops its processes first, so the
# unmount is a real one (not lazy) and the filesystem is clean
micctl boot mic0 >/dev/null
wait_vda mic0
card_sh mic0 mount /dev/vda /mnt
micctl console mic0 --linger 0.3 <<< 'cd /mnt && (while :; do echo busy >> /mnt/busy; done) &' >/dev/null
sleep 0.5
check "a writer is busy on the card's mount" sh -c "debugfs -R 'stat /busy' '$IMG' >/dev/null 2>&1 || card_sh mic0 test -s /mnt/busy"
micctl shutdown mic0 >/dev/null
check "busy mount: writers stopped, disk synced and unmounted (not lazily)" sh -c "micctl log mic0 | tail -8 | grep -q 'disk synced, unmounted'"
check "filesystem clean after a shutdown with a writer" e2fsck -fn "$IMG"

# (7) stopping micd (SIGTERM) shuts the card down cleanly first: data the
# card wrote but never synced reaches the host file
micctl boot mic0 >/dev/null
wait_vda mic0
card_sh mic0 mount /dev/vda /mnt
head -c 300000 /dev/urandom > "$RUNDIR/unsynced"
card_sh mic0 dd of=/mnt/unsynced bs=4096 < "$RUNDIR/unsynced" 2>/dev/null
stop_micd
check "micd's stop flushed the card's unsynced file to the host" sh -c "debugfs -R 'cat /unsynced' '$IMG' 2>/dev/null | cmp -s - '$RUNDIR/unsynced'"
check "filesystem clean after micd's stop" e2fsck -fn "$IMG"
finish
