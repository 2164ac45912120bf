# Eight cards, the most one daemon drives, booted at once: all come online,
# each with its own console, hostname and network device; all shut down.
. "$(dirname "$0")/lib.sh"
start_micd --cards 8
for i in 0 1 2 3 4 5 6 7; do micctl wait mic$i ready --timeout 5 >/dev/null; done
pids=""
for i in 0 1 2 3 4 5 6 7; do micctl boot mic$i >/dev/null & pids="$pids $!"; done
bad=0
for p in $pids; do wait $p || bad=$((bad + 1)); done
check "eight concurrent boots succeed" [ "$bad" -eq 0 ]
for i in 0 1 2 3 4 5 6 7; do
    check "mic$i online" [ "$(state_of mic$i)" = online ]
    out=$(micctl console mic$i <<< hostname | tr -d '\r')
    check "mic$i console answers its own hostname" sh -c "echo '$out' | grep -qx mic$i"
done
check "every card has its TAP in micd's namespace" [ "$(nsenter -t "$MICD_PID" -n ip -o link | grep -c ': mic[0-7]:')" -eq 8 ]
check "suspend shuts all eight down" micctl suspend
check "resume boots all eight" micctl resume
finish
