# Disruption under load: while the card's network, disk and console all
# carry traffic, the card is reset, shut down, suspended and resumed, and
# reset while booting, again and again.  micd must keep answering, never
# mark a device of this well-behaved card broken, leave no process or fd
# behind, and every device must work after the last boot.  All traffic
# stays in micd's private network namespace and the card's.
. "$(dirname "$0")/lib.sh"
for t in nsenter ping; do
    command -v $t >/dev/null || { say "SKIP: $t missing"; rm -rf "$RUNDIR"; exit 0; }
done
HOST_IP=10.98.0.1
CARD_IP=10.98.0.2
IMG=$RUNDIR/disk.img
truncate -s 32M "$IMG"
printf '[mic0]\nnet = 1\ndisk = %s\ncmdline = mic.ip=%s/24\n' "$IMG" "$CARD_IP" > "$RUNDIR/micd.conf"
start_micd --config "$RUNDIR/micd.conf"
hostns ip addr add "$HOST_IP/24" dev mic0
micctl wait mic0 ready --timeout 5 >/dev/null
micctl boot mic0 >/dev/null && micctl shutdown mic0 >/dev/null # lazy allocations settle
set -- $(micd_res); fd0=$1; th0=$2

card_ush() { local c=$1; shift; nsenter -t "$(card_os_pid "$c")" -U -m -- /bin/busybox "$@"; }
# Background load for about a second and a half on every device.
load() {
    timeout -k 2 1.5 nsenter -t "$MICD_PID" -n ping -q -f -s 1400 -W 1 "$CARD_IP" >/dev/null 2>&1 &
    lp="$!"
    # (the disk is a FUSE file of the card: only its user namespace may use it)
    timeout -k 2 1.5 nsenter -t "$(card_os_pid mic0)" -U -m -- /bin/busybox \
        dd if=/dev/zero of=/dev/vda bs=64k count=400 conv=fsync >/dev/null 2>&1 &
    lp="$lp $!"
    timeout -k 2 1.5 micctl console mic0 --linger 1 <<< 'yes chaos | head -c 3000000' >/dev/null 2>&1 &
    lp="$lp $!"
}
bad=0
for round in 1 2 3; do
    for action in reset shutdown suspend boot-reset; do
        micctl boot mic0 >/dev/null || { bad=$((bad + 1)); say "round $round: boot failed"; }
        load
        sleep 0.4
        case $action in
        reset) micctl reset mic0 >/dev/null ;;
        shutdown) micctl shutdown mic0 >/dev/null ;;
        suspend) micctl suspend >/dev/null && micctl resume >/dev/null && micctl shutdown mic0 >/dev/null ;;
        boot-reset) micctl reset mic0 >/dev/null && micctl boot mic0 --no-wait >/dev/null &&
                    sleep 0.005 && micctl reset mic0 >/dev/null ;;
        esac
        [ $? -eq 0 ] || { bad=$((bad + 1)); say "round $round: $action failed: $(state_of mic0)"; }
        check "round $round, $action: micd answers" micctl status
        # (a bare wait would wait for micd too)
        wait $lp
        st=$(state_of mic0)
        [ "$st" = ready ] || { micctl wait mic0 ready --timeout 3 >/dev/null || { bad=$((bad + 1)); say "not ready: $st"; }; }
    done
done
check "every transition under load succeeded" [ "$bad" -eq 0 ]
check "no device of the card was marked broken" sh -c "! grep -q 'device broken' '$RUNDIR/micd.log'"

# Everything works after the last boot.
micctl boot mic0 >/dev/null
# (a driver may report ready a few ms after the card is online)
check "devices ready" sh -c "for _ in \$(seq 50); do [ \$(micctl status mic0 --json | grep -o '\"state\":\"ready\"' | wc -l) -eq 3 ] && exit 0; sleep 0.05; done; exit 1"
check "network: ping card" hostns ping -c 2 -i 0.2 -W 2 "$CARD_IP"
head -c 1048576 /dev/urandom > "$RUNDIR/pat"
card_ush mic0 dd of=/dev/vda bs=64k seek=16 conv=fsync < "$RUNDIR/pat" 2>/dev/null
card_ush mic0 dd if=/dev/vda bs=64k skip=16 count=16 iflag=direct 2>/dev/null > "$RUNDIR/got"
check "disk: the card reads back what it wrote" cmp -s "$RUNDIR/pat" "$RUNDIR/got"
out=$(micctl console mic0 <<< 'echo still-$((6*7))' | tr -d '\r')
check "console: the shell answers" sh -c "echo '$out' | grep -qx still-42"
micctl shutdown mic0 >/dev/null
check "image holds the card's write after shutdown" \
    sh -c "dd if='$IMG' bs=64k skip=16 count=16 2>/dev/null | cmp -s - '$RUNDIR/pat'"
set -- $(micd_res); fd1=$1; th1=$2
say "before: fds=$fd0 threads=$th0; after: fds=$fd1 threads=$th1"
check "no fd growth" [ "$fd1" -le "$fd0" ]
check "no thread growth" [ "$th1" -le "$th0" ]
finish
