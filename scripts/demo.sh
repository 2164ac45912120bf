#!/bin/bash
# The demo: start micd with one simulated card, boot it, and show what works.
# Usage: scripts/demo.sh [BUILD_DIR]    (run as root; `make demo` does this)
set -u
BIN=$(cd "${1:-build}/bin" && pwd)
export MIC_RUNDIR=$(mktemp -d /tmp/micstack-demo.XXXXXX)
# the card's state directory (its ssh host key) stays with the demo too
export MIC_STATEDIR=$MIC_RUNDIR/state
export PATH="$BIN:$PATH"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# mic0's disk: a small ext4 image with one file, made on the host.
DISK=$MIC_RUNDIR/disk.img
truncate -s 16M "$DISK"
mkfs.ext4 -F -q "$DISK"
echo "hello from the host, written by debugfs" > "$MIC_RUNDIR/hello.txt"
debugfs -w -R "write $MIC_RUNDIR/hello.txt /hello.txt" "$DISK" >/dev/null 2>&1
# micd gets a network namespace of its own (unshare execs it, so $! is micd):
# its TAP mic0 and the addresses below never touch this machine's network.
# a key for ssh into the card, the demo's own (never ~/.ssh)
ssh-keygen -q -t ed25519 -N '' -f "$MIC_RUNDIR/id"
# a host directory shared with the card through virtiofsd and virtio-fs;
# virtiofsd runs as the card's root, host uid 2^30 (mic0's id range), which
# must own it (docs/architecture.md 3.22)
SHARE=$MIC_RUNDIR/share
mkdir -p "$SHARE" && echo "a file of the host's, shared" > "$SHARE/from-host.txt"
chown -R 1073741824:1073741824 "$SHARE" && chmod 0755 "$MIC_RUNDIR"
printf '[mic0]\ncmdline = mic.ip=10.77.0.2/24\nhost_ip = 10.77.0.1/24\ndisk = %s\nssh_authorized_keys = %s/id.pub\nfs = share:%s\n' "$DISK" "$MIC_RUNDIR" "$SHARE" > "$MIC_RUNDIR/micd.conf"
# mic1's disk: a qcow2 image served by qemu-storage-daemon over vhost-user,
# a backend micd starts (the socket path comes in MIC_VHOST_SOCKET) and
# restarts should it die
QCOW=$MIC_RUNDIR/disk1.qcow2
qemu-img create -q -f qcow2 "$QCOW" 32M
printf '#!/bin/sh\nexec qemu-storage-daemon --blockdev driver=file,node-name=file0,filename=%s --blockdev driver=qcow2,node-name=disk0,file=file0 --export type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path="$MIC_VHOST_SOCKET",writable=on\n' "$QCOW" > "$MIC_RUNDIR/qsd.sh"
chmod +x "$MIC_RUNDIR/qsd.sh"
printf '[mic1]\ndisk_vhost_user = %s/qsd.sock\ndisk_vhost_user_cmd = %s/qsd.sh\n' "$MIC_RUNDIR" "$MIC_RUNDIR" >> "$MIC_RUNDIR/micd.conf"
unshare --net "$BIN/micd" --rundir "$MIC_RUNDIR" --config "$MIC_RUNDIR/micd.conf" > "$MIC_RUNDIR/micd.log" 2>&1 &
MICD=$!
hostnet() { nsenter -t "$MICD" -n "$@"; }
cleanup() { kill "$MICD" 2>/dev/null; wait "$MICD" 2>/dev/null; rm -rf "$MIC_RUNDIR"; }
trap cleanup EXIT
for _ in $(seq 100); do micctl status >/dev/null 2>&1 && break; sleep 0.05; done

step "micd runs two simulated X100 cards; their firmware waits for the host"
run micctl wait mic0 ready --timeout 5
micctl wait mic1 ready --timeout 5 >/dev/null
run micctl status
step "boot: the host downloads the card OS image into card memory and rings the boot doorbell"
run micctl boot mic0
run micctl status mic0 --json
os=$(pgrep -P "$(micctl status mic0 --json | sed -E 's/.*"firmware_pid":([0-9]+).*/\1/')" | head -1)
step "the card OS runs in namespaces of its own (pid $os on the host)"
printf 'hostname inside the card: %s\n' "$(nsenter -t "$os" -u hostname)"
printf 'card network interfaces: %s\n' "$(nsenter -t "$os" -n ip -o link | awk -F': ' '{print $2}' | xargs)"
printf 'card root: %s\n' "$(nsenter -t "$os" -m -- /bin/busybox ls / | xargs)"
step "the card is a sandbox: root inside, an unprivileged host user outside, with its own limits"
printf 'card root is host uid: %s (uid_map: %s)\n' "$(awk '/^Uid:/{print $2}' /proc/$os/status)" "$(xargs < /proc/$os/uid_map)"
printf 'capabilities in the host user namespace: none (CapEff inside its own: %s)\n' "$(awk '/^CapEff:/{print $2}' /proc/$os/status)"
printf 'card fds: %s\n' "$(ls /proc/$os/fd | wc -l) (hardware, /dev/null, its serial line; nothing of micd's)"
printf 'cgroup: %s\n' "$(grep -E ':memory:|^0::' /proc/$os/cgroup | head -1)"
printf 'in the card: ' ; printf 'mount -t overlay o /mnt 2>&1 | tail -1\n' | micctl console mic0 2>/dev/null | tr -d '\r' | grep -i 'denied\|not permitted' | head -1
step "the card's console: a shell inside the card, over virtio-console (micctl console mic0 attaches a terminal)"
printf 'hostname\nuname -n; ls /\ngrep NSpid /proc/self/status\n' | micctl console mic0 | tr -d '\r'
echo
step "the network: card eth0 (10.77.0.2 from the card's cmdline) <-> host TAP mic0 (10.77.0.1, host_ip in the config), in micd's own network namespace"
run hostnet ip -br addr show mic0
printf 'card: %s\n' "$(nsenter -t "$os" -n ip -br addr show eth0)"
run hostnet ping -c 3 -i 0.2 10.77.0.2
printf '$ micctl console mic0  # ping -c 2 10.77.0.1\n'
printf 'ping -c 2 10.77.0.1\n' | micctl console mic0 --linger 2.5 | tr -d '\r' | grep -E 'bytes from|packets'
step "ssh into the card from the host end of the link (dropbear in the card; host key from $MIC_STATEDIR/mic0)"
# "Host mic0" as a user would put it in ~/.ssh/config; the demo's own file
cat > "$MIC_RUNDIR/ssh_config" <<EOF
Host mic0
    HostName 10.77.0.2
    User root
    HostKeyAlias mic0
    IdentityFile $MIC_RUNDIR/id
    IdentitiesOnly yes
    UserKnownHostsFile $MIC_RUNDIR/known_hosts
    BatchMode yes
EOF
echo "mic0 $(cat "$MIC_STATEDIR/mic0/ssh_host_ed25519_key.pub")" > "$MIC_RUNDIR/known_hosts"
printf '$ ssh mic0 hostname\n'
hostnet ssh -F "$MIC_RUNDIR/ssh_config" mic0 hostname
head -c 4M /dev/urandom > "$MIC_RUNDIR/blob"
printf '$ scp blob mic0:/tmp/ && ssh mic0 md5sum /tmp/blob\n'
hostnet scp -F "$MIC_RUNDIR/ssh_config" -q "$MIC_RUNDIR/blob" mic0:/tmp/ &&
    hostnet ssh -F "$MIC_RUNDIR/ssh_config" mic0 md5sum /tmp/blob
printf 'host: %s\n' "$(md5sum < "$MIC_RUNDIR/blob")"
step "the disk: $DISK (ext4, made on the host) is the card's /dev/vda, over virtio-block"
# the card's driver makes /dev/vda shortly after boot
for _ in $(seq 100); do nsenter -t "$os" -m -- /bin/busybox test -b /dev/vda && break; sleep 0.05; done
printf 'mount /dev/vda /mnt\ncat /mnt/hello.txt\necho written-by-the-card > /mnt/card.txt\nsync; umount /mnt\n' |
    micctl console mic0 --linger 2 | tr -d '\r'
echo
# Never shut down or reset the card with the disk mounted: wait for the
# umount, and do it here should the console have detached before it.
mounted() { grep -q ' /mnt ' "/proc/$os/mounts"; }
for _ in $(seq 100); do mounted || break; sleep 0.05; done
mounted && nsenter -t "$os" -m -- /bin/busybox umount /mnt
run micctl shutdown mic0
printf '$ debugfs -R "cat /card.txt" %s\n' "$DISK"
debugfs -R "cat /card.txt" "$DISK" 2>/dev/null
run micctl boot mic0
step "a host directory in the card: virtio-fs, served by virtiofsd through micd's vhost-user front end"
printf 'mount -t virtiofs share /mnt\ncat /mnt/from-host.txt\necho written-by-the-card > /mnt/from-card.txt\numount /mnt\n' |
    micctl console mic0 --linger 2 | tr -d '\r'
printf '$ ls -ln %s   # owned by the card'"'"'s root, an unprivileged host uid\n' "$SHARE"
ls -ln "$SHARE"
step "a second card's disk: a qcow2 image, served by qemu-storage-daemon over vhost-user (micd starts and supervises it)"
run micctl boot mic1
micctl wait mic1 online --timeout 20 >/dev/null
os1=$(pgrep -P "$(micctl status mic1 --json | sed -E 's/.*"firmware_pid":([0-9]+).*/\1/')" | head -1)
for _ in $(seq 100); do nsenter -t "$os1" -m -- /bin/busybox test -b /dev/vda && break; sleep 0.05; done
printf 'mkfs.ext4 -F -q /dev/vda\nmount -t ext4 /dev/vda /mnt\necho written-by-mic1 > /mnt/card.txt\nsync; umount /mnt; echo done\n' |
    micctl console mic1 --linger 3 | tr -d '\r'
for _ in $(seq 100); do grep -q ' /mnt ' "/proc/$os1/mounts" || break; sleep 0.05; done
grep -q ' /mnt ' "/proc/$os1/mounts" && nsenter -t "$os1" -m -- /bin/busybox umount /mnt
run micctl shutdown mic1
# -U: qemu-storage-daemon still holds the image (micd keeps its backend
# for the next boot); the card flushed it at shutdown
run qemu-img check -U "$QCOW"
qemu-img convert -U -O raw "$QCOW" "$MIC_RUNDIR/disk1.raw"
printf '$ qemu-img convert -U -O raw disk1.qcow2 disk1.raw; debugfs -R "cat /card.txt" disk1.raw\n'
debugfs -R "cat /card.txt" "$MIC_RUNDIR/disk1.raw" 2>/dev/null
step "statistics: counted by micd on the data path, never read from the card"
run micctl stats mic0
step "the card OS log, read from card memory"
run micctl log mic0
step "shutdown, boot, reset, OSPM suspend and resume"
run micctl shutdown mic0
run micctl boot mic0
run micctl reset mic0
run micctl boot mic0
run micctl suspend
run micctl resume
step "daemon log"
cat "$MIC_RUNDIR/micd.log"
