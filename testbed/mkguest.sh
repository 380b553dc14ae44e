#!/bin/bash
# testbed/mkguest.sh SUITE OUTDIR - a real Debian guest disk for the e2e
# scenarios boot-debian12 (SUITE=bookworm) and boot-debian13 (SUITE=trixie).
#
# mmdebstrap (minbase) installs linux-image-cloud-amd64 (a PV-capable kernel;
# trixie's is a zstd-compressed bzImage), initramfs-tools, systemd as init,
# dbus (systemd's recommendation: logind needs it), systemd-networkd (DHCP on
# the first NIC), iproute2, e2fsprogs, grub-common and grub2-common. The real
# grub-mkconfig (update-grub) writes /boot/grub/grub.cfg in the chroot, with
# a stand-in grub-probe (testbed/guest/grub-probe) diverted into place for
# that run only; no boot loader is installed (gopvgrub reads grub.cfg itself). tb-debian-up.service
# (testbed/guest/) prints to /dev/hvc0, once the network is online,
#   TB-DEBIAN-UP suite=<codename> kernel=<uname -r> ip=<IPv4|none> cmdline=<...>
# writes the tbproof=<token> kernel parameter ("none" without one) to
# /var/lib/tb-proof, syncs, prints "TB-DEBIAN-PROOF written <token>" and
# powers off.
#
# Outputs in OUTDIR:
#   disk.img     sparse MBR disk: one ext4 partition at 1 MiB (bootable, type
#                83) holding the whole system; root=UUID=<UUID>, fstab likewise
#   UUID KVER SUITE   the filesystem UUID, kernel version, suite
#   CMDLINE      the default entry's kernel command line (for direct boots)
#   vmlinuz initrd.img   copies of /boot's kernel and initrd (direct boots)
#   grub.cfg     a copy of the disk's /boot/grub/grub.cfg
#   STAMP        hash of this script, testbed/guest/* and SUITE
# Nothing is done when OUTDIR/STAMP matches and OUTDIR/disk.img exists
# (FORCE=1 rebuilds). The stamp does not follow the archive: a new kernel in
# the suite is only picked up with FORCE=1 or a changed script.
# The guest writes to its disk (machine-id, journal, the proof): boot a copy,
# not OUTDIR/disk.img itself.
#
# Environment: DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (default: the host's apt
# sources, else deb.debian.org), TB_CACHE (default /var/cache/gopvgrub/testbed;
# downloaded .debs are kept in $TB_CACHE/guest-apt-archives/SUITE), WORK
# (scratch, default /tmp/gopvgrub-mkguest-SUITE), FORCE=1.
# Needs root, mmdebstrap, sfdisk, mke2fs (e2fsprogs >= 1.43 for -d), unshare.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PATH=$PATH:/usr/sbin:/sbin
[ $# = 2 ] || { echo "usage: $0 SUITE OUTDIR" >&2; exit 2; }
SUITE=$1 OUTDIR=$2
CACHE=${TB_CACHE:-/var/cache/gopvgrub/testbed}
WORK=${WORK:-/tmp/gopvgrub-mkguest-$SUITE}
FORCE=${FORCE:-0}
G=$HERE/guest
log() { echo "[mkguest $SUITE $(date +%T)] $*" >&2; }
[ "$(id -u)" = 0 ] || { echo "mkguest.sh must run as root" >&2; exit 1; }

STAMP="suite=$SUITE builder=$(cat "$0" "$G"/* | md5sum | cut -c1-12)"
mkdir -p "$OUTDIR"
exec 9> "$OUTDIR/.lock"
flock 9
if [ "$FORCE" != 1 ] && [ -f "$OUTDIR/disk.img" ] && [ "$(cat "$OUTDIR/STAMP" 2>/dev/null)" = "$STAMP" ]; then
  log "up to date ($STAMP): $OUTDIR/disk.img"
  exit 0
fi
T0=$(date +%s)
log "building ($STAMP)"
rm -f "$OUTDIR/STAMP"

# The archive URIs: DEBIAN_MIRROR, else the host's apt sources (deb822 or
# one-line, as internal/testassets finds them), else deb.debian.org.
host_uri() { # suffix: the first URI ending in it
  awk -v s="$1" '
    /^URIs:/ {for (i=2;i<=NF;i++) if ($i ~ s"/?$") {print $i; exit}}
    /^deb / {if ($2 ~ s"/?$") {print $2; exit}}' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -1
}
MIRROR=${DEBIAN_MIRROR:-$(host_uri /debian)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${DEBIAN_SECURITY_MIRROR:-$(host_uri /debian-security)}
SECMIRROR=${SECMIRROR:-http://deb.debian.org/debian-security}

ARCH=$CACHE/guest-apt-archives/$SUITE
ROOT=$WORK/root
mkdir -p "$ARCH" "$WORK"
rm -rf "$ROOT"
# The filesystem UUID and the MBR disk identifier are chosen up front: the
# fstab, the initramfs and grub.cfg name them.
UUID=$(cat /proc/sys/kernel/random/uuid)
LABELID=$(echo "$UUID" | cut -c1-8)

# ---- the system ----------------------------------------------------------------
# initramfs-tools: MODULES=list, as it cannot work out "dep" in a chroot and
# "most" is large; the list itself (/etc/initramfs-tools/modules) is filled
# in below and the initramfs rebuilt, so the install-time run is cheap.
# FSTYPE=ext4 for the fsck hook, which cannot probe the root device here.
log "mmdebstrap $SUITE from $MIRROR"
mmdebstrap --variant=minbase --quiet --skip=essential/unlink \
  --include=systemd,systemd-sysv,udev,dbus,e2fsprogs,linux-image-cloud-amd64,initramfs-tools,zstd,iproute2,grub-common,grub2-common \
  --aptopt='APT::Install-Recommends "false"' --dpkgopt=force-unsafe-io \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/ "$1"/etc/initramfs-tools/conf.d' \
  --setup-hook='printf "MODULES=list\nFSTYPE=ext4\n" > "$1"/etc/initramfs-tools/conf.d/testbed.conf' \
  --setup-hook="sync-in $ARCH /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives $ARCH" \
  "$SUITE" "$ROOT" \
  "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECMIRROR $SUITE-security main"

# force-unsafe-io (no fsync per file: the tree is copied by mke2fs anyway)
# was for the build only; the path-excludes stay, as in build.sh's dom0.
sed -i '/^force-unsafe-io$/d' "$ROOT/etc/dpkg/dpkg.cfg.d/99mmdebstrap"

# Keep only the .debs this build installed (the cache would grow forever).
chroot "$ROOT" dpkg-query -W -f '${Package}_${Version}_${Architecture}.deb\n' | sed 's/:/%3a/g' | sort > "$WORK/debs.keep"
(cd "$ARCH" && { ls *.deb 2>/dev/null || true; } | sort | comm -23 - "$WORK/debs.keep" | xargs -r rm -f)

KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -1)
[ -n "$KVER" ] && [ -f "$ROOT/boot/vmlinuz-$KVER" ] || { echo "mkguest: no kernel installed" >&2; exit 1; }
grep -q '^CONFIG_XEN_PV=y' "$ROOT/boot/config-$KVER" || { echo "mkguest: $KVER lacks CONFIG_XEN_PV" >&2; exit 1; }

log "installed $KVER"
# ---- configuration -----------------------------------------------------------------
echo "tb-$SUITE" > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\ttb-%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$SUITE" > "$ROOT/etc/hosts"
: > "$ROOT/etc/resolv.conf"
printf '# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=%s\t/\text4\terrors=remount-ro\t0\t1\n' "$UUID" > "$ROOT/etc/fstab"
# mmdebstrap leaves /etc/machine-id empty, as cloud images ship it: the
# guest makes one up and no first-boot wizard asks on the console.
[ ! -s "$ROOT/etc/machine-id" ] || { echo "mkguest: /etc/machine-id is not empty" >&2; exit 1; }

# Network: systemd-networkd, DHCPv4 on the vif; wait-online gives up after
# 60 s (a guest without a vif still reports, with ip=none).
install -m 644 "$G/50-tb-dhcp.network" "$ROOT/etc/systemd/network/50-tb-dhcp.network"
wo=$(sed -n 's/^ExecStart=//p' "$ROOT/lib/systemd/system/systemd-networkd-wait-online.service" | head -1)
mkdir -p "$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d"
printf '[Service]\nExecStart=\nExecStart=%s --timeout=60\n' "$wo" > "$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d/tb-timeout.conf"
install -m 755 "$G/tb-debian-up.sh" "$ROOT/usr/local/sbin/tb-debian-up"
install -m 644 "$G/tb-debian-up.service" "$ROOT/etc/systemd/system/tb-debian-up.service"

# initramfs: the PV block and net front ends and ext4 (each loaded at boot
# from /conf/modules, or built in).
printf '%s\n' xen-blkfront xen-netfront ext4 >> "$ROOT/etc/initramfs-tools/modules"

# /etc/default/grub as the grub-pc (or grub-efi-*) postinst would create it,
# then edited as an admin would: the Xen PV console, no "quiet" (kernel and
# systemd messages on the console), the menu for a second.
[ -f "$ROOT/etc/default/grub" ] || cp "$ROOT/usr/share/grub/default/grub" "$ROOT/etc/default/grub"
grub_default() { # KEY VALUE
  if grep -q "^#\?$1=" "$ROOT/etc/default/grub"; then
    sed -i "0,/^#\?$1=.*/s||$1=$2|" "$ROOT/etc/default/grub"
  else
    echo "$1=$2" >> "$ROOT/etc/default/grub"
  fi
}
grub_default GRUB_CMDLINE_LINUX '"console=hvc0"'
grub_default GRUB_CMDLINE_LINUX_DEFAULT '""'
grub_default GRUB_TIMEOUT 1

# systemctl enable, update-initramfs and update-grub in the chroot, in a
# private mount namespace: /proc, and a tmpfs /dev with the guest's view of
# its disk, xvda, xvda1 and /dev/disk/by-uuid/UUID -> ../../xvda1 (grub's
# 10_linux only writes root=UUID= when that link resolves).
cp "$G/grub-probe" "$WORK/grub-probe"
unshare --mount --propagation private env ROOT="$ROOT" UUID="$UUID" LABELID="$LABELID" KVER="$KVER" WORK="$WORK" bash -euo pipefail -c '
  mount -t proc proc "$ROOT/proc"
  mount -t tmpfs -o mode=755 tbdev "$ROOT/dev"
  for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r name ma mi <<< "$n"; mknod -m 666 "$ROOT/dev/$name" c "$ma" "$mi"
  done
  ln -s /proc/self/fd "$ROOT/dev/fd"
  mknod -m 660 "$ROOT/dev/xvda" b 202 0; mknod -m 660 "$ROOT/dev/xvda1" b 202 1
  mkdir -p "$ROOT/dev/disk/by-uuid"
  ln -s ../../xvda1 "$ROOT/dev/disk/by-uuid/$UUID"
  inch() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    TB_GRUB_DISK=/dev/xvda TB_GRUB_PART=/dev/xvda1 TB_GRUB_UUID="$UUID" TB_GRUB_PARTUUID="$LABELID-01" "$@"; }
  inch systemctl enable systemd-networkd.service tb-debian-up.service
  inch update-initramfs -u -k "$KVER"
  mkdir -p "$ROOT/boot/grub"
  inch dpkg-divert --quiet --local --rename --add /usr/sbin/grub-probe
  install -m 755 "$WORK/grub-probe" "$ROOT/usr/sbin/grub-probe"
  rc=0; inch update-grub || rc=$?
  rm -f "$ROOT/usr/sbin/grub-probe"
  inch dpkg-divert --quiet --local --rename --remove /usr/sbin/grub-probe
  [ "$rc" = 0 ] || { echo "mkguest: update-grub failed" >&2; exit 1; }
  inch lsinitramfs "/boot/initrd.img-$KVER" > "$WORK/initrd.list"
' 2>&1 | sed 's/^/  /' >&2
[ -x "$ROOT/usr/sbin/grub-probe" ] && ! [ -e "$ROOT/usr/sbin/grub-probe.distrib" ] || { echo "mkguest: grub-probe diversion not undone" >&2; exit 1; }
grep -q "root=UUID=$UUID" "$ROOT/boot/grub/grub.cfg" || { echo "mkguest: grub.cfg lacks root=UUID=$UUID" >&2; exit 1; }

# The initramfs must bring up the root disk: each front end / ext4 is in it
# or built into the kernel.
for m in xen-blkfront:CONFIG_XEN_BLKDEV_FRONTEND xen-netfront:CONFIG_XEN_NETDEV_FRONTEND ext4:CONFIG_EXT4_FS; do
  mod=${m%%:*} cfg=${m#*:}
  if grep -q "/$mod.ko" "$WORK/initrd.list"; then where="in initrd"
  elif grep -q "^$cfg=y" "$ROOT/boot/config-$KVER"; then where="built in"
  else echo "mkguest: $mod neither in the initrd nor built in" >&2; exit 1; fi
  log "$mod: $where"
done

log "initramfs and grub.cfg written"
# ---- the disk ------------------------------------------------------------------
# Leave no build-host traces that a real install would not have.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*
used_mb=$(( $(du -sxk "$ROOT" | cut -f1) / 1024 ))
nfiles=$(find "$ROOT" -xdev | wc -l)
# Room for ext4's metadata and journal and for what the guest writes; 64 MiB steps.
part_mb=$(( (used_mb * 5 / 4 + 96 + 63) / 64 * 64 ))
disk_mb=$(( part_mb + 1 ))
log "filesystem: $used_mb MiB in $nfiles files -> ${part_mb} MiB partition, UUID $UUID"
rm -f "$WORK/part.img" "$OUTDIR/disk.img.tmp"
truncate -s "${part_mb}M" "$WORK/part.img"
# The suite's own mke2fs.conf (trixie's adds metadata_csum_seed and
# orphan_file), as its installer would format; -T default: 4 KiB blocks even
# below 512 MiB, where mke2fs would pick the "small" type's 1 KiB.
MKE2FS_CONFIG=$ROOT/etc/mke2fs.conf mke2fs -q -F -t ext4 -T default -U "$UUID" -d "$ROOT" "$WORK/part.img"
truncate -s "${disk_mb}M" "$OUTDIR/disk.img.tmp"
printf 'label: dos\nlabel-id: 0x%s\nunit: sectors\nstart=2048, size=%d, type=83, bootable\n' \
  "$LABELID" $((part_mb * 2048)) | sfdisk -q "$OUTDIR/disk.img.tmp"
dd if="$WORK/part.img" of="$OUTDIR/disk.img.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$WORK/part.img"

cp "$ROOT/boot/vmlinuz-$KVER" "$OUTDIR/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$OUTDIR/initrd.img"
install -m 644 "$ROOT/boot/grub/grub.cfg" "$OUTDIR/grub.cfg"
awk '$1 == "linux" {$1 = $2 = ""; gsub(/^ +| +$/, ""); print; exit}' "$ROOT/boot/grub/grub.cfg" > "$OUTDIR/CMDLINE"
echo "$KVER" > "$OUTDIR/KVER"; echo "$UUID" > "$OUTDIR/UUID"; echo "$SUITE" > "$OUTDIR/SUITE"
mv "$OUTDIR/disk.img.tmp" "$OUTDIR/disk.img"
rm -rf "$ROOT" "$WORK"
echo "$STAMP" > "$OUTDIR/STAMP"

# The kernel's payload format (bzImage: setup_sects at 0x1f1, payload_offset at 0x248).
kfmt() {
  local f=$1 ss po magic
  ss=$(od -An -tu1 -j $((0x1f1)) -N1 "$f" | tr -d ' ')
  po=$(od -An -tu4 -j $((0x248)) -N4 "$f" | tr -d ' ')
  magic=$(od -An -tx1 -j $(( (ss + 1) * 512 + po )) -N4 "$f" | tr -d ' ')
  case $magic in
    1f8b*) echo gzip ;; 28b52ffd) echo zstd ;; fd377a58) echo xz ;; 02214c18) echo lz4 ;;
    425a68*) echo bzip2 ;; 5d00*) echo lzma ;; 894c5a4f) echo lzo ;; *) echo "unknown ($magic)" ;;
  esac
}
log "done in $(( $(date +%s) - T0 ))s: $OUTDIR"
{
  echo "suite=$SUITE kernel=$KVER payload=$(kfmt "$OUTDIR/vmlinuz") uuid=$UUID"
  printf 'disk.img    %6d MiB apparent, %6d MiB allocated\n' $(( $(stat -c %s "$OUTDIR/disk.img") >> 20 )) $(( $(du -k "$OUTDIR/disk.img" | cut -f1) >> 10 ))
  printf 'vmlinuz     %6d KiB\n' $(( $(stat -c %s "$OUTDIR/vmlinuz") >> 10 ))
  printf 'initrd.img  %6d KiB\n' $(( $(stat -c %s "$OUTDIR/initrd.img") >> 10 ))
} >&2
