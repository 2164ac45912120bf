# A card OS that dies is "lost" within 1 s and recovers with reset + boot;
# a hung card OS (stopped, so no heartbeat) is lost once the watchdog expires;
# corrupt images are refused by the card with a reason, the card stays ready;
# an image whose links would escape the new root is refused;
# a card OS that ignores shutdown is reset after the timeout; a boot that
# never completes times out.
. "$(dirname "$0")/lib.sh"

bad=$RUNDIR/bad.img; trunc=$RUNDIR/trunc.img; junk=$RUNDIR/junk.img
cp "$IMAGE" "$bad"
# flip one byte in the payload, well past the header
printf '\377' | dd of="$bad" bs=1 seek=100000 conv=notrunc status=none
head -c 300000 "$IMAGE" > "$trunc"
head -c 100000 /dev/urandom > "$junk"
mkdir -p "$RUNDIR/hang/bin"
cp /bin/busybox "$RUNDIR/hang/bin/busybox"
ln -s busybox "$RUNDIR/hang/bin/sh"
printf '#!/bin/sh\nexec /bin/busybox sleep 1000\n' > "$RUNDIR/hang/init"
chmod +x "$RUNDIR/hang/init"
"$BIN/mic-mkimage" -o "$RUNDIR/hang.img" --init /init "$RUNDIR/hang" >/dev/null

cat > "$RUNDIR/micd.conf" <<CONF
[daemon]
boot_timeout_ms = 1000
shutdown_timeout_ms = 500
watchdog_ms = 1000
[mic0]
[mic1]
image = $bad
[mic2]
image = $trunc
[mic3]
image = $junk
[mic4]
cmdline = mic.ignore_shutdown
[mic5]
image = $RUNDIR/hang.img
[mic6]
hostmem_mb = 16
[mic7]
image = $RUNDIR/links.img
CONF
start_micd --config "$RUNDIR/micd.conf" --image "$IMAGE"

# lost detection
micctl boot mic0 >/dev/null
os=$(card_os_pid mic0)
kill -9 "$os"
check "kill -9 of the card OS: lost within 1 s" micctl wait mic0 lost --timeout 1
check "lost status names the reason" sh -c "micctl status mic0 | grep -q 'card OS died'"
check "boot refused while lost" sh -c "! micctl boot mic0 2>/dev/null"
check "reset recovers a lost card" micctl reset mic0
check "boot after lost" micctl boot mic0
fw=$(json_field mic0 firmware_pid)
kill -9 "$fw"
check "firmware killed: lost within 1 s" micctl wait mic0 lost --timeout 1
check "reset after firmware death" micctl reset mic0
check "boot after firmware death" micctl boot mic0

# a hung card OS (stopped, so no heartbeat) is lost once the watchdog expires
micctl boot mic0 >/dev/null
os=$(card_os_pid mic0)
kill -STOP "$os"
check "stopped card OS: lost by the watchdog" micctl wait mic0 lost --timeout 3
check "lost status names the missing heartbeat" sh -c "micctl status mic0 | grep -q 'no heartbeat'"
check "reset recovers a hung card" micctl reset mic0
check "boot after the hang" micctl boot mic0
sleep 1.5
check "a live card is not lost by the watchdog" [ "$(state_of mic0)" = online ]

# corrupt images
for c in mic1:checksum mic2:size mic3:magic; do
    card=${c%%:*}; word=${c#*:}
    out=$(micctl boot "$card" 2>&1); rc=$?
    check "$card: bad image refused (rc=$rc)" [ "$rc" -eq 1 ]
    check "$card: error names the reason ($word): $out" sh -c "echo '$out' | grep -qi '$word'"
    check "$card: card stays ready" [ "$(state_of $card)" = ready ]
    check "$card: card log has the reason" sh -c "micctl log $card | grep -q 'boot refused'"
done
check "mic0 unaffected by the other cards" [ "$(state_of mic0)" = online ]

# Symlink entries (the firmware makes them itself, not through libarchive)
# keep the archive's rules: no "..", nothing written through a symlink.
# micd reads the image file at every boot, so mic7's is swapped in turn.
links_image() { # NAME TARGET [NAME TARGET]...: the default image and those symlinks
    python3 - "$RUNDIR/links.tar" "$@" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    a = sys.argv[2:]
    for name, target in zip(a[0::2], a[1::2]):
        i = tarfile.TarInfo(name); i.type = tarfile.SYMTYPE; i.linkname = target
        t.addfile(i)
PY
    "$BIN/mic-mkimage" -o "$RUNDIR/links.img" --default --tar "$RUNDIR/links.tar" >/dev/null
}
for c in "through a symlink:evil / evil/pwned x" "dot-dot:../pwned x" "absolute:/pwned x"; do
    what=${c%%:*}
    # shellcheck disable=SC2086
    links_image ${c#*:}
    out=$(micctl boot mic7 2>&1); rc=$?
    check "link $what: image refused (rc=$rc: $out)" [ "$rc" -eq 1 ]
    check "link $what: card stays ready" [ "$(state_of mic7)" = ready ]
    [ "$(state_of mic7)" = online ] && micctl shutdown mic7 >/dev/null
done
check "the card log names the refused link" sh -c "micctl log mic7 | grep -q 'evil/pwned: cannot link'"
cp "$IMAGE" "$RUNDIR/links.img"
check "the same card boots the default image afterwards" micctl boot mic7
check "the default image's links are there" sh -c "echo 'ls -l /usr/bin/awk' | micctl console mic7 | grep -q 'awk -> /bin/busybox'"
micctl shutdown mic7 >/dev/null

# forced reset when the card ignores shutdown
micctl boot mic4 >/dev/null
out=$(micctl shutdown mic4 2>&1); rc=$?
check "ignored shutdown ends in a forced reset, then ready" [ "$(state_of mic4)" = ready ]
check "a forced shutdown is not reported as success (exit $rc: $out)" sh -c "[ $rc -eq 1 ] && echo '$out' | grep -q 'forced reset'"
check "forced reset is reported" sh -c "micctl status mic4 | grep -q 'forced reset'"

# no room to stage the image for DMA: the download falls back to the CPU
check "boots with a CPU download" micctl boot mic6
check "download was by CPU" [ "$(json_field mic6 download_dma)" = false ]
micctl shutdown mic6 >/dev/null

# boot timeout
out=$(micctl boot mic5 2>&1); rc=$?
check "hanging boot fails" [ "$rc" -ne 0 ]
check "boot timeout reported: $out" sh -c "micctl status mic5 | grep -q 'timed out'"
check "card ready again after boot timeout" micctl wait mic5 ready --timeout 3
finish
