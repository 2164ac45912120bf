# Boot to online, the card OS's namespaces, shutdown, reset from every state.
. "$(dirname "$0")/lib.sh"
start_micd

check "fresh card becomes ready" micctl wait mic0 ready --timeout 2
check "boot reaches online" micctl boot mic0
check "image downloaded by DMA" [ "$(json_field mic0 download_dma)" = true ]
check "status says online" sh -c "micctl status | grep -q '^mic0: online'"
check "status --json is JSON with the state" sh -c "micctl status mic0 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"cards\"][0][\"state\"]==\"online\"'"

os=$(card_os_pid mic0)
check "card OS runs" [ -n "$os" ]
for ns in net mnt uts pid ipc; do
    check "card OS has its own $ns namespace" [ "$(readlink /proc/$os/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ]
done
check "card hostname is mic0" [ "$(nsenter -t "$os" -u hostname)" = mic0 ]
check "card OS is pid 1 in its namespace" sh -c "grep -q '^NSpid:.*[[:space:]]1$' /proc/$os/status"
check "card root is the image, not the host's" sh -c "nsenter -t $os -m -- /bin/busybox ls /sbin | grep -qx mic-card"
check "card network has only lo and eth0 (virtio-net)" sh -c "nsenter -t $os -n ip -o link | grep -v ': lo:' | grep -v ': eth0:' | wc -l | grep -qx 0"
check "card log read from card memory" sh -c "micctl log mic0 | grep -q 'card: online'"

check "shutdown reaches ready" micctl shutdown mic0
check "state ready after shutdown" [ "$(state_of mic0)" = ready ]
check "card OS gone after shutdown" sh -c "! kill -0 $os 2>/dev/null"
check "log shows the halt" sh -c "micctl log mic0 | grep -q 'card OS halted'"

check "reset from ready" micctl reset mic0
micctl boot mic0 >/dev/null
check "reset from online" micctl reset mic0
check "ready after reset" [ "$(state_of mic0)" = ready ]
micctl boot mic0 --no-wait >/dev/null
check "reset while booting" micctl reset mic0
check "boot after reset" micctl boot mic0
micctl shutdown mic0 --no-wait >/dev/null
check "reset while shutting down" micctl reset mic0
check "boot again" micctl boot mic0
check "boot count" [ "$(json_field mic0 boots)" -ge 3 ]
# SIGTERM while a card boots: it is shut down cleanly once online, not
# powered off mid-boot
micctl shutdown mic0 >/dev/null
micctl boot mic0 --no-wait >/dev/null
stop_micd
check "a card booting at SIGTERM halts cleanly" sh -c "sed -n '/stopping: shutting/,\$p' '$RUNDIR/micd.log' | grep -q 'mic0: shutting_down -> ready: card OS halted'"
finish
