#!/bin/bash
# testbed/build.sh - build the artifacts of gopvgrub's Xen-in-QEMU test bed.
#
# QEMU (TCG, no KVM) boots Debian 12's Xen 4.17 hypervisor with a Debian 6.1 PV
# dom0 whose whole root filesystem is an uncompressed initramfs; dom0 runs the
# real toolstack (xl, xenstored, xenconsoled, blkback, netback, a bridge,
# tftpd-hpa, busybox udhcpd/httpd) and the e2e scenarios.
#
# Outputs in $OUT (default /var/cache/gopvgrub/testbed/out):
#   xen                 the hypervisor, decompressed (QEMU -kernel takes it via multiboot)
#   vmlinuz, KVER       the Debian kernel used for dom0 and as the default guest kernel
#   dom0.cpio           dom0's root filesystem (newc, uncompressed: TCG decompresses slowly)
#   grub-x86_64-xen.bin pvgrub2, for comparisons
#   guest-initrd.gz     a tiny busybox initrd for guests: prints GUEST-UP and powers off
#
# Idempotent: downloads are cached in $CACHE/{debs,apt-archives}; outputs are
# rebuilt when $OUT/STAMP (xen version, kernel, this script's checksum)
# changes, or with FORCE=1. Needs root and the Debian archive.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# Its own cache directory: /var/cache/gopvgrub/debs belongs to the unit
# tests' asset cache (internal/testassets), whose kernels this script must
# not prune. TB_OUT is where e2e.sh looks for the outputs.
CACHE=${TB_CACHE:-/var/cache/gopvgrub/testbed}
OUT=${TB_OUT:-$CACHE/out}
WORK=${WORK:-/tmp/gopvgrub-testbed-build}
FORCE=${FORCE:-0}
log() { echo "[testbed-build $(date +%T)] $*" >&2; }
[ "$(id -u)" = 0 ] || { echo "testbed/build.sh must run as root" >&2; exit 1; }

# The archive URIs come from the host's own apt sources (deb822 or one-line).
apt_uri() {
  awk -v s="$1" '
    /^URIs:/ {u=$2} /^Suites:/ {for (i=2;i<=NF;i++) if ($i==s) {print u; exit}}
    /^deb / {for (i=3;i<=NF;i++) if ($i==s) {print $2; exit}}' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -1
}
MIRROR=${MIRROR:-$(apt_uri bookworm)}
SECMIRROR=${SECMIRROR:-$(apt_uri bookworm-security)}
[ -n "$MIRROR" ] && [ -n "$SECMIRROR" ] || { echo "no bookworm / bookworm-security in the host's apt sources; set MIRROR and SECMIRROR" >&2; exit 1; }
mkdir -p "$CACHE/debs" "$CACHE/apt-archives" "$OUT" "$WORK"

# ---- downloads ---------------------------------------------------------------
apt-cache show linux-image-amd64 xen-hypervisor-4.17-amd64 >/dev/null 2>&1 || apt-get update -q >/dev/null
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6/{print $2; exit}')
[ -n "$KPKG" ] || { echo "cannot resolve linux-image-amd64" >&2; exit 1; }
fetch_deb() { # package: keep one cached .deb, replaced when the archive moves on
  local p=$1 v f
  v=$(apt-cache policy "$p" | awk '/Candidate:/{print $2}')
  f=$(ls "$CACHE/debs/${p}_"*.deb 2>/dev/null | head -1 || true)
  if [ -n "$f" ] && [ -n "$v" ] && [ "$(dpkg-deb -f "$f" Version)" != "$v" ]; then
    log "replacing $f by $v"; rm -f "$f"; f=""
  fi
  if [ -z "$f" ]; then log "downloading $p $v"; (cd "$CACHE/debs" && apt-get download -q "$p" >/dev/null); fi
}
for p in xen-hypervisor-4.17-amd64 grub-xen-host grub-xen-bin "$KPKG"; do fetch_deb "$p"; done
for f in "$CACHE/debs"/linux-image-*.deb; do
  case $(basename "$f") in "${KPKG}_"*) ;; *) rm -f "$f";; esac
done
XENVER=$(ls "$CACHE/debs"/xen-hypervisor-4.17-amd64_*.deb | head -1 | sed 's/.*_\(4\.17[^_]*\)_amd64.deb/\1/')
STAMP="xen=$XENVER kernel=$KPKG builder=$(cat "$0" "$HERE/guest-init.sh" "$HERE/guest-dhcp.sh" | md5sum | cut -c1-8)"
if [ "$(cat "$OUT/STAMP" 2>/dev/null)" != "$STAMP" ]; then FORCE=1; fi
if [ "$FORCE" != 1 ]; then log "up to date ($STAMP)"; exit 0; fi
log "building ($STAMP)"

EXT=$WORK/ext
rm -rf "$EXT"; mkdir -p "$EXT"
for d in "$CACHE/debs"/*.deb; do dpkg -x "$d" "$EXT"; done
KVER=$(ls "$EXT/lib/modules" | head -1)
depmod -b "$EXT" "$KVER"
zcat "$EXT"/boot/xen-4.17-amd64.gz > "$OUT/xen"
cp "$EXT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
cp "$EXT/usr/lib/grub-xen/grub-x86_64-xen.bin" "$OUT/grub-x86_64-xen.bin"
echo "$KVER" > "$OUT/KVER"; echo "$XENVER" > "$OUT/XENVER"

# ---- dom0 root filesystem ----------------------------------------------------
ROOT=$WORK/rootfs
rm -rf "$ROOT"
log "mmdebstrap dom0 (xen-utils $XENVER)"
mmdebstrap --variant=minbase --quiet --skip=essential/unlink \
  --include=xen-utils-4.17="$XENVER",kmod,iproute2,bridge-utils,procps,tftpd-hpa,python3,iputils-ping \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $CACHE/apt-archives /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives $CACHE/apt-archives" \
  bookworm "$ROOT" \
  "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECMIRROR bookworm-security main"

# Only the kernel modules dom0 uses, with their dependencies.
MODS="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback
      loop bridge tun dummy ext4 virtio_pci virtio_blk sch_netem"
mkdir -p "$ROOT/lib/modules/$KVER"
cp "$EXT/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$ROOT/lib/modules/$KVER/" 2>/dev/null || true
for m in $MODS; do modprobe -d "$EXT" -S "$KVER" --show-depends "$m" 2>/dev/null || true; done |
  awk '/^insmod/{print $2}' | sort -u | while read -r f; do
    rel=${f#$EXT}; mkdir -p "$ROOT$(dirname "$rel")"; cp "$f" "$ROOT$rel"
  done
depmod -b "$ROOT" "$KVER"
# dom0 lives in RAM: drop what it never uses (initrd pages count against dom0_mem).
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc \
  "$ROOT"/usr/lib/x86_64-linux-gnu/perl "$ROOT"/usr/share/perl "$ROOT"/usr/lib/udev/hwdb.bin \
  "$ROOT"/usr/lib/udev/hwdb.d "$ROOT"/usr/lib/x86_64-linux-gnu/gconv "$ROOT"/usr/share/zoneinfo \
  "$ROOT"/usr/lib/python3.11/pydoc_data "$ROOT"/usr/share/i18n "$ROOT"/usr/share/bash-completion \
  "$ROOT"/usr/share/zsh
install -m 755 /bin/busybox "$ROOT/usr/local/bin/busybox"
mkdir -p "$ROOT/usr/lib/grub-xen"
cp "$EXT/usr/lib/grub-xen/grub-x86_64-xen.bin" "$ROOT/usr/lib/grub-xen/"
sed -i 's/^#\?autoballoon=.*/autoballoon="off"/' "$ROOT/etc/xen/xl.conf"
grep -q '^autoballoon' "$ROOT/etc/xen/xl.conf" || echo 'autoballoon="off"' >> "$ROOT/etc/xen/xl.conf"
log "packing dom0.cpio"
(cd "$ROOT" && find . -xdev | LC_ALL=C sort | cpio -o -H newc --quiet) > "$OUT/dom0.cpio.tmp"
mv "$OUT/dom0.cpio.tmp" "$OUT/dom0.cpio"

# ---- guest initrd --------------------------------------------------------------
G=$WORK/guest-initrd; rm -rf "$G"; mkdir -p "$G"/{bin,proc,sys,dev,tmp,lib}
cp /bin/busybox "$G/bin/busybox"
cp "$EXT/lib/modules/$KVER/kernel/drivers/net/xen-netfront.ko" "$G/lib/"
install -m 755 "$HERE/guest-init.sh" "$G/init"
install -m 755 "$HERE/guest-dhcp.sh" "$G/bin/dhcp.sh"
(cd "$G" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/guest-initrd.gz"
rm -rf "$EXT" "$ROOT" "$G"
echo "$STAMP" > "$OUT/STAMP"
log "done; artifacts in $OUT"
