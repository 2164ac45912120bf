# virtio-fs: a card keeps its virtiofsd from answering micd.  Debian's
# virtiofsd serves a queue's requests one by one on one thread and looks at
# the vhost-user socket again only when they are done; the hostile card OS
# (tests/hostile: fswedge) queues 100 reads of almost 4 GiB of a sparse
# file, a minute and more of copying, then resets its share, so micd's
# GET_VRING_BASE goes unanswered.  micd must fail the call within its
# bound, mark the share broken with the reason, kill that virtiofsd (it
# would go on for the minute, holding the card's memory) and start a fresh
# one, answer `micctl status` throughout, and keep the card's console and
# the other card's share working; on the next boot (the real card OS) the
# share works again.
# A private mount namespace: the hostile card's share is a tmpfs, where a
# sparse file's holes read as zeros without taking memory.
[ -n "${MIC_WEDGE_NS:-}" ] || MIC_WEDGE_NS=1 exec unshare -m --propagation private bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
VIRTIOFSD=
for p in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd; do [ -x "$p" ] && VIRTIOFSD=$p && break; done
[ -n "$VIRTIOFSD" ] || { say "FAIL: virtiofsd missing (scripts/install-deps.sh)"; rm -rf "$RUNDIR"; exit 1; }
card_lsh() { card_ush "$1" sh -lc "$2"; }
dev_state() { # dev_state CARD TYPE
    micctl status "$1" --json | grep -o "\"type\":\"$2\",\"state\":\"[a-z]*\",\"reason\":\"[^\"]*\""
}
wait_dev() { # wait_dev CARD TYPE STATE [REASON-PATTERN]
    for _ in $(seq 1 200); do
        dev_state "$1" "$2" | grep -q "\"state\":\"$3\",\"reason\":\"${4:-}" && return 0; sleep 0.05
    done
    return 1
}
S0=$RUNDIR/share0 S1=$RUNDIR/share1
# micd's child for a share, and every virtiofsd process of it (virtiofsd
# serves from a child in a PID namespace of its own)
vfsd_pid() { pgrep -P "$MICD_PID" -f "^$VIRTIOFSD .*source=$1 -o" | head -1; }
vfsd_all() { pgrep -f "^$VIRTIOFSD .*source=$1 -o" | tr '\n' ' '; }
map_base() { awk 'NR==1{print $1 == 0 ? $2 : "bad"}' "/proc/$1/uid_map" 2>/dev/null; }
mkdir -p "$S0" "$S1"
chmod 711 "$RUNDIR"
mount -t tmpfs -o size=16m,mode=0755 wedge "$S1"
# the hostile card OS as init, the real one beside it for the next boot
mkdir -p "$RUNDIR/img/sbin"
cp "$BIN/mic-hostile-card" "$RUNDIR/img/sbin/"
"$BIN/mic-mkimage" --default --init /sbin/mic-hostile-card -o "$RUNDIR/hostile.img" "$RUNDIR/img" >/dev/null
cat > "$RUNDIR/micd.conf" <<EOF
[mic0]
fs = s0:$S0
[mic1]
image = $RUNDIR/hostile.img
cmdline = mic.hostile=fswedge
fs = h1:$S1
EOF
start_micd --config "$RUNDIR/micd.conf"
micctl wait mic0 ready --timeout 5 >/dev/null
micctl wait mic1 ready --timeout 5 >/dev/null
B0=$(map_base "$(vfsd_pid "$S0")") B1=$(map_base "$(vfsd_pid "$S1")")
chown "$B0:$B0" "$S0"; chown "$B1:$B1" "$S1"
micctl boot mic0 >/dev/null
micctl wait mic0 online --timeout 20 >/dev/null
check "mic0 mounts its share" card_lsh mic0 "mount -t virtiofs s0 /mnt"

old=$(vfsd_pid "$S1") old_all=$(vfsd_all "$S1")
micctl boot mic1 >/dev/null
for _ in $(seq 1 200); do grep -q 'fs wedge: .* queued' "$RUNDIR/micd.log" && break; sleep 0.05; done
check "hostile: the card queued its reads ($(grep -o '[0-9]* reads of [0-9]* MiB' "$RUNDIR/micd.log"))" grep -q 'fs wedge: 100 reads of [0-9]* MiB queued' "$RUNDIR/micd.log"
check "hostile: its virtiofsd serves them (the card's file is 1 TiB)" [ "$(stat -c %s "$S1/wedge" 2>/dev/null)" = $((1 << 40)) ]
# while the card holds virtiofsd and then micd waits on it: micd answers,
# the other card's share works
echo "from the host" > "$S0/during"
mic0_read=$(card_ush mic0 cat /mnt/during 2>/dev/null)
max=0 n=0 seen= t_end=$(($(mono_ms) + 15000))
killed="mic1: fs: vhost-user backend (pid $old) killed by signal 9"
while [ "$(mono_ms)" -lt "$t_end" ]; do
    t0=$(mono_ms)
    st=$(micctl status mic1 --json) || max=99999
    ms=$(($(mono_ms) - t0)); [ "$ms" -gt "$max" ] && max=$ms
    n=$((n + 1))
    echo "$st" | grep -q '"type":"fs","state":"broken","reason":"vhost-user backend gone: GET_VRING_BASE' && seen=$st
    [ -n "$seen" ] && grep -q "$killed" "$RUNDIR/micd.log" && break
    sleep 0.05
done
check "micd answered status $n times while virtiofsd was wedged, slowest $max ms (bound 500)" [ "$max" -le 500 ]
check "the other card's share read during the wedge" [ "$mic0_read" = "from the host" ]
check "status: mic1's share broken, with the reason" [ -n "$seen" ]
# (the hostile card OS sends no heartbeat: micd finds it lost after 5 s)
check "status then: mic1's console untouched" sh -c "echo '$seen' | grep -q '\"type\":\"console\",\"state\":\"ready\"'"
check "micd's call to the wedged virtiofsd failed" grep -q "mic1: fs: vhost-user backend gone: .*GET_VRING_BASE" "$RUNDIR/micd.log"
check "micd killed the wedged virtiofsd (pid $old)" grep -q "$killed" "$RUNDIR/micd.log"
alive() { local p; for p in $old_all; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
for _ in $(seq 1 40); do alive || break; sleep 0.05; done
left=$(for p in $old_all; do kill -0 "$p" 2>/dev/null && echo "$p"; done)
check "the wedged virtiofsd is gone, with its sandboxed child (${old_all% }; left: ${left:-none})" sh -c "[ \$(echo $old_all | wc -w) -ge 2 ] && [ -z '$left' ]"
check "the card's reset of its share was answered" sh -c "grep -q 'fs wedge: device reset answered 0' '$RUNDIR/micd.log'"
for _ in $(seq 1 200); do grep -q 'mic1: fs: vhost-user backend .* is back' "$RUNDIR/micd.log" && break; sleep 0.05; done
new=$(vfsd_pid "$S1")
check "micd started a fresh virtiofsd for mic1 (pid $new)" sh -c "[ -n '$new' ] && [ '$new' != '$old' ] && [ \"\$(grep -c 'mic1: fs: started vhost-user backend' '$RUNDIR/micd.log')\" -ge 2 ] && grep -q 'mic1: fs: vhost-user backend .* is back' '$RUNDIR/micd.log'"
check "the fresh one: the card's range again" [ "$(map_base "$new")" = "$B1" ]

echo "after the wedge" > "$S0/after"
check "mic0's share ready and read after the wedge" sh -c "[ \"\$(nsenter -t $(card_os_pid mic0) -U -m -p -- /bin/busybox cat /mnt/after)\" = 'after the wedge' ]"
check "mic0's share ready" wait_dev mic0 fs ready

# the card stops being hostile: the next boot runs the real card OS
micctl reset mic1 >/dev/null
micctl wait mic1 ready --timeout 10 >/dev/null
micctl boot mic1 >/dev/null
micctl wait mic1 online --timeout 20 >/dev/null
check "next boot of mic1 (real card OS) mounts the share" card_lsh mic1 "mount -t virtiofs h1 /mnt"
echo "host to mic1" > "$S1/hello"
check "and reads it" [ "$(card_ush mic1 cat /mnt/hello 2>/dev/null)" = "host to mic1" ]
card_lsh mic1 "echo 'mic1 to host' > /mnt/back"
check "and writes it" [ "$(cat "$S1/back" 2>/dev/null)" = "mic1 to host" ]
check "status: mic1's share ready" wait_dev mic1 fs ready
# micd stops every virtiofsd with its sandboxed child (a zombie for a
# moment: polled)
kids=$(descendants "$MICD_PID")
kill -TERM "$MICD_PID"; wait "$MICD_PID" 2>/dev/null; MICD_PID=
all_gone() {
    for _ in $(seq 1 60); do
        left=""; for p in $kids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
        [ -z "$left" ] && return 0; sleep 0.05
    done
    return 1
}
check "micd stopped: no card process and no virtiofsd left" all_gone
umount "$S1"
finish
