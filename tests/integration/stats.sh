# micctl stats: known traffic over the console, the network and the disk
# shows up in the host's counters (at least what was sent, not wildly more);
# DMA channels count a large transfer; uptime, boots, crashes, memory and
# processes; counters survive the card's own device resets (shutdown, boot)
# and are zeroed by a card reset; --watch into a pipe prints a block per
# interval.  Traffic stays in micd's network namespace and the card's.
. "$(dirname "$0")/lib.sh"
HOST_IP=10.96.0.1
CARD_IP=10.96.0.2
IMG=$RUNDIR/disk.img
truncate -s 32M "$IMG"
# net_dma, disk_dma: frames and disk writes from 16 KiB up go by the
# device's DMA channel (the seed's path), so its counters show a network
# transfer and the disk's writes too.
printf '[mic0]\nnet = 1\nnet_dma = 1\ndisk_dma = 1\ncmdline = mic.ip=%s/24\ndisk = %s\nmemory_mb = 400\npids_max = 300\n' \
    "$CARD_IP" "$IMG" > "$RUNDIR/micd.conf"
start_micd --config "$RUNDIR/micd.conf"
hostns ip addr add "$HOST_IP/24" dev mic0
micctl wait mic0 ready --timeout 5 >/dev/null

# snap NAME: the card's stats now, saved.  st EXPR [NAME]: EXPR over them,
# c = now, p = snapshot NAME, keys flattened ("net.to_card.bytes",
# "dma.block.bytes", "boots"); d(key) = c[key] - p[key].
cat > "$RUNDIR/st.py" <<'EOF'
import json, sys
def flat(doc):
    card = doc["cards"][0]
    f = {k: v for k, v in card.items() if not isinstance(v, (list, dict))}
    for x in card["devices"]:
        for k, v in x.items():
            if isinstance(v, dict):
                f.update({"%s.%s.%s" % (x["type"], k, kk): vv for kk, vv in v.items()})
            elif k != "type":
                f["%s.%s" % (x["type"], k)] = v
    for x in card["dma"]:
        f.update({"dma.%s.%s" % (x["user"], k): v for k, v in x.items() if k not in ("user", "channel")})
    return f
c = flat(json.load(sys.stdin))
p = flat(json.load(open(sys.argv[2]))) if len(sys.argv) > 2 else {}
d = lambda k: c[k] - p[k]
counters = [k for k in c if k.split(".")[0] in ("console", "net", "block", "dma")]
v = eval(sys.argv[1])
print(v)
sys.exit(0 if v is True else 1)
EOF
snap() { micctl stats mic0 --json > "$RUNDIR/$1.json"; }
st() { micctl stats mic0 --json | python3 "$RUNDIR/st.py" "$1" ${2:+"$RUNDIR/$2.json"} >/dev/null; }
val() { micctl stats mic0 --json | python3 "$RUNDIR/st.py" "$1" 2>/dev/null; true; }

check "stats --json is valid JSON with the card" st "c['name'] == 'mic0'"
check "before any boot: every device and DMA counter is 0" st "all(c[k] == 0 for k in counters)"
check "before any boot: 0 boots, uptime 0" st "c['boots'] == 0 and c['uptime_ms'] == 0"
check "the firmware alone uses memory (>0, within the limit) and a process" \
    st "0 < c['memory_bytes'] <= c['memory_limit_bytes'] and 1 <= c['pids'] <= c['pids_limit']"
check "the limits are those of the card's cgroup (memory_mb = 400, pids_max = 300)" \
    st "c['memory_limit_bytes'] == 400 << 20 and c['pids_limit'] == 300"

micctl boot mic0 >/dev/null
img=$(stat -L -c %s "$IMAGE")
check "boots counts the boot" st "c['boots'] == 1 and c['state'] == 'online'"
check "the image download went through DMA channel 0: $img bytes, engine + CPU edges" \
    st "c['dma.download.bytes'] + c['dma.download.cpu_bytes'] == $img and c['dma.download.bytes'] > $img // 2 and c['dma.download.descriptors'] > 0 and c['dma.download.busy_ms'] > 0"
u1=$(val "c['uptime_ms']")
sleep 0.5
check "uptime grows with time ($u1 ms, then $(val "c['uptime_ms']") ms)" st "c['uptime_ms'] >= $u1 + 450"
check "the booted card uses more memory and processes, within its limits" \
    st "0 < c['memory_bytes'] <= c['memory_limit_bytes'] and 2 <= c['pids'] <= c['pids_limit']"

# console: the host PTY is raw, so the bytes typed reach the card as they
# are, followed by the end-of-file bytes (^D) micctl sends a scripted
# session's shell (one, and at most 16 more while a command of the script
# still runs: tools/micctl.c); the shell prints the marker
marker="stats-marker-$$-$RANDOM"
line="echo $marker"
snap con0
out=$(micctl console mic0 --linger 1 <<< "$line" | tr -d '\r')
check "the card echoed the marker" sh -c "echo '$out' | grep -qx '$marker'"
check "console to_card counted the ${#line}+1 bytes typed and micctl's end of file" \
    st "${#line} + 2 <= d('console.to_card.bytes') <= ${#line} + 1 + 17" con0
check "console from_card counted the echo and the output, not wildly more" \
    st "2 * ${#marker} <= d('console.from_card.bytes') <= 65536" con0

# network: 10 pings of 1000 bytes each way (1042-byte frames)
snap net0
hostns ping -c 10 -i 0.1 -W 2 -s 1000 "$CARD_IP" >/dev/null
check "ping: 10 frames to the card counted (1042 bytes each), not wildly more" \
    st "10 <= d('net.to_card.packets') <= 30 and 10420 <= d('net.to_card.bytes') <= 10420 + 20 * 1500" net0
check "ping: 10 replies from the card counted, not wildly more" \
    st "10 <= d('net.from_card.packets') <= 30 and 10420 <= d('net.from_card.bytes') <= 10420 + 20 * 1500" net0
check "ping: nothing dropped" st "d('net.to_card.drops') == 0 and d('net.from_card.drops') == 0" net0

# 8 MiB host -> card over TCP (GSO frames: large copies go by DMA)
cat > "$RUNDIR/xfer.py" <<'EOF'
import socket, sys
mode, addr, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "recv":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(1); s.settimeout(30)
    open(sys.argv[5], "w").close()
    c, _ = s.accept(); c.settimeout(30)
    got = 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        got += len(b)
    sys.exit(0 if got == n else 1)
else:
    s = socket.create_connection((addr, port), timeout=30)
    s.sendall(b"x" * n)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
EOF
N=$((8 << 20))
snap tcp0
rm -f "$RUNDIR/ready"
nsenter -t "$(card_os_pid mic0)" -n timeout 60 python3 "$RUNDIR/xfer.py" recv "$CARD_IP" 5001 $N "$RUNDIR/ready" &
r=$!
for _ in $(seq 100); do [ -e "$RUNDIR/ready" ] && break; sleep 0.05; done
hostns timeout 60 python3 "$RUNDIR/xfer.py" send "$CARD_IP" 5001 $N
wait $r
check "8 MiB host -> card over TCP arrived" [ $? -eq 0 ]
check "net to_card bytes: at least the 8 MiB, at most 20% headers more" \
    st "$N <= d('net.to_card.bytes') <= $N * 1.2" tcp0
check "the net device's DMA channel moved part of it" \
    st "0 < d('dma.net.bytes') <= d('net.to_card.bytes') + d('net.from_card.bytes') and d('dma.net.busy_ms') > 0" tcp0

# block: 4 MiB written and flushed, 4 MiB read back with direct I/O
card_ush() { nsenter -t "$(card_os_pid mic0)" -U -m -p -- /bin/busybox "$@"; }
for _ in $(seq 100); do card_ush test -s /dev/vda 2>/dev/null && break; sleep 0.05; done
snap blk0
card_ush dd if=/dev/zero of=/dev/vda bs=1M count=4 seek=2 conv=fsync 2>/dev/null
check "block: 4 MiB written, counted (not wildly more), flushed, no error" \
    st "4 << 20 <= d('block.write_bytes') <= 5 << 20 and d('block.writes') >= 4 and d('block.flushes') >= 1 and d('block.errors') == 0" blk0
snap blk1
card_ush dd if=/dev/vda of=/dev/null bs=1M count=4 skip=8 iflag=direct 2>/dev/null
check "block: 4 MiB read, counted, not wildly more" \
    st "4 << 20 <= d('block.read_bytes') <= 5 << 20 and d('block.reads') >= 4 and d('block.errors') == 0" blk1
check "block: its DMA channel moved most of the 8 MiB" \
    st "(4 << 20) <= d('dma.block.bytes') <= (8 << 20) and d('dma.block.descriptors') > 0 and d('dma.block.busy_ms') > 0" blk0

# the card's own device resets (shutdown, boot) keep the counters
snap up1
micctl shutdown mic0 >/dev/null
check "shutdown: uptime 0" st "c['uptime_ms'] == 0"
micctl boot mic0 >/dev/null
check "reboot without a card reset: no counter went down" st "all(c[k] >= p[k] for k in counters)" up1
check "boots counts the second boot, the download went through DMA again" \
    st "c['boots'] == 2 and d('dma.download.bytes') > $img // 2" up1

# a crash: the card OS killed
kill -9 "$(card_os_pid mic0)"
micctl wait mic0 lost --timeout 2 >/dev/null
check "a card OS that died counts as a crash" st "c['crashes'] == 1 and c['state'] == 'lost'"

# a card reset zeroes them, like hardware counters; boots and crashes are micd's
micctl reset mic0 >/dev/null
check "card reset: every device and DMA counter is 0 again" st "all(c[k] == 0 for k in counters)"
check "card reset: boots and crashes kept, uptime 0" st "c['boots'] == 2 and c['crashes'] == 1 and c['uptime_ms'] == 0"
micctl boot mic0 >/dev/null
hostns ping -c 2 -i 0.1 -W 2 "$CARD_IP" >/dev/null
check "counting again after the reset" st "c['boots'] == 3 and c['net.to_card.packets'] >= 2 and c['net.from_card.packets'] >= 2"

# --watch into a pipe: a block per interval, no escape sequences
timeout 2.5 micctl stats mic0 --json --watch 1 | cat > "$RUNDIR/watch.json"
check "--watch 1 --json into a pipe: 2 or 3 JSON documents in 2.5 s" python3 -c "
import json, sys
docs = [json.loads(l) for l in open('$RUNDIR/watch.json')]
sys.exit(0 if 2 <= len(docs) <= 3 and all(d['cards'][0]['name'] == 'mic0' for d in docs) else 1)"
timeout 2.5 micctl stats --watch 1 | cat > "$RUNDIR/watch.txt"
check "--watch 1 into a pipe: 2 or 3 text blocks, no escape sequences" \
    sh -c "n=\$(grep -c '^mic0: online' '$RUNDIR/watch.txt'); [ \$n -ge 2 ] && [ \$n -le 3 ] && ! grep -q \$(printf '\\033') '$RUNDIR/watch.txt'"
check "stats of an unknown card: exit 4" sh -c "micctl stats mic9 >/dev/null 2>&1; [ \$? -eq 4 ]"
finish
