# virtio-console end to end, driven through the host PTY as a person would.
. "$(dirname "$0")/lib.sh"
start_micd --cards 2
micctl wait mic0 ready --timeout 2 >/dev/null
micctl boot mic0 >/dev/null
LINK=$RUNDIR/mic0/console
check "console link in the run directory" [ -L "$LINK" ]
con() { micctl console mic0 --linger "${2:-0.5}" <<< "$1" | tr -d '\r'; }

out=$(con hostname)
check "hostname answers mic0" sh -c "echo '$out' | grep -qx mic0"
# A scripted session's output is the script's output and nothing else: no
# prompt, no echo, no terminal queries (busybox's line editing asks for the
# cursor position with ESC[6n), no \r; none of what earlier sessions left.
echo hostname | micctl console mic0 > "$RUNDIR/script.out"
check "scripted 'echo hostname | micctl console mic0' prints exactly mic0 ($(od -An -c "$RUNDIR/script.out" | tr -s ' ' | head -c 120))" sh -c "printf 'mic0\n' | cmp -s - '$RUNDIR/script.out'"
check "no ESC at all in a scripted session's output" sh -c "! grep -q \"\$(printf '\033')\" '$RUNDIR/script.out'"
printf 'echo one\nsleep 0.7; echo two; (exit 3)' | micctl console mic0 > "$RUNDIR/script2.out"
check "a script without a final newline, silent for longer than --linger, runs to its end" sh -c "printf 'one\ntwo\n' | cmp -s - '$RUNDIR/script2.out'"
out=$(echo 'cat; echo after-cat' | micctl console mic0)
check "a command of the script that reads stdin gets its end, and the script goes on ($out)" [ "$out" = after-cat ]
out=$(con "grep NSpid /proc/self/status")
check "card PID namespace: one level, small pid ($out)" sh -c "echo '$out' | grep -Eq '^NSpid:[[:space:]]+[0-9]{1,3}$'"
card_ns=$(con "readlink /proc/self/ns/pid" | grep '^pid:')
check "card pid namespace differs from the host's ($card_ns)" [ -n "$card_ns" -a "$card_ns" != "$(readlink /proc/self/ns/pid)" ]
# a config change end to end: the host changes the console's size, the
# card's driver gets the config interrupt and resizes its PTY
check "console-size accepted" micctl console-size mic0 100 40
out=$(con "stty size" 1)
check "card shell sees the new size ($out)" sh -c "echo '$out' | grep -qx '40 100'"
check "card log shows the config change" sh -c "micctl log mic0 | grep -q 'console config changed'"
expect_rc() { "$@" >/dev/null 2>&1; echo $?; }
check "console-size refuses nonsense" [ "$(expect_rc micctl console-size mic0 0 40)" = 2 ]
check "card OS log also goes to the console" sh -c "micctl log mic0 | grep -q 'probe virtio-console'"

# 10 MiB of output, intact and in order
micctl console mic0 --linger 2 <<< "seq 1 1500000" | tr -d '\r' | grep -E '^[0-9]+$' > "$RUNDIR/seq.out"
check "10 MiB of output arrive intact, in order ($(stat -c %s "$RUNDIR/seq.out") bytes)" sh -c "seq 1 1500000 | cmp -s - '$RUNDIR/seq.out'"

check "micctl console on a terminal: raw mode, Ctrl-] detaches" python3 "$MIC_SRC/tests/integration/console_io.py" "$LINK" escape "$BIN/micctl" mic0
check "the card's terminal follows the window: stty size 100 ms after each SIGWINCH shows the new size" python3 "$MIC_SRC/tests/integration/console_io.py" "$LINK" winch "$BIN/micctl" mic0
check "attach/detach cycles lose nothing" python3 "$MIC_SRC/tests/integration/console_io.py" "$LINK" attach

out=$(con "exit" 1; con "echo respawned-\$((6*7))")
check "shell respawns after exit" sh -c "echo '$out' | grep -q respawned-42"

# typing during a reboot
python3 "$MIC_SRC/tests/integration/console_io.py" "$LINK" type "$RUNDIR/stop" > "$RUNDIR/type.log" &
typer=$!
sleep 0.3
check "reset while typing" micctl reset mic0
check "status answers while typing" micctl status mic0
check "boot while typing" micctl boot mic0
sleep 0.3
touch "$RUNDIR/stop"; wait $typer
out=$(con "echo alive-\$((40+2))" 1)
check "console works after the reboot" sh -c "echo '$out' | grep -q alive-42"
check "daemon responsive" micctl status

# shutdown removes the device cleanly: the host sees the reset
micctl shutdown mic0 >/dev/null
check "card removed its console on shutdown" sh -c "micctl log mic0 | grep -q 'bus: remove virtio-console'"
check "DMA removed after the console (reverse probe order)" sh -c "micctl log mic0 | tail -5 | grep -A5 'remove virtio-console' | grep -q 'remove mic_x100_dma'"
check "host saw the card reset its console" grep -q "console device reset by the card" "$RUNDIR/micd.log"
check "second card has its own console" [ -L "$RUNDIR/mic1/console" ]
finish
