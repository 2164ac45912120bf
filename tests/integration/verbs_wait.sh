# Verbs that wait for what they need: a boot issued while micd is still
# starting, or while the card is shutting down, waits for the card and then
# boots; --no-wait refuses at once, --timeout bounds the wait, a card lost
# meanwhile ends it with the reason, an interrupted micctl leaves the card
# alone; shutdown waits for a boot under way, resume for a suspend.
. "$(dirname "$0")/lib.sh"
# mic0 ignores shutdown requests: its shutdown lasts shutdown_timeout_ms,
# then the host resets it (a transition long enough to be waited for).
printf '[daemon]\nshutdown_timeout_ms = 1500\n[mic0]\nnet = no\ncmdline = mic.ignore_shutdown\n[mic1]\nnet = no\n' > "$RUNDIR/w.conf"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
expect() { # expect RC PATTERN COMMAND...: exit code and message
    local rc=$1 pat=$2; shift 2
    out=$("$@" 2>&1); got=$?
    check "'$*' exits $rc ($got) and says '$pat': $out" sh -c "[ $got -eq $rc ] && echo \"\$1\" | grep -q -- \"$pat\"" _ "$out"
}

# As a user would: micd in the background and a boot in the same breath,
# before the control socket exists or the card's firmware is up.
unshare --net setpriv --pdeathsig TERM "$BIN/micd" --rundir "$RUNDIR" --config "$RUNDIR/w.conf" >>"$RUNDIR/micd.log" 2>&1 &
MICD_PID=$!
expect 0 "mic0: online" micctl boot mic0
check "the boot found the card still resetting and waited (micd log)" grep -q "mic0: boot waits until the card is ready (it is resetting)" "$RUNDIR/micd.log"
expect 0 "mic1: online" micctl boot mic1

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

# Shutdown during a boot waits for the card to come online, then shuts it down.
micctl shutdown mic1 >/dev/null
micctl boot mic1 --no-wait >/dev/null
expect 0 "mic1: ready" micctl shutdown mic1
check "the shutdown found mic1 booting and waited (micd log)" grep -q "mic1: shutdown waits until the card is online (it is booting)" "$RUNDIR/micd.log"

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
