# virtio-net end to end: the card's eth0 <-> the host TAP mic0.  All traffic
# stays inside micd's private network namespace (start_micd) and the card's
# own; no address is ever put on the machine's namespace.
. "$(dirname "$0")/lib.sh"
HOST_IP=10.99.0.1
CARD_IP=10.99.0.2
printf '[mic0]\nnet = 1\ncmdline = mic.ip=%s/24\n' "$CARD_IP" > "$RUNDIR/micd.conf"
start_micd --config "$RUNDIR/micd.conf"
cardns() { nsenter -t "$(card_os_pid mic0)" -n "$@"; }

check "host TAP mic0 is up in micd's namespace" sh -c "nsenter -t $MICD_PID -n ip -o link show mic0 | grep -q ',UP'"
check "micd runs in a network namespace of its own" \
    [ "$(readlink /proc/$MICD_PID/ns/net)" != "$(readlink /proc/self/ns/net)" ]
# (sysfs stays the machine's under nsenter -n; ip and /proc/net follow it)
tap_mac=$(hostns ip -o link show mic0 | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/')
check "the TAP is not in the test's namespace" \
    sh -c "! ip -o link | grep -qi '$tap_mac'"
hostns ip addr add "$HOST_IP/24" dev mic0

micctl wait mic0 ready --timeout 5 >/dev/null
micctl boot mic0 >/dev/null
check "net device ready in status --json" sh -c "micctl status mic0 --json | grep -q '\"type\":\"net\",\"state\":\"ready\"'"
check "card log: probe virtio-net with its address" sh -c "micctl log mic0 | grep -q 'probe virtio-net: eth0, $CARD_IP/24'"
check "card eth0 is up with $CARD_IP" sh -c "nsenter -t $(card_os_pid mic0) -n ip -o addr show eth0 | grep -q 'inet $CARD_IP/24'"
check "card eth0 has the MAC from the config space" \
    sh -c "nsenter -t $(card_os_pid mic0) -n ip -o link show eth0 | grep -q 'link/ether 02:4d:49:43:00:00 '"

check "ping host -> card" hostns ping -c 3 -i 0.2 -W 2 "$CARD_IP"
check "ping card -> host" cardns ping -c 3 -i 0.2 -W 2 "$HOST_IP"
check "ping with 8000-byte payload (fragments) host -> card" hostns ping -c 2 -i 0.2 -W 2 -s 8000 "$CARD_IP"
check "ping with 8000-byte payload card -> host" cardns ping -c 2 -i 0.2 -W 2 -s 8000 "$HOST_IP"
check "card's busybox ping through the console" \
    bash -c "micctl console mic0 --linger 2 <<< 'ping -c 2 $HOST_IP' | tr -d '\r' | grep -q '2 packets received'"

# 20 MiB each way over TCP, byte for byte; the host's python3 runs in the
# card's network namespace only (its files stay the host's).
cat > "$RUNDIR/xfer.py" <<'EOF'
import socket, sys, time
mode, addr, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mode == "recv":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(1); s.settimeout(30)
    open(path + ".ready", "w").close()
    c, _ = s.accept(); c.settimeout(30)
    with open(path, "wb") as f:
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            f.write(b)
else:
    s = socket.create_connection((addr, port), timeout=30)
    with open(path, "rb") as f:
        s.sendall(f.read())
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
EOF
head -c 20M /dev/urandom > "$RUNDIR/data"
# xfer RECV_NS SEND_NS ADDR PORT OUT
xfer() {
    rm -f "$RUNDIR/$5" "$RUNDIR/$5.ready"
    $1 timeout 60 python3 "$RUNDIR/xfer.py" recv "$3" "$4" "$RUNDIR/$5" &
    local r=$!
    for _ in $(seq 100); do [ -e "$RUNDIR/$5.ready" ] && break; sleep 0.05; done
    $2 timeout 60 python3 "$RUNDIR/xfer.py" send "$3" "$4" "$RUNDIR/data"
    wait $r
}
# tapstat FIELD: mic0's counter from /proc/net/dev (1 rx bytes, 2 rx packets,
# 9 tx bytes, 10 tx packets)
tapstat() { hostns awk -v f="$1" '$1 == "mic0:" { print $(f + 1) }' /proc/net/dev; }
# mark BYTES PACKETS, then avg_since: mean frame size counted since the mark
mark() { m_b=$1 m_p=$2 b0=$(tapstat "$1") p0=$(tapstat "$2"); }
avg_since() { echo $(( ($(tapstat $m_b) - b0) / ($(tapstat $m_p) - p0 + 1) )); }
mark 1 2
xfer hostns cardns "$HOST_IP" 5001 c2h
check "20 MiB card -> host over TCP, byte for byte" cmp -s "$RUNDIR/data" "$RUNDIR/c2h"
avg=$(avg_since)
check "card -> host TCP went as GSO frames larger than the MTU (avg $avg bytes)" [ "$avg" -gt 3000 ]
mark 9 10
xfer cardns hostns "$CARD_IP" 5002 h2c
check "20 MiB host -> card over TCP, byte for byte" cmp -s "$RUNDIR/data" "$RUNDIR/h2c"
avg=$(avg_since)
check "host -> card TCP went as GSO frames larger than the MTU (avg $avg bytes)" [ "$avg" -gt 3000 ]
# Without net_dma the frames cross between the TAPs and card memory with no
# bounce buffer and no DMA (docs/architecture.md 3.10): 40 MiB went through
# the device and its DMA channel moved nothing.
cat > "$RUNDIR/netdma.py" <<'EOF'
import json, sys
c = json.load(sys.stdin)["cards"][0]
d = [x for x in c["devices"] if x["type"] == "net"][0]
ch = [x for x in c["dma"] if x["user"] == "net"]
tot = d["to_card"]["bytes"] + d["from_card"]["bytes"]
sys.exit(0 if tot >= 40 << 20 and ch and ch[0]["bytes"] == 0 else 1)
EOF
check "frames crossed without the DMA channel (net_dma off)" \
    sh -c "micctl stats mic0 --json | python3 '$RUNDIR/netdma.py'"
check "net device still ready after the transfers" sh -c "micctl status mic0 --json | grep -q '\"type\":\"net\",\"state\":\"ready\"'"

# shutdown removes eth0 cleanly; the next boot brings it back
micctl shutdown mic0 >/dev/null
check "card removed virtio-net on shutdown" sh -c "micctl log mic0 | grep -q 'bus: remove virtio-net'"
check "host saw the card reset its net device" grep -q "net device reset by the card" "$RUNDIR/micd.log"
check "host TAP survives the card's shutdown" hostns ip link show mic0
check "host TAP has no carrier while the card is down" sh -c "nsenter -t $MICD_PID -n ip link show mic0 | grep -q NO-CARRIER"
micctl boot mic0 >/dev/null
check "eth0 is back after the next boot" sh -c "nsenter -t $(card_os_pid mic0) -n ip -o addr show eth0 | grep -q 'inet $CARD_IP/24'"
check "ping host -> card after the reboot" hostns ping -c 3 -i 0.2 -W 2 "$CARD_IP"
check "host TAP has carrier again" sh -c "nsenter -t $MICD_PID -n ip link show mic0 | grep -q LOWER_UP"
xfer hostns cardns "$HOST_IP" 5003 c2h2
check "TCP after the reboot, byte for byte" cmp -s "$RUNDIR/data" "$RUNDIR/c2h2"
micctl reset mic0 >/dev/null
micctl boot mic0 >/dev/null
check "ping after a reset and boot" hostns ping -c 2 -i 0.2 -W 2 "$CARD_IP"
finish
