# OSPM suspend shuts every online card down; resume boots those again and
# leaves the others as they were.
. "$(dirname "$0")/lib.sh"
start_micd --cards 5
for i in 0 1 2 3 4; do micctl wait mic$i ready --timeout 2 >/dev/null; done
# boot four cards concurrently, leave mic4 ready
bp=""
for i in 0 1 2 3; do micctl boot mic$i >/dev/null & bp="$bp $!"; done
wait $bp
for i in 0 1 2 3; do check "mic$i online before suspend" [ "$(state_of mic$i)" = online ]; done
pids=""; for i in 0 1 2 3; do pids="$pids $(card_os_pid mic$i)"; done

check "suspend succeeds" micctl suspend
for i in 0 1 2 3; do check "mic$i suspended" [ "$(state_of mic$i)" = suspended ]; done
check "mic4 (was ready) untouched" [ "$(state_of mic4)" = ready ]
for p in $pids; do check "card OS $p halted cleanly" sh -c "! kill -0 $p 2>/dev/null"; done
for i in 0 1 2 3; do check "mic$i log shows a clean halt" sh -c "micctl log mic$i | grep -q 'card OS halted'"; done
check "boot refused while suspended" sh -c "micctl boot mic0 2>&1 | grep -q 'resume first'"

check "resume succeeds" micctl resume
for i in 0 1 2 3; do check "mic$i online after resume" [ "$(state_of mic$i)" = online ]; done
check "mic4 still ready after resume" [ "$(state_of mic4)" = ready ]
check "second suspend/resume" sh -c "micctl suspend >/dev/null && micctl resume >/dev/null"
for i in 0 1 2 3; do check "mic$i online after second resume" [ "$(state_of mic$i)" = online ]; done
# a second suspend (the cards are already suspended) must not make resume
# forget them
micctl suspend >/dev/null
check "suspend while suspended succeeds" micctl suspend
check "resume after a double suspend" micctl resume
for i in 0 1 2 3; do check "mic$i online after a double suspend" [ "$(state_of mic$i)" = online ]; done
# and a second suspend while the first is still shutting cards down
micctl suspend >/dev/null & sp=$!
micctl suspend >/dev/null; wait $sp
check "resume after overlapping suspends" micctl resume
for i in 0 1 2 3; do check "mic$i online after overlapping suspends" [ "$(state_of mic$i)" = online ]; done
finish
