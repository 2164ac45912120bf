# vhost-user backends come and go (docs/architecture.md 3.21): a backend
# the user starts that is not there when micd starts, dies and comes back,
# all in one boot of the card; and a card that resets its disk while the
# backend still runs its requests gets its buffers back only once the
# backend is done with them.
. "$(dirname "$0")/lib.sh"
for t in qemu-storage-daemon qemu-img nsenter; do
    command -v $t >/dev/null || { say "FAIL: $t missing (scripts/install-deps.sh)"; rm -rf "$RUNDIR"; exit 1; }
done
IMG=$RUNDIR/disk.qcow2
SOCK=$RUNDIR/late.sock
QSD_PID=
start_qsd() { qsd "$IMG" "$SOCK" "$RUNDIR/qsd.log"; QSD_PID=$QSD_STARTED; }
md5() { md5sum | cut -c1-32; }

# mic1: a hostile card OS that resets its disk with reads in flight; its
# backend runs each read a quarter of a second late (a throttle node)
"$BIN/mic-mkimage" --default --runtime "$BIN/mic-hostile-card" -o "$RUNDIR/hostile.img" >/dev/null
qemu-img create -q -f raw "$RUNDIR/slow.raw" 8M
HSOCK=$RUNDIR/slow.sock
setpriv --pdeathsig TERM qemu-storage-daemon \
    --object throttle-group,id=tg0,x-iops-total=4 \
    --blockdev driver=file,node-name=file0,filename="$RUNDIR/slow.raw" \
    --blockdev driver=throttle,node-name=disk0,throttle-group=tg0,file=file0 \
    --export type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path="$HSOCK",writable=on \
    >>"$RUNDIR/qsd-slow.log" 2>&1 &
HQSD_PID=$!
for _ in $(seq 1 100); do [ -S "$HSOCK" ] && break; sleep 0.05; done

qemu-img create -q -f qcow2 "$IMG" 32M
cat > "$RUNDIR/micd.conf" <<EOF
[mic0]
disk_vhost_user = $SOCK
[mic1]
image = $RUNDIR/hostile.img
cmdline = mic.hostile=blkreset
disk_vhost_user = $HSOCK
EOF

# (1) no backend at $SOCK: micd starts anyway, the card boots, the disk
# waits for its backend with the reason in the status
start_micd --config "$RUNDIR/micd.conf"
check "micd starts without the backend" micctl wait mic0 ready --timeout 3
check "micd says why" grep -q "mic0: block: vhost-user backend not listening at $SOCK" "$RUNDIR/micd.log"
micctl boot mic0 >/dev/null
check "the card boots online" micctl wait mic0 online --timeout 20
check "status: disk broken, backend not listening, connection refused" \
    wait_dev broken "vhost-user backend not listening at $SOCK: No such file or directory"
say "status: $(dev_state mic0)"

# (2) the backend appears: micd connects, the card's driver resets the
# device, takes the backend's features and size, and the disk works
start_qsd
t0=$(mono_ms)
WAIT_N=300 check "status: disk ready once the backend listens" wait_dev ready
say "backend seen and device recovered after $(($(mono_ms) - t0)) ms"
check "the card's driver reset the device" sh -c "micctl log mic0 | grep -q 'virtio-block: device reset (host flagged it)'"
check "the card sees the image's size (65536 sectors)" sh -c "micctl log mic0 | grep -q 'virtio-block: /dev/vda now 65536 sectors'"
check "the card still online, same boot" [ "$(state_of mic0)" = online ]
head -c 2097152 /dev/urandom > "$RUNDIR/a"
card_ush mic0 dd of=/dev/vda bs=64K seek=16 conv=fsync < "$RUNDIR/a" 2>/dev/null
check "the card writes its disk" [ $? -eq 0 ]
check "and reads it back (direct I/O)" \
    [ "$(card_ush mic0 dd if=/dev/vda bs=64K skip=16 count=32 iflag=direct 2>/dev/null | md5)" = "$(md5 < "$RUNDIR/a")" ]

# (3) kill -9 of the user's backend: broken at once with the reason; a
# write meanwhile waits; the user restarts it: the write completes, no reboot
kill -KILL "$QSD_PID"; wait "$QSD_PID" 2>/dev/null; QSD_PID=
check "status: broken at once, backend gone" wait_dev broken 'vhost-user backend gone: connection closed'
head -c 1048576 /dev/urandom > "$RUNDIR/b"
(card_ush mic0 dd of=/dev/vda bs=64K seek=64 conv=fsync < "$RUNDIR/b" 2>/dev/null; echo $? > "$RUNDIR/b.rc") &
writer=$!
sleep 1
check "a write while the backend is away waits" [ ! -e "$RUNDIR/b.rc" ]
start_qsd
for _ in $(seq 1 300); do [ -e "$RUNDIR/b.rc" ] && break; sleep 0.1; done
wait $writer 2>/dev/null
check "the write completes once the backend is back" [ "$(cat "$RUNDIR/b.rc" 2>/dev/null)" = 0 ]
check "status: ready again" wait_dev ready
check "the card still online, same boot" [ "$(state_of mic0)" = online ]
check "the card reads back what it wrote before the kill" \
    [ "$(card_ush mic0 dd if=/dev/vda bs=64K skip=16 count=32 iflag=direct 2>/dev/null | md5)" = "$(md5 < "$RUNDIR/a")" ]
check "and what it wrote during the outage" \
    [ "$(card_ush mic0 dd if=/dev/vda bs=64K skip=64 count=16 iflag=direct 2>/dev/null | md5)" = "$(md5 < "$RUNDIR/b")" ]
kill -TERM "$QSD_PID"; wait "$QSD_PID" 2>/dev/null; QSD_PID=
check "qemu-img check is clean" qemu-img check -q "$IMG"
check "the image holds both writes" sh -c "qemu-img convert -O raw '$IMG' '$RUNDIR/disk.raw' &&
    [ \"\$(dd if='$RUNDIR/disk.raw' bs=64K skip=16 count=32 2>/dev/null | md5sum | cut -c1-32)\" = '$(md5 < "$RUNDIR/a")' ] &&
    [ \"\$(dd if='$RUNDIR/disk.raw' bs=64K skip=64 count=16 2>/dev/null | md5sum | cut -c1-32)\" = '$(md5 < "$RUNDIR/b")' ]"

# (4) mic1 resets its disk while the backend runs four reads: micd stops
# the ring and waits for the reads to finish before it acknowledges the
# reset, so nothing lands in the card's buffers or used ring afterwards
micctl boot mic1 >/dev/null
micctl wait mic1 online --timeout 20 >/dev/null
for _ in $(seq 1 200); do grep -q 'mic-hostile-card: blkreset:' "$RUNDIR/micd.log" && break; sleep 0.05; done
line=$(grep -o 'mic-hostile-card: blkreset:.*' "$RUNDIR/micd.log")
say "${line:-no report from the hostile card}"
check "reads were in flight at the reset" sh -c "echo '$line' | grep -Eq ': [0-2] of 4 read\(s\) answered before the reset'"
check "the reset was acknowledged" sh -c "echo '$line' | grep -q 'acknowledged after [0-9]* ms (0)'"
check "nothing written to the card's buffers after the acknowledgement" sh -c "echo '$line' | grep -q 'after it: 0 byte(s) of the buffers written'"
check "no used entry after the acknowledgement" sh -c "echo '$line' | grep -q 'used index 0 -> 0'"
check "micd waited for the backend's reads before the reset" \
    grep -Eq 'mic1: block: rings taken back from vhost-user backend \([1-9] request\(s\) finished first\)' "$RUNDIR/micd.log"
for _ in $(seq 1 200); do grep -q 'blkreset: after the reset' "$RUNDIR/micd.log" && break; sleep 0.05; done
check "after the reset the disk works: a write read back the same" \
    grep -q 'blkreset: after the reset, 64 KiB written and read back: same data' "$RUNDIR/micd.log"
python3 -c 'import sys; sys.stdout.buffer.write(bytes((k * 7 + 3) & 255 for k in range(65536)))' > "$RUNDIR/pattern"
check "and the write is in the backend's image" \
    sh -c "dd if='$RUNDIR/slow.raw' bs=512 skip=1024 count=128 2>/dev/null | cmp -s - '$RUNDIR/pattern'"
kill -TERM "$HQSD_PID" 2>/dev/null; wait "$HQSD_PID" 2>/dev/null
stop_micd
finish
