#!/bin/sh
# Installs the Debian packages micstack needs to build, test and demo.
# Idempotent: does nothing (no apt-get update) when everything is present.
set -e
PKGS="cmake make gcc pkg-config libarchive-dev libdeflate-dev libcmocka-dev libinih-dev \
busybox-static iproute2 util-linux clang libclang-rt-14-dev python3 fuse2fs \
libfuse3-dev fuse3 e2fsprogs iputils-ping systemd libseccomp-dev libmnl-dev liburing-dev \
dropbear-bin openssh-sftp-server openssh-client qemu-utils qemu-system-common qemu-system-x86 \
iperf3 fio"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing (run as root)" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
