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
micctl boot mic0 --no-wait >/dev/null
expect 1 "mic0 is booting; wait or reset" micctl boot mic0
micctl wait mic0 online --timeout 5 >/dev/null
expect 1 "mic0 is online" micctl boot mic0
expect 1 "timed out: mic0 is online" micctl wait mic0 ready --timeout 0.1
expect 2 "unknown state" micctl wait mic0 sleeping
expect 2 "usage" micctl frobnicate
expect 2 "usage" micctl boot
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
finish
