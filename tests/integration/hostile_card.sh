# A hostile card OS breaks its console device in five ways; micd marks the
# device broken, logs why, keeps serving the other card, and a reset
# recovers the device.
. "$(dirname "$0")/lib.sh"
"$BIN/mic-mkimage" --default --runtime "$BIN/mic-hostile-card" -o "$RUNDIR/hostile.img" >/dev/null
cat > "$RUNDIR/micd.conf" <<CONF
[mic0]
image = $RUNDIR/hostile.img
[mic1]
CONF
start_micd --config "$RUNDIR/micd.conf" --image "$IMAGE"
micctl wait mic1 ready --timeout 2 >/dev/null
micctl boot mic1 >/dev/null
dev_state() { micctl status mic0 --json | python3 -c 'import json,sys; d=json.load(sys.stdin)["cards"][0]["devices"][0]; print(d["state"], d["reason"])'; }
# boot_hostile MODE: both cards online, mic0's card OS hostile in MODE (the
# cmdline is read at start: the daemon restarts for each mode)
boot_hostile() {
    sed -i "s/^cmdline.*//; s/^\[mic0\]/[mic0]\ncmdline = mic.hostile=$1/" "$RUNDIR/micd.conf"
    stop_micd >/dev/null
    start_micd --config "$RUNDIR/micd.conf" --image "$IMAGE"
    # generous: a card the last daemon left wedged in the kernel (fusehang)
    # holds the kernel's mount lock until it is gone, and a new card's
    # firmware starts in a mount namespace of its own
    micctl wait mic0 ready --timeout 15 >/dev/null; micctl wait mic1 ready --timeout 15 >/dev/null
    micctl boot mic1 >/dev/null
    micctl boot mic0 >/dev/null
}
for mode in idx:"avail idx" loop:"loop" oob:"outside card memory" huge:"longer than" page:"page"; do
    m=${mode%%:*}; why=${mode#*:}
    boot_hostile "$m"
    for _ in $(seq 50); do dev_state | grep -q ^broken && break; sleep 0.05; done
    st=$(dev_state)
    check "$m: device marked broken ($st)" sh -c "echo '$st' | grep -q '^broken'"
    check "$m: reason names the fault" sh -c "echo '$st' | grep -qi '$why'"
    check "$m: micd logged why" grep -q "console device broken" "$RUNDIR/micd.log"
    out=$(micctl console mic1 <<< hostname | tr -d '\r')
    check "$m: the other card's console still works" sh -c "echo '$out' | grep -qx mic1"
    check "$m: daemon still answers" micctl status
    micctl reset mic0 >/dev/null
    check "$m: reset clears the broken state" sh -c "micctl status mic0 --json | grep -q '\"state\":\"waiting\"'"
done

# A card OS that wedges itself in the kernel (a FUSE request to its own
# server, stuck on it) cannot be killed to the end by signals: the reset
# aborts the card's FUSE connections after a bound, and the card resets;
# the daemon never hangs and keeps serving the other card.
boot_hostile fusehang
sleep 0.5
t0=$(($(mono_ms) / 1000))
out=$(micctl reset mic0 2>&1); rc=$?
t1=$(($(mono_ms) / 1000))
check "reset of a wedged card succeeds within 15 s ($((t1 - t0)) s, exit $rc): $out" sh -c "[ $((t1 - t0)) -le 15 ] && [ $rc -eq 0 ]"
check "micd says what it did" grep -q "mic0: card processes stuck in the kernel: aborted 1 FUSE connection" "$RUNDIR/micd.log"
out=$(micctl console mic1 <<< hostname | tr -d '\r')
check "the other card's console still works" sh -c "echo '$out' | grep -qx mic1"
# A card OS that clears O_NONBLOCK on every fd it holds and floods its
# doorbells and DMA kicks: if it shared an open file description of a line
# with micd, micd's reads of that line would block (a reset would wait for
# ever for a DMA worker stuck in a read, SIGTERM would go unanswered).
# micd must answer throughout, reset the card in seconds and keep serving
# the other card.
boot_hostile nonblock
sleep 1 # flooding now (for 8 s from its start)
(
    for _ in $(seq 40); do
        [ -e "$RUNDIR/nonblock.done" ] && break
        t0=$(mono_ms)
        timeout 3 "$MICCTL" status >/dev/null 2>&1 || echo "no answer"
        t1=$(mono_ms)
        [ $((t1 - t0)) -le 2000 ] || echo "slow: $((t1 - t0)) ms"
        sleep 0.1
    done
) > "$RUNDIR/nonblock.answers" &
pinger=$!
t0=$(mono_ms)
timeout 3 "$MICCTL" status >/dev/null; rc=$?
t1=$(mono_ms)
check "nonblock: status answers promptly under the flood ($((t1 - t0)) ms, exit $rc)" sh -c "[ $rc -eq 0 ] && [ $((t1 - t0)) -le 2000 ]"
t0=$(mono_ms)
out=$(timeout 20 "$MICCTL" reset mic0 2>&1); rc=$?
t1=$(mono_ms)
check "nonblock: reset returns within 5 s ($((t1 - t0)) ms, exit $rc): $out" sh -c "[ $rc -eq 0 ] && [ $((t1 - t0)) -le 5000 ]"
touch "$RUNDIR/nonblock.done"
wait $pinger
check "nonblock: micd answered throughout ($(sort "$RUNDIR/nonblock.answers" | uniq -c | tr '\n' ' '))" sh -c "[ ! -s '$RUNDIR/nonblock.answers' ]"
check "nonblock: mic0 ready after the reset" timeout 5 "$MICCTL" wait mic0 ready --timeout 3
out=$(timeout 10 "$MICCTL" console mic1 <<< hostname | tr -d '\r')
check "nonblock: the other card's console still works" sh -c "echo '$out' | grep -qx mic1"
if ! timeout 3 "$MICCTL" status >/dev/null 2>&1; then
    # wedged (the bug this checks for): SIGTERM would not be answered
    fail "nonblock: micd wedged; killed"
    kill -KILL "$MICD_PID"; wait "$MICD_PID" 2>/dev/null; MICD_PID=
fi

# A card OS that floods its serial line (stdout and stderr, drained by
# micd): micd keeps answering, logs a bounded number of the card's lines
# (50 a second after a burst of 200) and says it dropped the rest, and the
# other card keeps working; a reset stops the flood.
boot_hostile uart
t0=$(mono_ms)
slow=0
for _ in $(seq 10); do
    s=$(mono_ms); micctl status >/dev/null || slow=$((slow + 100))
    [ $(($(mono_ms) - s)) -gt 1000 ] && slow=$((slow + 1))
    sleep 0.2
done
check "uart: micd answers promptly under the flood ($slow slow)" [ "$slow" -eq 0 ]
secs=$((($(mono_ms) - t0) / 1000 + 2))
n=$(grep -c "mic0: card: .*uart flood" "$RUNDIR/micd.log")
check "uart: micd logged a bounded number of the card's lines ($n in ${secs} s)" [ "$n" -le $((200 + 50 * secs)) ]
for _ in $(seq 100); do grep -q "mic0: card: (.* lines dropped)" "$RUNDIR/micd.log" && break; sleep 0.1; done
check "uart: micd says it dropped the rest" grep -q "mic0: card: (.* lines dropped)" "$RUNDIR/micd.log"
check "uart: the lines logged are printable" sh -c "! grep 'uart flood' '$RUNDIR/micd.log' | grep -q \"\$(printf '\\033')\""
out=$(micctl console mic1 <<< hostname | tr -d '\r')
check "uart: the other card's console still works" sh -c "echo '$out' | grep -qx mic1"
check "uart: reset stops it" timeout 10 micctl reset mic0

# A card OS that punches out its whole host memory pool and overwrites the
# device page and rings with garbage breaks its devices; a reset must
# rebuild all of it from the host's own state, with micd still running: the
# next boot runs the real card OS (the hostile runtime execs it on the boot
# after a punch) and gets a working console and devices.
mkdir -p "$RUNDIR/punch/sbin"
cp "$BIN/mic-hostile-card" "$RUNDIR/punch/sbin/"
"$BIN/mic-mkimage" --default --init /sbin/mic-hostile-card -o "$RUNDIR/punch.img" "$RUNDIR/punch" >/dev/null
sed -i "s|^image = .*|image = $RUNDIR/punch.img|" "$RUNDIR/micd.conf"
boot_hostile punch
micd_pid=$MICD_PID
for _ in $(seq 50); do dev_state | grep -q ^broken && break; sleep 0.05; done
st=$(dev_state)
check "punch: device broken or waiting ($st)" sh -c "echo '$st' | grep -Eq '^(broken|waiting)'"
check "punch: card reset" micctl reset mic0
check "punch: card boots again" micctl boot mic0
devs() { micctl status mic0 --json | python3 -c 'import json,sys; print(" ".join(d["state"] for d in json.load(sys.stdin)["cards"][0]["devices"]))'; }
for _ in $(seq 100); do devs | grep -Eq 'broken|waiting' || break; sleep 0.05; done
st=$(devs)
check "punch: every device ready after reset and boot ($st)" sh -c "[ -n '$st' ] && ! echo '$st' | grep -Eq 'broken|waiting'"
out=$(timeout 10 micctl console mic0 <<< hostname | tr -d '\r')
check "punch: mic0's console works after reset and boot" sh -c "echo '$out' | grep -qx mic0"
check "punch: the same micd all along" sh -c "[ '$micd_pid' = '$MICD_PID' ] && kill -0 $micd_pid"
out=$(micctl console mic1 <<< hostname | tr -d '\r')
check "punch: the other card's console still works" sh -c "echo '$out' | grep -qx mic1"
finish
