# The host end of each card's link (host_ip, bridge) and the card's default
# route (mic.gw=).  Every address lives in micd's private network namespace
# (start_micd), the cards' own, or FAR, a namespace this test makes.
. "$(dirname "$0")/lib.sh"
FAR_PID=
cleanup() { [ -z "$FAR_PID" ] || kill "$FAR_PID" 2>/dev/null; }
trap 'cleanup; stop_micd >/dev/null 2>&1; rm -rf "$RUNDIR"' INT TERM

# host_ip and bridge together: micd refuses the config and says why.
printf '[mic0]\nhost_ip = 10.96.0.1/24\nbridge = brmic\n' > "$RUNDIR/both.conf"
out=$(timeout 10 "$BIN/micd" --rundir "$RUNDIR/both" --config "$RUNDIR/both.conf" 2>&1)
check "micd refuses host_ip and bridge together" [ $? -ne 0 ]
check "... saying so" grep -q "host_ip and bridge exclude each other" <<< "$out"
printf '[mic0]\nhost_ip = 10.96.0.1\n' > "$RUNDIR/bad.conf"
check "host_ip without a prefix length is a config error" \
    sh -c "! timeout 10 '$BIN/micd' --rundir '$RUNDIR/bad' --config '$RUNDIR/bad.conf' 2>/dev/null"

# mic0: an address on its TAP, and a default route in the card via it.
# mic1: a port of the bridge brmic, which does not exist yet.
cat > "$RUNDIR/micd.conf" <<'CONF'
[mic0]
cmdline = mic.ip=10.96.0.2/24 mic.gw=10.96.0.1
host_ip = 10.96.0.1/24
[mic1]
cmdline = mic.ip=10.97.0.2/24
bridge = brmic
CONF
start_micd --config "$RUNDIR/micd.conf"
cardns() { local c=$1; shift; nsenter -t "$(card_os_pid "$c")" -n "$@"; }
has_addr() { hostns ip -o addr show dev mic0 | grep -q 'inet 10.96.0.1/24'; }
master_of() { hostns ip -o link show dev "$1" | sed -nE 's/.* master ([^ ]+) .*/\1/p'; }

check "mic0's TAP has host_ip as soon as micd runs" has_addr
check "mic0's TAP is up" sh -c "nsenter -t $MICD_PID -n ip -o link show mic0 | grep -q ',UP'"
check "missing bridge: error in micctl status" \
    sh -c "micctl status mic1 | grep -q 'link error: bridge brmic does not exist'"
check "missing bridge: error in status --json" \
    sh -c "micctl status mic1 --json | grep -q '\"link_error\":\"bridge brmic does not exist\"'"
check "missing bridge: error in micd's log" grep -q "mic1: host end of the link: bridge brmic does not exist" "$RUNDIR/micd.log"
check "mic0 has no link error" sh -c "micctl status mic0 --json | grep -q '\"link_error\":\"\"'"

# FAR: another subnet behind micd's namespace (which routes between them).
unshare --net sleep 600 &
FAR_PID=$!
sleep 0.1
farns() { nsenter -t "$FAR_PID" -n "$@"; }
hostns ip link add vfar type veth peer name vfar1 netns "$FAR_PID"
hostns ip addr add 10.98.0.1/24 dev vfar
hostns ip link set vfar up
hostns sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
farns ip link set lo up
farns ip addr add 10.98.0.2/24 dev vfar1
farns ip link set vfar1 up
farns ip route add 10.96.0.0/24 via 10.98.0.1

micctl wait mic0 ready --timeout 10 >/dev/null
micctl boot mic0 >/dev/null
check "ping card -> host_ip, no manual ip" cardns mic0 ping -q -c 2 -i 0.2 -W 2 10.96.0.1
check "ping host -> card" hostns ping -q -c 2 -i 0.2 -W 2 10.96.0.2
check "card's default route is via mic.gw" \
    sh -c "nsenter -t $(card_os_pid mic0) -n ip route show default | grep -q '^default via 10.96.0.1 dev eth0'"
check "card log names the gateway" sh -c "micctl log mic0 | grep -q 'probe virtio-net: eth0, 10.96.0.2/24 via 10.96.0.1'"
check "card reaches another subnet through its gateway" cardns mic0 ping -q -c 2 -i 0.2 -W 2 10.98.0.2

# The address comes back with every boot, even if taken away meanwhile.
micctl shutdown mic0 >/dev/null
hostns ip addr flush dev mic0
check "(address flushed while the card is down)" sh -c "! nsenter -t $MICD_PID -n ip -o addr show dev mic0 | grep -q 'inet '"
micctl boot mic0 >/dev/null
check "host_ip back after the next boot" has_addr
check "ping card -> host after the reboot" cardns mic0 ping -q -c 2 -i 0.2 -W 2 10.96.0.1
micctl reset mic0 >/dev/null
micctl boot mic0 >/dev/null
check "host_ip still there after reset + boot" has_addr
check "ping card -> host after reset + boot" cardns mic0 ping -q -c 2 -i 0.2 -W 2 10.96.0.1
check "ping host -> card after reset + boot" hostns ping -q -c 2 -i 0.2 -W 2 10.96.0.2
check "default route after reset + boot reaches the other subnet" cardns mic0 ping -q -c 2 -i 0.2 -W 2 10.98.0.2

# The bridge, with an address and a second port leading to FAR.
hostns ip link add brmic type bridge
hostns ip addr add 10.97.0.1/24 dev brmic
hostns ip link set brmic up
hostns ip link add vbr type veth peer name vbr1 netns "$FAR_PID"
hostns ip link set vbr master brmic
hostns ip link set vbr up
farns ip addr add 10.97.0.3/24 dev vbr1
farns ip link set vbr1 up
micctl wait mic1 ready --timeout 10 >/dev/null
micctl boot mic1 >/dev/null
check "mic1's TAP is a port of brmic once the bridge exists" [ "$(master_of mic1)" = brmic ]
check "the link error is gone" sh -c "micctl status mic1 --json | grep -q '\"link_error\":\"\"'"
check "mic1's TAP has no address of its own" sh -c "! nsenter -t $MICD_PID -n ip -o addr show dev mic1 | grep -q 'inet '"
check "ping the bridge's address -> card" hostns ping -q -c 2 -i 0.2 -W 2 10.97.0.2
check "ping card -> the bridge's address" cardns mic1 ping -q -c 2 -i 0.2 -W 2 10.97.0.1
check "ping card -> another port of the bridge" cardns mic1 ping -q -c 2 -i 0.2 -W 2 10.97.0.3
micctl reset mic1 >/dev/null
micctl boot mic1 >/dev/null
check "still a port of brmic after reset + boot" [ "$(master_of mic1)" = brmic ]
check "ping the bridge -> card after reset + boot" hostns ping -q -c 2 -i 0.2 -W 2 10.97.0.2
# A bridge made anew while the card is down: the next boot joins it.
micctl shutdown mic1 >/dev/null
hostns ip link del brmic
hostns ip link add brmic type bridge
hostns ip addr add 10.97.0.1/24 dev brmic
hostns ip link set brmic up
check "(the TAP left the deleted bridge)" [ -z "$(master_of mic1)" ]
micctl boot mic1 >/dev/null
check "a port of the new brmic after the next boot" [ "$(master_of mic1)" = brmic ]
check "ping the new bridge -> card" hostns ping -q -c 2 -i 0.2 -W 3 10.97.0.2
cleanup
finish
