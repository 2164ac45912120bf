# virtio-block from an external vhost-user backend: qemu-storage-daemon
# exports a qcow2 image, micd is the vhost-user front end, the card drives
# the same virtio-blk device as with the built-in backend.
. "$(dirname "$0")/lib.sh"
for t in qemu-storage-daemon qemu-img debugfs e2fsck nsenter; do
    command -v $t >/dev/null || { say "FAIL: $t missing (scripts/install-deps.sh)"; rm -rf "$RUNDIR"; exit 1; }
done
IMG=$RUNDIR/disk.qcow2
SOCK=$RUNDIR/vhost-blk.sock
QSD_PID=
card_lsh() { card_ush "$1" sh -lc "$2"; }
wait_vda() {
    for _ in $(seq 1 100); do card_ush "$1" test -s /dev/vda 2>/dev/null && return 0; sleep 0.05; done
    return 1
}
# start_qsd: mic0's backend, of $IMG on $SOCK
start_qsd() { qsd "$IMG" "$SOCK" "$RUNDIR/qsd.log"; QSD_PID=$QSD_STARTED; }
stop_qsd() { [ -n "$QSD_PID" ] && kill -TERM "$QSD_PID" 2>/dev/null; wait "$QSD_PID" 2>/dev/null; QSD_PID=; }
# dev_state [CARD [TYPE]]: '"type":...,"state":...,"reason":...' of a device

qemu-img create -q -f qcow2 "$IMG" 64M
start_qsd
# mic1: a hostile card OS with a disk of its own from a second backend
"$BIN/mic-mkimage" --default --runtime "$BIN/mic-hostile-card" -o "$RUNDIR/hostile.img" >/dev/null
qemu-img create -q -f qcow2 "$RUNDIR/hostile.qcow2" 8M
HSOCK=$RUNDIR/hostile.sock
qsd "$RUNDIR/hostile.qcow2" "$HSOCK" "$RUNDIR/qsd-hostile.log"
HQSD_PID=$QSD_STARTED
# mic2: a backend micd starts and restarts itself (the socket comes in
# MIC_VHOST_SOCKET)
qemu-img create -q -f qcow2 "$RUNDIR/m2.qcow2" 16M
cat > "$RUNDIR/qsd-m2.sh" <<SCRIPT
#!/bin/sh
exec qemu-storage-daemon --blockdev driver=file,node-name=file0,filename=$RUNDIR/m2.qcow2 \\
    --blockdev driver=qcow2,node-name=disk0,file=file0 \\
    --export type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=\$MIC_VHOST_SOCKET,writable=on
SCRIPT
chmod +x "$RUNDIR/qsd-m2.sh"
cat > "$RUNDIR/micd.conf" <<EOF
[mic0]
disk_vhost_user = $SOCK
[mic1]
image = $RUNDIR/hostile.img
cmdline = mic.hostile=blkpage
disk_vhost_user = $HSOCK
[mic2]
disk_vhost_user = $RUNDIR/m2.sock
disk_vhost_user_cmd = $RUNDIR/qsd-m2.sh
EOF
start_micd --config "$RUNDIR/micd.conf"
micctl wait mic0 ready --timeout 3 >/dev/null
check "micd negotiated with the backend" grep -q 'block served by vhost-user backend' "$RUNDIR/micd.log"

# (1) the card's disk is the qcow2 image's 64 MiB
micctl boot mic0 >/dev/null
micctl wait mic0 online --timeout 20 >/dev/null
check "card has /dev/vda" wait_vda mic0
check "card sees the image's size (131072 sectors)" sh -c "micctl log mic0 | grep -q 'probe virtio-block: 131072 sectors'"
check "status: block ready" wait_dev ready
head -c 3145728 /dev/urandom > "$RUNDIR/raw"
card_ush mic0 dd of=/dev/vda bs=1M seek=40 conv=fsync < "$RUNDIR/raw" 2>/dev/null
card_ush mic0 dd if=/dev/vda bs=1M skip=40 count=3 iflag=direct 2>/dev/null > "$RUNDIR/raw.got"
check "card reads back 3 MiB it wrote (direct I/O)" cmp -s "$RUNDIR/raw" "$RUNDIR/raw.got"
check "the rings went to the backend at the first kick" grep -q 'rings handed to vhost-user backend' "$RUNDIR/micd.log"

# (2) a filesystem made, mounted and written in the card
head -c 1048576 /dev/urandom > "$RUNDIR/big"
echo "written in the card over vhost-user" > "$RUNDIR/small"
check "card makes ext4 on /dev/vda" card_lsh mic0 "mkfs.ext4 -F -q /dev/vda"
check "card mounts it" card_lsh mic0 "mount -t ext4 /dev/vda /mnt"
card_ush mic0 dd of=/mnt/big bs=64K conv=fsync 2>/dev/null < "$RUNDIR/big"
card_ush mic0 sh -c "mkdir /mnt/dir && cat > /mnt/dir/small" < "$RUNDIR/small"
check "card sees its files" [ "$(card_ush mic0 md5sum /mnt/big | cut -c1-32)" = "$(md5sum < "$RUNDIR/big" | cut -c1-32)" ]
check "card unmounts" card_lsh mic0 "umount /mnt"
micctl shutdown mic0 >/dev/null
check "card shut down cleanly (ready)" [ "$(state_of mic0)" = ready ]
check "card synced its disk at shutdown" sh -c "micctl log mic0 | grep -q 'disk synced'"
check "host stopped the rings (GET_VRING_BASE) without complaint" sh -c "! grep -q 'backend gone' '$RUNDIR/micd.log'"

# (3) the host reads the image: qcow2 consistent, the files there
stop_qsd
check "micd saw the backend go" wait_dev broken 'vhost-user backend gone'
check "qemu-img check is clean" qemu-img check -q "$IMG"
qemu-img convert -O raw "$IMG" "$RUNDIR/disk.raw"
check "e2fsck -fn of the image passes" e2fsck -fn "$RUNDIR/disk.raw"
debugfs -R "cat /big" "$RUNDIR/disk.raw" 2>/dev/null > "$RUNDIR/big.got"
check "host reads the card's 1 MiB file" cmp -s "$RUNDIR/big" "$RUNDIR/big.got"
check "host reads the card's small file" [ "$(debugfs -R 'cat /dir/small' "$RUNDIR/disk.raw" 2>/dev/null)" = "$(cat "$RUNDIR/small")" ]

# (4) the backend comes back: micd reconnects; the card's next boot drives it
start_qsd
for _ in $(seq 1 100); do grep -q 'is back' "$RUNDIR/micd.log" && break; sleep 0.1; done
check "micd reconnected to the restarted backend" grep -q 'vhost-user backend .* is back' "$RUNDIR/micd.log"
micctl boot mic0 >/dev/null
micctl wait mic0 online --timeout 20 >/dev/null
check "after a reboot the device is ready again" wait_dev ready
check "card mounts the filesystem again" card_lsh mic0 "mount /dev/vda /mnt"
check "and reads its file" [ "$(card_ush mic0 cat /mnt/dir/small)" = "$(cat "$RUNDIR/small")" ]
card_lsh mic0 "umount /mnt"

# (5) a hostile card aims a read of its vhost-user disk at the device page
# in host memory: the backend can only reach what micd's memory table
# holds (card memory, the device's own rings), so the page stays intact
# (its console, which micd re-checks every second, stays ready); at most
# the hostile card's own disk breaks; the other card's disk goes on
micctl boot mic1 >/dev/null
micctl wait mic1 online --timeout 20 >/dev/null
for _ in $(seq 1 100); do grep -q 'disk read aimed at the device page' "$RUNDIR/micd.log" && break; sleep 0.05; done
check "hostile: the card attacked" grep -q 'disk read aimed at the device page' "$RUNDIR/micd.log"
sleep 2.5 # two wake-ups of every device thread of mic1: each checks the page
say "hostile card's disk: $(dev_state mic1); its backend: $(tail -2 "$RUNDIR/qsd-hostile.log" | tr '\n' ' ')"
check "hostile: the device page is intact (console ready)" wait_dev ready '' mic1 console
check "hostile: no device broken by a changed page" sh -c "! grep -q 'mic1: .*broken.*device page:' '$RUNDIR/micd.log'"
check "hostile: the backend found no such address in the table" grep -q 'invalid address' "$RUNDIR/qsd-hostile.log"
check "hostile: only the hostile card's disk broke" wait_dev broken 'vhost-user backend gone' mic1
card_ush mic0 dd if=/dev/vda bs=1M count=2 iflag=direct 2>/dev/null | wc -c > "$RUNDIR/n"
check "hostile: the other card's disk still works" [ "$(cat "$RUNDIR/n")" = 2097152 ]
check "hostile: micd answers" micctl status mic1

# (6) kill -9 of the backend while the card has its filesystem mounted:
# seen at once, micd and the console go on; a write started meanwhile
# waits; when the backend is back the card's driver resets the device and
# sends again what was in flight: no reboot, no acknowledged write lost
check "card mounts the filesystem" card_lsh mic0 "mount /dev/vda /mnt"
head -c 524288 /dev/urandom > "$RUNDIR/before"
head -c 2097152 /dev/urandom > "$RUNDIR/during"
card_ush mic0 dd of=/mnt/before bs=64K conv=fsync 2>/dev/null < "$RUNDIR/before"
check "a file written and synced before the kill" [ $? -eq 0 ]
kill -KILL "$QSD_PID"; wait "$QSD_PID" 2>/dev/null; QSD_PID=
t0=$(mono_ms)
check "status shows the device broken, backend gone" wait_dev broken 'vhost-user backend gone: connection closed'
say "backend death seen after $(($(mono_ms) - t0)) ms"
check "micd answers" micctl status mic0
check "card still online" [ "$(state_of mic0)" = online ]
out=$(micctl console mic0 --linger 0.5 <<< 'echo console-$((6*7))' | tr -d '\r')
check "the console still works" sh -c "echo '$out' | grep -qx console-42"
(card_ush mic0 dd of=/mnt/during bs=64K conv=fsync 2>/dev/null < "$RUNDIR/during"; echo $? > "$RUNDIR/during.rc") &
writer=$!
sleep 1
check "a write while the backend is away waits" [ ! -e "$RUNDIR/during.rc" ]
start_qsd
for _ in $(seq 1 300); do [ -e "$RUNDIR/during.rc" ] && break; sleep 0.1; done
check "the write completes once the backend is back" [ "$(cat "$RUNDIR/during.rc" 2>/dev/null)" = 0 ]
wait $writer 2>/dev/null
check "the card's driver reset the device and sent its requests again" sh -c "micctl log mic0 | grep -q 'virtio-block: device reset (host flagged it)'"
check "status: ready again, no reboot" wait_dev ready
check "card still online (same boot)" [ "$(state_of mic0)" = online ]
check "the card reads back the file written across the outage" [ "$(card_ush mic0 md5sum /mnt/during | cut -c1-32)" = "$(md5sum < "$RUNDIR/during" | cut -c1-32)" ]
check "card unmounts" card_lsh mic0 "umount /mnt"
micctl shutdown mic0 >/dev/null
stop_qsd
check "qemu-img check is clean after the outage" qemu-img check -q "$IMG"
qemu-img convert -O raw "$IMG" "$RUNDIR/disk.raw"
check "e2fsck -fn passes after the outage" e2fsck -fn "$RUNDIR/disk.raw"
debugfs -R "cat /before" "$RUNDIR/disk.raw" 2>/dev/null | cmp -s - "$RUNDIR/before"
check "host reads the file synced before the kill" [ $? -eq 0 ]
debugfs -R "cat /during" "$RUNDIR/disk.raw" 2>/dev/null | cmp -s - "$RUNDIR/during"
check "host reads the file written across the outage" [ $? -eq 0 ]
# a card reset while the backend is away: prompt, the device stays broken
micctl boot mic0 >/dev/null
micctl wait mic0 online --timeout 20 >/dev/null
check "micd reset of the card returns" timeout 20 micctl reset mic0
micctl wait mic0 ready --timeout 5 >/dev/null
check "device still broken while the backend is away" wait_dev broken 'vhost-user backend gone'

# (7) a backend micd started: killed, it is restarted with backoff, and the
# card's disk works again in the same boot; it goes when micd goes
m2_pid() { pgrep -f "^qemu-storage-daemon .*$RUNDIR/m2.qcow2" | head -1; }
check "micd started mic2's backend" grep -q 'mic2: block: started vhost-user backend' "$RUNDIR/micd.log"
micctl boot mic2 >/dev/null
micctl wait mic2 online --timeout 20 >/dev/null
card_ush mic2 dd of=/dev/vda bs=64K count=8 conv=fsync < "$RUNDIR/before" 2>/dev/null
check "mic2 writes its disk" [ $? -eq 0 ]
old_pid=$(m2_pid)
kill -KILL "$old_pid"
check "status shows mic2's disk broken" wait_dev broken 'vhost-user backend gone' mic2
for _ in $(seq 1 100); do new_pid=$(m2_pid); [ -n "$new_pid" ] && [ "$new_pid" != "$old_pid" ] && break; sleep 0.1; done
check "micd restarted the backend ($old_pid -> $new_pid)" sh -c "[ -n '$new_pid' ] && [ '$new_pid' != '$old_pid' ]"
check "micd logged the restart" grep -q "mic2: block: vhost-user backend (pid $old_pid) killed by signal 9; restarting it in" "$RUNDIR/micd.log"
check "mic2's disk ready again in the same boot" wait_dev ready '' mic2
card_ush mic2 dd if=/dev/vda bs=64K count=8 iflag=direct 2>/dev/null | cmp -s - "$RUNDIR/before"
check "mic2 reads what it wrote before the kill" [ $? -eq 0 ]
kill -TERM "$HQSD_PID" 2>/dev/null; wait "$HQSD_PID" 2>/dev/null
last_pid=$(m2_pid)
stop_micd
check "the backend micd started is gone with it" sh -c "! kill -0 $last_pid 2>/dev/null"
finish
