# dist/micd.service: systemd-analyze verify, with ExecStart pointing at the
# micd just built (verify needs the binary), must print no warning about
# the unit.
. "$(dirname "$0")/lib.sh"
if ! command -v systemd-analyze >/dev/null; then
    say "SKIP: systemd-analyze missing (Debian package systemd)"; rm -rf "$RUNDIR"; exit 0
fi
UNIT=$RUNDIR/micd.service
sed "s|^ExecStart=/usr/local/bin/micd |ExecStart=$BIN/micd |" "$SRC/dist/micd.service" > "$UNIT"
check "ExecStart points at the built micd" grep -q "^ExecStart=$BIN/micd " "$UNIT"
# --man=no: the Documentation= link is not for this machine to resolve
systemd-analyze verify --man=no "$UNIT" > "$RUNDIR/verify.out" 2>&1
rc=$?
# lines about other units of this machine are not ours to judge
grep -F "micd.service" "$RUNDIR/verify.out" > "$RUNDIR/ours.out"
sed 's/^/    /' "$RUNDIR/verify.out"
check "systemd-analyze verify exits 0" [ $rc -eq 0 ]
check "no warning about micd.service" [ ! -s "$RUNDIR/ours.out" ]
for k in CapabilityBoundingSet DevicePolicy ProtectSystem NoNewPrivileges Delegate; do
    check "unit sets $k" grep -q "^$k=" "$UNIT"
done
check "the unit keeps CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SETUID" sh -c "grep '^CapabilityBoundingSet=' '$UNIT' | grep -q CAP_SYS_ADMIN.*CAP_NET_ADMIN.*CAP_SETUID"
finish
