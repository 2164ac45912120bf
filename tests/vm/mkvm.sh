#!/bin/sh
# mkvm.sh DIR: puts a Debian kernel (DIR/vmlinuz) and a small initramfs
# (DIR/initrd.gz) for tests/vm/run.sh into DIR.  The kernel package is the
# one Debian's linux-image-amd64 depends on, fetched with `apt-get download`
# and unpacked here: nothing is installed on the host.  Does nothing when DIR
# already holds that version.
set -eu
DIR=$1
HERE=$(cd "$(dirname "$0")" && pwd)
# modules the guest needs: its root (9p over virtio) and what micd and the
# cards open (FUSE for the cards' disks and mounts, TAPs, veth pairs)
WANT="virtio_pci 9pnet_virtio 9p fuse tun veth"

deps_of() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1; }
pkg=$(deps_of)
if [ -z "$pkg" ]; then
    apt-get update -qq >/dev/null
    pkg=$(deps_of)
fi
[ -n "$pkg" ] || { echo "mkvm: no linux-image-amd64 in apt's lists" >&2; exit 1; }
[ -f "$DIR/$pkg.ready" ] && [ "$DIR/$pkg.ready" -nt "$HERE/init" ] && exit 0

rm -rf "$DIR"
mkdir -p "$DIR/dl" "$DIR/x" "$DIR/initrd/bin" "$DIR/initrd/mod"
fetch() { (cd "$DIR/dl" && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed') >&2; }
fetch
if ! ls "$DIR"/dl/*.deb >/dev/null 2>&1; then
    # lists older than the mirror: that version is gone from it
    apt-get update -qq >/dev/null
    pkg=$(deps_of)
    fetch
fi
deb=$(ls "$DIR"/dl/*.deb) || { echo "mkvm: cannot download $pkg" >&2; exit 1; }
dpkg-deb -c "$deb" | awk '{print $6}' > "$DIR/list"
ko_path() { # module name (dashes and underscores alike) -> path in the package
    grep -E "/$(echo "$1" | sed 's/[-_]/[-_]/g')\.ko(\.xz|\.zst|\.gz)?\$" "$DIR/list" | head -1
}
extract() { dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$DIR/x" "$@"; }

extract "$(grep -E '^\./boot/vmlinuz-' "$DIR/list")"
cp "$DIR"/x/boot/vmlinuz-* "$DIR/vmlinuz"

# The modules and what they depend on (the package has no modules.dep:
# depmod makes it at install), read from each module's .modinfo.
todo=$WANT
have=""
while [ -n "$todo" ]; do
    paths=""
    for m in $todo; do
        p=$(ko_path "$m")
        [ -n "$p" ] || { echo "mkvm: $pkg has no module $m" >&2; exit 1; }
        paths="$paths $p"
    done
    # shellcheck disable=SC2086
    extract $paths
    next=""
    for p in $paths; do
        f="$DIR/x/${p#./}"
        case $f in
            *.xz) xz -dc "$f" > "${f%.xz}"; f=${f%.xz} ;;
            *.zst) zstd -qdc "$f" > "${f%.zst}"; f=${f%.zst} ;;
            *.gz) gzip -dc "$f" > "${f%.gz}"; f=${f%.gz} ;;
        esac
        name=$(basename "$f" .ko | tr - _)
        have="$have $name "
        cp "$f" "$DIR/initrd/mod/$name.ko"
        for d in $(tr '\0' '\n' < "$f" | sed -n 's/^depends=//p' | tr , ' '); do
            d=$(echo "$d" | tr - _)
            case "$have $next" in *" $d "*) ;; *) next="$next $d " ;; esac
        done
    done
    todo=$next
done

cp /bin/busybox "$DIR/initrd/bin/busybox"
cp "$HERE/init" "$DIR/initrd/init"
chmod 755 "$DIR/initrd/init"
(cd "$DIR/initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$DIR/initrd.gz"
rm -rf "$DIR/dl" "$DIR/x"
touch "$DIR/$pkg.ready"
echo "mkvm: $pkg, modules:$have" >&2
