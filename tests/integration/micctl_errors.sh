# micctl's errors: unknown cards, wrong states, no daemon, usage; one
# daemon per run directory; the control socket is root-only by default.
. "$(dirname "$0")/lib.sh"
expect() { # expect RC PATTERN COMMAND...
    local rc=$1 pat=$2; shift 2
    out=$("$@" 2>&1); got=$?
    check "'$*' exits $rc ($got) and says '$pat': $out" sh -c "[ $got -eq $rc ] && echo \"\$1\" | grep -qi -- \"$pat\"" _ "$out"
}
expect 3 "not running" micctl status
expect 3 "not running" micctl boot mic0
expect 3 "not running" sh -c 'micctl console mic0 < /dev/null'
start_micd
micctl wait mic0 ready --timeout 2 >/dev/null
expect 4 "no card named 'mic7'" micctl status mic7
expect 4 "no card named 'mic7'" micctl boot mic7
expect 4 "no card named 'mic7'" sh -c 'micctl console mic7 < /dev/null'
expect 0 "once it is online" sh -c 'micctl console mic0 --linger 0.1 < /dev/null'
expect 1 "mic0 is ready; boot it first" micctl shutdown mic0
# the firmware held, so the card stays booting however fast a boot is
fw=$(json_field mic0 firmware_pid)
kill -STOP "$fw"
micctl boot mic0 --no-wait >/dev/null
expect 1 "mic0 is booting; wait or reset" micctl boot mic0
kill -CONT "$fw"
micctl wait mic0 online --timeout 5 >/dev/null
expect 1 "mic0 is online" micctl boot mic0
expect 1 "timed out: mic0 is online" micctl wait mic0 ready --timeout 0.1
expect 2 "unknown state" micctl wait mic0 sleeping
expect 2 "usage" micctl frobnicate
expect 2 "usage" micctl boot
expect 2 "wants seconds" micctl wait mic0 ready --timeout abc
expect 2 "wants seconds" micctl wait mic0 ready --timeout 1e9
# Raw protocol: one request per line, executed only when the line is whole.
raw() { python3 - "$RUNDIR/micd.sock" "$@" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
for part in sys.argv[2:]:
    if part.startswith("sleep:"):
        time.sleep(float(part[6:])); continue
    try:
        s.sendall(part.encode().decode("unicode_escape").encode())
    except OSError:
        pass  # micd answered and closed before the rest
s.settimeout(10)
out = b""
while True:
    try:
        b = s.recv(4096)
    except OSError:
        break
    if not b: break
    out += b
print(out.decode().strip().replace("\n", " "))
PY
}
expect 0 "ERR 2.*incomplete" raw "reset mic0"
check "an incomplete request is not executed" [ "$(state_of mic0)" = online ]
expect 0 "ERR 2.*longer than" raw "status $(head -c 600 /dev/zero | tr '\0' x)\n"
expect 0 "ERR 2.*0..86400000" raw "wait mic0 ready 99999999999\n"
expect 0 "ERR 2.*0..86400000" raw "wait mic0 ready 5x\n"
expect 0 "^OK" raw "sta" "sleep:0.3" "tus mic0\n"
# Silent clients do not hold the daemon up: 60 idle connections, then a
# status answers at once.
python3 - "$RUNDIR/micd.sock" <<'PY' & idle=$!
import socket, sys, time
socks = []
for _ in range(60):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); socks.append(s)
time.sleep(3)
PY
sleep 0.3
t0=$(mono_ms); micctl status >/dev/null; t1=$(mono_ms)
check "status answers within 0.5 s beside 60 idle connections ($((t1 - t0)) ms)" [ $((t1 - t0)) -lt 500 ]
wait $idle
# Waiters whose client went away free their slot: 70 killed waits, then a
# boot that waits is still accepted.
wp=""; for _ in $(seq 70); do micctl wait mic0 lost --timeout 3600 >/dev/null 2>&1 & wp="$wp $!"; done
sleep 1; kill $wp 2>/dev/null; wait $wp 2>/dev/null
expect 0 "mic0: ready" micctl shutdown mic0
check "socket is root-only" [ "$(stat -c %a "$RUNDIR/micd.sock")" = 600 ]
"$BIN/micd" --rundir "$RUNDIR" > "$RUNDIR/second.log" 2>&1
check "a second micd on the same run directory is refused" sh -c "grep -q 'another micd is running' $RUNDIR/second.log"
check "first daemon still answers" micctl status
expect 1 "cannot read" "$BIN/micd" --rundir "$RUNDIR/x" --config /nonexistent
# a configured group gets the socket too (group "daemon" exists on Debian)
mkdir -p "$RUNDIR/g"
printf '[daemon]\ngroup = daemon\n[mic0]\nnet = no\n' > "$RUNDIR/g.conf"
unshare --net setpriv --pdeathsig TERM "$BIN/micd" --rundir "$RUNDIR/g" --config "$RUNDIR/g.conf" > "$RUNDIR/g.log" 2>&1 &
gpid=$!
for _ in $(seq 1 100); do [ -S "$RUNDIR/g/micd.sock" ] && break; sleep 0.02; done
check "socket for root and the configured group" [ "$(stat -c '%a %G' "$RUNDIR/g/micd.sock")" = "660 daemon" ]
kill $gpid; wait $gpid 2>/dev/null
# autoboot with an image that cannot be read: tried once, the error shown
mkdir -p "$RUNDIR/a"
printf '[mic0]\nautoboot = yes\nimage = %s\nnet = no\n[mic1]\nautoboot = yes\nnet = no\n' "$RUNDIR/missing.img" > "$RUNDIR/a.conf"
unshare --net setpriv --pdeathsig TERM "$BIN/micd" --rundir "$RUNDIR/a" --config "$RUNDIR/a.conf" --image "$IMAGE" > "$RUNDIR/a.log" 2>&1 &
apid=$!
for _ in $(seq 1 100); do [ -S "$RUNDIR/a/micd.sock" ] && break; sleep 0.02; done
micctl --rundir "$RUNDIR/a" wait mic1 online --timeout 5 >/dev/null
sleep 1
n=$(grep -c "missing.img" "$RUNDIR/a.log")
check "a failed autoboot is tried once ($n log lines)" [ "$n" -eq 1 ]
check "status shows why autoboot failed" sh -c "micctl --rundir $RUNDIR/a status mic0 | grep -q 'autoboot: .*missing.img'"
kill $apid; wait $apid 2>/dev/null
printf '[mic0]\n[mic1]\n[mic2]\n[mic3]\n[mic4]\n[mic5]\n[mic6]\n[mic7]\n[mic8]\n' > "$RUNDIR/nine.conf"
expect 1 "too many cards" "$BIN/micd" --rundir "$RUNDIR/n" --config "$RUNDIR/nine.conf"
expect 2 "cards must be" "$BIN/micd" --rundir "$RUNDIR/n" --cards abc
finish
