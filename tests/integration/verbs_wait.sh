# Verbs that wait for what they need: a boot issued while micd is still
# starting, or while the card is shutting down, waits for the card and then
# boots; --no-wait refuses at once, --timeout bounds the wait, a card lost
# meanwhile ends it with the reason, an interrupted micctl leaves the card
# alone; shutdown waits for a boot under way, resume for a suspend.
. "$(dirname "$0")/lib.sh"
# mic0 ignores shutdown requests: its shutdown lasts shutdown_timeout_ms,
# then the host resets it (a transition long enough to be waited for).
printf '[daemon]\nshutdown_timeout_ms = 1500\n[mic0]\nnet = no\ncmdline = mic.ignore_shutdown\n[mic1]\nnet = no\n' > "$RUNDIR/w.conf"
ms() { mono_ms; }
expect() { # expect RC PATTERN COMMAND...: exit code and message
    local rc=$1 pat=$2; shift 2
    out=$("$@" 2>&1); got=$?
    check "'$*' exits $rc ($got) and says '$pat': $out" sh -c "[ $got -eq $rc ] && echo \"\$1\" | grep -q -- \"$pat\"" _ "$out"
}

# As a user would: micd in the background and boots in the same breath,
# before the control socket exists or the cards' firmware is up (mic1's
# boot is issued first: micctl waits for the daemon too).
micctl boot mic1 > "$RUNDIR/boot1.out" 2>&1 & b1=$!
unshare --net setpriv --pdeathsig TERM "$BIN/micd" --rundir "$RUNDIR" --config "$RUNDIR/w.conf" >>"$RUNDIR/micd.log" 2>&1 &
MICD_PID=$!
expect 0 "mic0: online" micctl boot mic0
wait $b1; rc=$?
check "a boot issued before micd started waits for it and succeeds ($rc: $(cat "$RUNDIR/boot1.out"))" sh -c "[ $rc -eq 0 ] && grep -q 'mic1: online' '$RUNDIR/boot1.out'"
check "it found the card still resetting and waited (micd log)" grep -q "mic1: boot waits until the card is ready (it is resetting)" "$RUNDIR/micd.log"

# Boot during a shutdown.
micctl shutdown mic0 --no-wait >/dev/null
expect 1 "mic0 is shutting_down; wait or reset (cannot boot)" micctl boot mic0 --no-wait
t0=$(ms)
expect 1 "timed out after 0.3 s: mic0 is still shutting_down" micctl boot mic0 --timeout 0.3
t=$(( $(ms) - t0 ))
check "the timed-out wait lasted its 0.3 s ($t ms)" [ "$t" -ge 300 -a "$t" -lt 1200 ]
check "a timed-out boot did not start a boot" [ "$(state_of mic0)" = shutting_down ]
t0=$(ms)
expect 0 "mic0: online" micctl boot mic0
t=$(( $(ms) - t0 ))
check "boot waited through the shutdown and its forced reset ($t ms)" [ "$t" -ge 500 ]
check "micd log: shutting_down, then ready, then booting" sh -c "grep -E 'mic0: (shutting_down|resetting) -> |mic0: ready -> booting|boot waits' '$RUNDIR/micd.log' | tail -4 | tr '\n' ' ' | grep -q 'boot waits until the card is ready (it is shutting_down).*-> resetting.*-> ready.*ready -> booting'"

# A card lost while a boot waits for it ends the wait, with the reason.
micctl shutdown mic0 --no-wait >/dev/null
micctl boot mic0 > "$RUNDIR/lost.out" 2>&1 & bp=$!
sleep 0.3
kill -KILL "$(json_field mic0 firmware_pid)"
wait $bp; rc=$?
check "a boot waiting on a card that got lost fails ($rc: $(cat "$RUNDIR/lost.out"))" sh -c "[ $rc -eq 1 ] && grep -q 'mic0 is lost; reset it (cannot boot): ' '$RUNDIR/lost.out'"
micctl reset mic0 >/dev/null
expect 0 "mic0: online" micctl boot mic0

# An interrupted micctl takes its waiting boot with it.
micctl shutdown mic0 --no-wait >/dev/null
timeout -s INT 0.3 micctl boot mic0 >/dev/null 2>&1
micctl wait mic0 ready --timeout 5 >/dev/null
sleep 0.3
check "a boot whose micctl was interrupted is not started ($(state_of mic0))" [ "$(state_of mic0)" = ready ]

# Shutdown during a boot waits for the card to come online, then shuts it
# down.  The card's firmware is stopped (SIGSTOP) across the boot request,
# so the boot is surely under way when the shutdown comes.
micctl shutdown mic1 >/dev/null
fw=$(json_field mic1 firmware_pid)
kill -STOP "$fw"
micctl boot mic1 --no-wait >/dev/null
micctl shutdown mic1 > "$RUNDIR/sd.out" 2>&1 & sd=$!
sleep 0.3
st=$(state_of mic1); if kill -0 $sd 2>/dev/null; then alive=waiting; else alive=returned; fi
check "the shutdown waits while mic1 boots ($alive, $st)" [ "$alive $st" = "waiting booting" ]
kill -CONT "$fw"
wait $sd; rc=$?
check "then shuts it down once online ($rc: $(cat "$RUNDIR/sd.out"))" sh -c "[ $rc -eq 0 ] && grep -q 'mic1: ready' '$RUNDIR/sd.out'"
check "the shutdown found mic1 booting and waited (micd log)" grep -q "mic1: shutdown waits until the card is online (it is booting)" "$RUNDIR/micd.log"
check "mic1 was online in between (micd log)" sh -c "grep -E 'mic1: (booting|online) -> ' '$RUNDIR/micd.log' | tail -2 | tr '\n' ' ' | grep -q 'booting -> online.*online -> shutting_down'"

# Resume during a suspend waits for the suspend, then boots the cards.
micctl boot mic0 >/dev/null; micctl boot mic1 >/dev/null
micctl suspend > "$RUNDIR/suspend.out" 2>&1 & sp=$!
sleep 0.2
expect 0 "resumed" micctl resume
wait $sp
check "the suspend itself succeeded ($(head -1 "$RUNDIR/suspend.out"))" grep -q suspended "$RUNDIR/suspend.out"
check "resume waited for the suspend under way (micd log)" grep -q "OSPM resume waits for the suspend under way" "$RUNDIR/micd.log"
check "both cards online after resume" [ "$(state_of mic0) $(state_of mic1)" = "online online" ]

out=$(python3 -c "
import socket; s = socket.socket(socket.AF_UNIX); s.connect('$RUNDIR/micd.sock')
s.sendall(b'boot mic0 wait 5x\n'); print(s.recv(200).decode().replace('\n', ' ').strip())")
check "a malformed wait bound is refused, not taken for --no-wait ($out)" sh -c "echo '$out' | grep -q 'ERR 2 wait timeout must be'"
check "daemon responsive" micctl status
finish
