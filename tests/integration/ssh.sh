# ssh, scp and sftp into the card from the host end of its link, with the
# host's OpenSSH client and a key and known_hosts made here (never ~/.ssh).
# mic0 has the key authorized; mic1 has no authorized keys.  All traffic
# stays in micd's network namespace and the cards' own.
. "$(dirname "$0")/lib.sh"
STATE=$MIC_STATEDIR
unset SSH_AUTH_SOCK
ssh-keygen -q -t ed25519 -N '' -C micstack-test -f "$RUNDIR/id"
cat > "$RUNDIR/micd.conf" <<EOF
[mic0]
cmdline = mic.ip=10.97.0.2/24
ssh_authorized_keys = $RUNDIR/id.pub
[mic1]
cmdline = mic.ip=10.97.1.2/24
EOF
# ssh_opts: this test's key and known_hosts only, no config of the machine's
OPTS=(-F /dev/null -i "$RUNDIR/id" -o IdentitiesOnly=yes -o BatchMode=yes
      -o UserKnownHostsFile="$RUNDIR/known_hosts" -o GlobalKnownHostsFile=/dev/null
      -o StrictHostKeyChecking=yes -o ConnectTimeout=5)
cssh() { hostns ssh "${OPTS[@]}" "$@"; }
pub() { cat "$STATE/$1/ssh_host_ed25519_key.pub"; }
keysum() { sha256sum < "$STATE/$1/ssh_host_ed25519_key"; }
# wait_ssh ADDR: until the card's server answers (it starts with the card OS)
wait_ssh() {
    for _ in $(seq 100); do
        hostns ssh-keyscan -T 1 -t ed25519 "$1" 2>/dev/null | grep -q ssh-ed25519 && return 0
        sleep 0.05
    done
    return 1
}

start_micd --config "$RUNDIR/micd.conf"
check "state directory of mic0 made by micd: root's, mode 700" \
    [ "$(stat -c '%u %a' "$STATE/mic0")" = "0 700" ]
check "state directory of mic1 too" [ "$(stat -c '%u %a' "$STATE/mic1")" = "0 700" ]
check "mic0's host key is in it, mode 600" \
    [ "$(stat -c '%u %a' "$STATE/mic0/ssh_host_ed25519_key")" = "0 600" ]
check "each card has a host key of its own" [ "$(pub mic0 | cut -d' ' -f2)" != "$(pub mic1 | cut -d' ' -f2)" ]
# The only host key trusted below is the one in the state directory.
{ echo "10.97.0.2 $(pub mic0)"; echo "10.97.1.2 $(pub mic1)"; } > "$RUNDIR/known_hosts"
key0=$(keysum mic0)

micctl wait mic0 ready --timeout 5 >/dev/null && micctl wait mic1 ready --timeout 5 >/dev/null
micctl boot mic0 >/dev/null
micctl boot mic1 >/dev/null
hostns ip addr add 10.97.0.1/24 dev mic0
hostns ip addr add 10.97.1.1/24 dev mic1
check "the card's ssh server answers" wait_ssh 10.97.0.2
check "ssh root@mic0 hostname prints mic0 (host key from the state directory)" \
    [ "$(cssh root@10.97.0.2 hostname)" = mic0 ]
pty_ok() { cssh -tt root@10.97.0.2 tty 2>/dev/null | tr -d '\r' | grep -q '^/dev/pts/[0-9]'; }
check "the session has a PTY from the card's devpts" pty_ok
inside=$(cssh root@10.97.0.2 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; head -1 /proc/self/uid_map; cat /proc/self/mountinfo; ls -A /etc/dropbear')
has() { grep -Eq "$1" <<< "$inside"; }
sandboxed() { has '^Seccomp:.2' && has '^NoNewPrivs:.1'; }
check "ssh sessions run under the card's seccomp filter with no_new_privs" sandboxed
card_map=$(head -1 "/proc/$(card_os_pid mic0)/uid_map" | xargs)
session_map=$(grep -E '^ *0 +[0-9]+ +[0-9]+ *$' <<< "$inside" | head -1 | xargs)
as_card_root() { [ "$session_map" = "$card_map" ] && [ "$(cut -d' ' -f2 <<< "$card_map")" != 0 ]; }
check "ssh sessions run as the card's root, an unprivileged host user ($card_map)" as_card_root
no_host_paths() { has ' - tmpfs cardroot ' && ! grep -- ' - ' <<< "$inside" | grep -q "$RUNDIR"; }
check "nothing of the host's run or state directory is mounted in the card" no_host_paths
check "the card holds its own host key and nothing else of the state directory" \
    [ "$(tail -1 <<< "$inside")" = dropbear_ed25519_host_key ]

head -c 20M /dev/urandom > "$RUNDIR/data"
sum=$(sha256sum < "$RUNDIR/data")
hostns scp "${OPTS[@]}" -q "$RUNDIR/data" root@10.97.0.2:/tmp/data &&
    hostns scp "${OPTS[@]}" -q root@10.97.0.2:/tmp/data "$RUNDIR/scp.back"
check "20 MiB host -> card -> host by scp, same checksum" \
    [ "$(sha256sum < "$RUNDIR/scp.back" 2>/dev/null)" = "$sum" ]
check "the card holds the same bytes" [ "$(cssh root@10.97.0.2 'sha256sum < /tmp/data')" = "$sum" ]
printf 'put %s /tmp/sftp.data\nget /tmp/sftp.data %s\n' "$RUNDIR/data" "$RUNDIR/sftp.back" |
    hostns sftp "${OPTS[@]}" -q -b - root@10.97.0.2 >/dev/null
check "20 MiB host -> card -> host by sftp, same checksum" \
    [ "$(sha256sum < "$RUNDIR/sftp.back" 2>/dev/null)" = "$sum" ]

check "mic1's ssh server answers" wait_ssh 10.97.1.2
out=$(cssh root@10.97.1.2 hostname 2>&1)
refused() { grep -q 'Permission denied (publickey)' <<< "$out" && ! grep -qx mic1 <<< "$out"; }
check "mic1, with no authorized keys, refuses the key login" refused
logged() { micctl log mic0 | grep -q "sshd: .*Pubkey auth succeeded for 'root'"; }
check "mic0's card log shows the accepted key" logged

os=$(card_os_pid mic0)
db=$(pgrep -P "$os" -x dropbear)
kill -KILL $db
restarted() {
    local n
    for _ in $(seq 60); do
        n=$(pgrep -P "$os" -x dropbear)
        [ -n "$n" ] && [ "$n" != "$db" ] && wait_ssh 10.97.0.2 && return 0
        sleep 0.05
    done
    return 1
}
check "a killed ssh server is started again by the card OS" restarted
check "and lets the key in" [ "$(cssh root@10.97.0.2 hostname)" = mic0 ]

micctl shutdown mic0 >/dev/null && micctl boot mic0 >/dev/null
wait_ssh 10.97.0.2
check "after shutdown and boot: same host key (StrictHostKeyChecking)" [ "$(cssh root@10.97.0.2 hostname)" = mic0 ]
micctl reset mic0 >/dev/null && micctl wait mic0 ready --timeout 10 >/dev/null && micctl boot mic0 >/dev/null
wait_ssh 10.97.0.2
check "after reset and boot: same host key" [ "$(cssh root@10.97.0.2 hostname)" = mic0 ]
check "the host key file did not change" [ "$(keysum mic0)" = "$key0" ]

stop_micd
check "micd left the state directory and the key in place" [ "$(keysum mic0)" = "$key0" ]
start_micd --config "$RUNDIR/micd.conf"
check "a new micd keeps the card's host key" [ "$(keysum mic0)" = "$key0" ]
stop_micd

chmod 0777 "$STATE/mic1"
out=$(timeout 10 unshare --net "$BIN/micd" --rundir "$RUNDIR/r2" --config "$RUNDIR/micd.conf" 2>&1)
bad_dir_refused() { grep -q "state directory .*mic1 must be root's" <<< "$out"; }
check "micd refuses a state directory others can write" bad_dir_refused
finish
