#!/bin/bash
# grub-corpus.sh - regenerate the grub-mkconfig part of the golden corpus in
# testdata/grub/ by running Debian's real grub-mkconfig.
#
# What it does:
#   1. builds (once, cached) a Debian bookworm minbase chroot with
#      grub-common, grub2-common and grub-pc-bin, using mmdebstrap;
#   2. replaces grub-probe and grub-mkrelpath in the chroot with small shell
#      fakes that answer from /etc/fake-grub-probe.conf, so grub-mkconfig
#      needs no real block devices (the chroot lives on the host's disk);
#   3. for each variant below: writes a fake /boot (kernels, initrds, configs),
#      /etc/default/grub and friends, runs `grub-mkconfig -o
#      /boot/grub/grub.cfg` (which also runs grub-script-check on it), and
#      copies the result into testdata/grub/deb12-<variant>/ (ubuntu-<variant>/
#      for the Ubuntu-built ones) as a volume tree
#      plus case.json describing the volumes (device, UUID, label).
#
# The generated grub.cfg files are committed. Their expected menus
# (expected.json) are golden files: regenerate them with
#   go test ./grub/... -run TestCorpus -update
# and REVIEW every diff by hand against the grub.cfg before committing.
#
# Usage (as root; needs network for the first run):
#   tools/grub-corpus.sh            # all variants
#   tools/grub-corpus.sh saved lvm  # only these
# Environment: GOPVGRUB_CACHE (default /var/cache/gopvgrub) holds the chroot;
# DEBIAN_MIRROR overrides the mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$REPO/testdata/grub
CACHE=${GOPVGRUB_CACHE:-/var/cache/gopvgrub}/grub-corpus
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CH=$CACHE/chroot

[ "$(id -u)" = 0 ] || { echo "grub-corpus: must run as root (chroot)" >&2; exit 1; }
mkdir -p "$CACHE"

if [ ! -x "$CH/usr/sbin/grub-mkconfig" ]; then
  echo "grub-corpus: building bookworm chroot in $CH" >&2
  rm -rf "$CH" "$CH.tmp"
  mmdebstrap --variant=minbase --include=grub-common,grub2-common,grub-pc-bin \
    bookworm "$CH.tmp" "$MIRROR" >&2
  mv "$CH.tmp" "$CH"
fi
GRUB_VERSION=$(chroot "$CH" dpkg-query -W -f '${Version}' grub-common)

# --- the fakes --------------------------------------------------------------
[ -e "$CH/usr/sbin/grub-probe.real" ] || mv "$CH/usr/sbin/grub-probe" "$CH/usr/sbin/grub-probe.real"
cat > "$CH/usr/sbin/grub-probe" <<'EOF'
#!/bin/sh
# Fake grub-probe: answers from /etc/fake-grub-probe.conf, which defines
# ROOT_DEV, BOOT_DEV and, per device, lines "dev DEVICE key=value ...".
. /etc/fake-grub-probe.conf
target=; device=; path=
while [ $# -gt 0 ]; do
  case "$1" in
    --target=*) target=${1#--target=} ;;
    -t|--target) shift; target=$1 ;;
    --device|-d) device=1 ;;
    -*) ;;
    *) path=$1 ;;
  esac
  shift
done
if [ -n "$device" ]; then dev=$path
else
  case "$path" in
    /boot|/boot/*) dev=$BOOT_DEV ;;
    *) dev=$ROOT_DEV ;;
  esac
fi
if [ "$target" = device ]; then echo "$dev"; exit 0; fi
line=$(grep "^dev $dev " /etc/fake-grub-probe.conf.devs || true)
[ -n "$line" ] || { echo "grub-probe: unknown device $dev" >&2; exit 1; }
get() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p" | tr '+' ' '; }
case "$target" in
  fs|fs_uuid|fs_label|partmap|abstraction|compatibility_hint|drive|hints_string|partuuid|cryptodisk_uuid)
    v=$(get "$target")
    if [ -z "$v" ]; then
      case "$target" in abstraction|cryptodisk_uuid|partmap) exit 0 ;; esac
      echo "grub-probe: no $target for $dev" >&2; exit 1
    fi
    echo "$v" ;;
  *) echo "grub-probe: unsupported target $target" >&2; exit 1 ;;
esac
EOF
chmod 755 "$CH/usr/sbin/grub-probe"
[ -e "$CH/usr/bin/grub-mkrelpath.real" ] || mv "$CH/usr/bin/grub-mkrelpath" "$CH/usr/bin/grub-mkrelpath.real"
cat > "$CH/usr/bin/grub-mkrelpath" <<'EOF'
#!/bin/sh
# Fake grub-mkrelpath: path relative to its filesystem's root.
. /etc/fake-grub-probe.conf
p=$1
if [ "$BOOT_DEV" != "$ROOT_DEV" ]; then
  case "$p" in /boot) echo /; exit 0 ;; /boot/*) echo "${p#/boot}"; exit 0 ;; esac
fi
case "$p" in
  /) echo "${SUBVOL_PREFIX:-/}" ;;
  *) echo "${SUBVOL_PREFIX:-}$p" ;;
esac
EOF
chmod 755 "$CH/usr/bin/grub-mkrelpath"

ROOT_UUID=0c1f7f0e-4b1e-4c8e-9a2f-3f1f5d6e7a81
BOOT_UUID=5a2b0e3c-77d4-4f0a-8c1e-2d9b6a4f1e33
HINTS_MSDOS1="--hint-bios=hd0,msdos1+--hint-efi=hd0,msdos1+--hint-baremetal=ahci0,msdos1+"
HINTS_MSDOS2="--hint-bios=hd0,msdos2+--hint-efi=hd0,msdos2+--hint-baremetal=ahci0,msdos2+"
HINTS_GPT2="--hint-bios=hd0,gpt2+--hint-efi=hd0,gpt2+--hint-baremetal=ahci0,gpt2+"

# --- variants ---------------------------------------------------------------
# Each variant function sets: DESC, KERNELS (versions, oldest first),
# DEFAULTS (lines for /etc/default/grub, appended to the stock file),
# LAYOUT (root | sepboot | gpt | lvm | btrfs), and optionally XEN=1,
# CUSTOM (extra /etc/grub.d/40_custom text), GRUBENV (grub-editenv args),
# EARLY (early initrd files to create), NOINITRD=1, EXTRA (the PV-GRUB
# extra= naming the config, when discovery would not find it).

reset_variant() {
  DESC=; KERNELS="6.1.0-25-amd64 6.1.0-28-amd64"; DEFAULTS=; LAYOUT=root
  XEN=; CUSTOM=; GRUBENV=; EARLY=; NOINITRD=; EXTRA=; UBUNTU=; PREFIX=deb12
}

# UBUNTU=1 builds the config the way Ubuntu's grub2 package does: Ubuntu
# compiles the same grub.d templates with --enable-quick-boot,
# --enable-quiet-boot, --enable-ubuntu-recovery, --enable-gfxpayload-dynamic
# and --enable-vt-handoff, which only flip these variables at the top of
# 00_header, 10_linux and 30_os-prober. Ubuntu-only additions on top of that
# (cloud images' GRUB_FORCE_PARTUUID initrdless boot) are in the
# hand-written ubuntu* cases instead.
ubuntu_flags() {
  sed -i -e 's/^quick_boot="0"/quick_boot="1"/' -e 's/^quiet_boot="0"/quiet_boot="1"/' \
    -e 's/^ubuntu_recovery="0"/ubuntu_recovery="1"/' -e 's/^gfxpayload_dynamic="0"/gfxpayload_dynamic="1"/' \
    -e 's/^vt_handoff="0"/vt_handoff="1"/' "$CH/etc/grub.d/00_header" "$CH/etc/grub.d/10_linux" "$CH/etc/grub.d/30_os-prober"
}

v_default()     { DESC="stock /etc/default/grub, two kernels (submenu + recovery entries)"; }
v_nosubmenu()   { DESC="GRUB_DISABLE_SUBMENU=y: all entries at top level"; DEFAULTS='GRUB_DISABLE_SUBMENU=y'; }
v_saved()       { DESC="GRUB_DEFAULT=saved with grubenv saved_entry naming the older kernel by id path"
                  DEFAULTS=$'GRUB_DEFAULT=saved\nGRUB_SAVEDEFAULT=true'
                  GRUBENV="set saved_entry=gnulinux-advanced-$ROOT_UUID>gnulinux-6.1.0-25-amd64-advanced-$ROOT_UUID"; }
v_nextentry()   { DESC="GRUB_DEFAULT=saved with next_entry (grub-reboot) overriding saved_entry"
                  DEFAULTS='GRUB_DEFAULT=saved'
                  GRUBENV="set saved_entry=0 next_entry=1>1"; }
v_hidden()      { DESC="GRUB_TIMEOUT=0 with GRUB_TIMEOUT_STYLE=hidden"
                  DEFAULTS=$'GRUB_TIMEOUT=0\nGRUB_TIMEOUT_STYLE=hidden'; }
v_countdown()   { DESC="GRUB_TIMEOUT_STYLE=countdown, GRUB_TIMEOUT=3"
                  DEFAULTS=$'GRUB_TIMEOUT=3\nGRUB_TIMEOUT_STYLE=countdown'; }
v_notimeout()   { DESC="GRUB_TIMEOUT=-1: wait for the user"; DEFAULTS='GRUB_TIMEOUT=-1'; }
v_cmdline()     { DESC="Xen PV console command line in GRUB_CMDLINE_LINUX, empty _DEFAULT"
                  DEFAULTS=$'GRUB_CMDLINE_LINUX="console=hvc0 earlyprintk=xen net.ifnames=0"\nGRUB_CMDLINE_LINUX_DEFAULT=""\nGRUB_TERMINAL=console'; }
v_norecovery()  { DESC="GRUB_DISABLE_RECOVERY=true, three kernels"
                  KERNELS="6.1.0-21-amd64 6.1.0-25-amd64 6.1.0-28-amd64"; DEFAULTS='GRUB_DISABLE_RECOVERY="true"'; }
v_defaultid()   { DESC="GRUB_DEFAULT as submenu>entry id path"
                  DEFAULTS="GRUB_DEFAULT=\"gnulinux-advanced-$ROOT_UUID>gnulinux-6.1.0-25-amd64-recovery-$ROOT_UUID\""; }
v_defaultidx()  { DESC="GRUB_DEFAULT=\"1>2\" (numeric submenu path)"; DEFAULTS='GRUB_DEFAULT="1>2"'; }
v_defaulttitle(){ DESC="GRUB_DEFAULT as the new-style title path of an advanced entry"
                  DEFAULTS='GRUB_DEFAULT="Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-25-amd64"'; }
v_nouuid()      { DESC="GRUB_DISABLE_LINUX_UUID=true and GRUB_DISABLE_UUID=true: root=/dev/xvda1, set root only"
                  DEFAULTS=$'GRUB_DISABLE_LINUX_UUID=true\nGRUB_DISABLE_UUID=true'; }
v_sepboot()     { DESC="separate /boot partition (hd0,msdos1); root fs on hd0,msdos2"; LAYOUT=sepboot; }
v_gpt()         { DESC="GPT disk, root on partition 2"; LAYOUT=gpt; }
v_lvm()         { DESC="root on LVM, /boot on hd0,msdos1 (set root=lvmid... is unreachable)"; LAYOUT=lvm; }
v_btrfs()       { DESC="root on btrfs subvolume @ (rootflags=subvol=@, paths under /@); config named by extra="
                  LAYOUT=btrfs; EXTRA="(hd0,msdos1)/@/boot/grub/grub.cfg"; }
v_xen()         { DESC="Xen hypervisor installed: 20_linux_xen adds multiboot entries"; XEN=1; }
v_earlyinitrd() { DESC="stock early initrd (intel-ucode.img) plus GRUB_EARLY_INITRD_LINUX_CUSTOM: three initrds per entry"
                  DEFAULTS='GRUB_EARLY_INITRD_LINUX_CUSTOM="xen-ucode.cpio"'; EARLY="intel-ucode.img xen-ucode.cpio"; }
v_password()    { DESC="superusers + password_pbkdf2 in 40_custom (password: gopvgrub), unrestricted custom entry"
                  CUSTOM=$'set superusers="admin"\npassword_pbkdf2 admin @PBKDF2@\nmenuentry "Rescue shell (unrestricted)" --unrestricted {\n\tset root=(hd0,msdos1)\n\tlinux /boot/vmlinuz-6.1.0-28-amd64 root=/dev/xvda1 ro init=/bin/sh\n\tinitrd /boot/initrd.img-6.1.0-28-amd64\n}'; }
v_single()      { DESC="one kernel without initrd, GRUB_DISTRIBUTOR=Devuan"
                  KERNELS="6.1.0-28-cloud-amd64"; NOINITRD=1; DEFAULTS='GRUB_DISTRIBUTOR="Devuan"'; }
v_initsystems() { DESC="GRUB_DISABLE_SUBMENU with extra init entries for sysvinit (Debian's SUPPORTED_INITS)"
                  DEFAULTS='GRUB_DISABLE_SUBMENU=y'; INITS=1; }

v_ubuntu_jammy() { DESC="Ubuntu 22.04 desktop settings (hidden menu, quiet splash, recordfail) on Ubuntu-built templates"
                  UBUNTU=1; PREFIX=ubuntu; KERNELS="5.15.0-91-generic 5.15.0-94-generic"
                  DEFAULTS=$'GRUB_DISTRIBUTOR=Ubuntu\nGRUB_TIMEOUT_STYLE=hidden\nGRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash"'; }
v_ubuntu_recordfail() { DESC="Ubuntu settings after a failed boot: grubenv recordfail=1 gives a 30 s menu and text mode"
                  UBUNTU=1; PREFIX=ubuntu; KERNELS="6.8.0-31-generic 6.8.0-35-generic"
                  DEFAULTS=$'GRUB_DISTRIBUTOR=Ubuntu\nGRUB_TIMEOUT_STYLE=hidden\nGRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash"'
                  GRUBENV="set recordfail=1"; }
v_ubuntu_server() { DESC="Ubuntu server settings: GRUB_TIMEOUT_STYLE=menu, GPT, empty _DEFAULT, serial console"
                  UBUNTU=1; PREFIX=ubuntu; LAYOUT=gpt; KERNELS="6.8.0-45-generic"
                  DEFAULTS=$'GRUB_DISTRIBUTOR=Ubuntu\nGRUB_TIMEOUT_STYLE=menu\nGRUB_TIMEOUT=10\nGRUB_CMDLINE_LINUX_DEFAULT=""\nGRUB_CMDLINE_LINUX="console=tty1 console=ttyS0"'; }

ALL="ubuntu_jammy ubuntu_recordfail ubuntu_server default nosubmenu saved nextentry hidden countdown notimeout cmdline norecovery defaultid defaultidx defaulttitle nouuid sepboot gpt lvm btrfs xen earlyinitrd password single initsystems"

write_probe_conf() {
  local c=$CH/etc/fake-grub-probe.conf d=$CH/etc/fake-grub-probe.conf.devs
  : > "$d"
  echo "SUBVOL_PREFIX=" > "$c"
  case $LAYOUT in
    root)
      echo "ROOT_DEV=/dev/xvda1; BOOT_DEV=/dev/xvda1" >> "$c"
      echo "dev /dev/xvda1 fs=ext2 fs_uuid=$ROOT_UUID partmap=msdos compatibility_hint=hd0,msdos1 drive=(hd0,msdos1) hints_string=$HINTS_MSDOS1" >> "$d" ;;
    sepboot)
      echo "ROOT_DEV=/dev/xvda2; BOOT_DEV=/dev/xvda1" >> "$c"
      echo "dev /dev/xvda1 fs=ext2 fs_uuid=$BOOT_UUID partmap=msdos compatibility_hint=hd0,msdos1 drive=(hd0,msdos1) hints_string=$HINTS_MSDOS1" >> "$d"
      echo "dev /dev/xvda2 fs=ext2 fs_uuid=$ROOT_UUID partmap=msdos compatibility_hint=hd0,msdos2 drive=(hd0,msdos2) hints_string=$HINTS_MSDOS2" >> "$d" ;;
    gpt)
      echo "ROOT_DEV=/dev/xvda2; BOOT_DEV=/dev/xvda2" >> "$c"
      echo "dev /dev/xvda2 fs=ext2 fs_uuid=$ROOT_UUID partmap=gpt compatibility_hint=hd0,gpt2 drive=(hd0,gpt2) hints_string=$HINTS_GPT2" >> "$d" ;;
    lvm)
      echo "ROOT_DEV=/dev/mapper/vg0-root; BOOT_DEV=/dev/xvda1" >> "$c"
      echo "dev /dev/xvda1 fs=ext2 fs_uuid=$BOOT_UUID partmap=msdos compatibility_hint=hd0,msdos1 drive=(hd0,msdos1) hints_string=$HINTS_MSDOS1" >> "$d"
      echo "dev /dev/mapper/vg0-root fs=ext2 fs_uuid=$ROOT_UUID partmap=msdos abstraction=lvm compatibility_hint=lvmid/Vr3bXc-0000-1111/7Yk2Qa-2222-3333 drive=(lvmid/Vr3bXc-0000-1111/7Yk2Qa-2222-3333) hints_string=--hint='lvmid/Vr3bXc-0000-1111/7Yk2Qa-2222-3333'+" >> "$d" ;;
    btrfs)
      echo "ROOT_DEV=/dev/xvda1; BOOT_DEV=/dev/xvda1; SUBVOL_PREFIX=/@" >> "$c"
      echo "dev /dev/xvda1 fs=btrfs fs_uuid=$ROOT_UUID partmap=msdos compatibility_hint=hd0,msdos1 drive=(hd0,msdos1) hints_string=$HINTS_MSDOS1" >> "$d" ;;
  esac
}

# case_json writes the volumes the test harness mounts for this layout.
case_json() {
  local v=$1 dir=$2
  {
    echo "{"
    echo "  \"description\": \"$(echo "$DESC" | sed 's/"/\\"/g')\","
    [ -z "$EXTRA" ] || echo "  \"extra\": \"$EXTRA\","
    echo "  \"source\": \"grub-mkconfig from Debian bookworm grub-common $GRUB_VERSION, generated by tools/grub-corpus.sh ($v)\","
    echo "  \"volumes\": ["
    case $LAYOUT in
      root|btrfs)
        echo "    {\"device\": \"hd0,msdos1\", \"uuid\": \"$ROOT_UUID\", \"dir\": \"hd0,msdos1\"}" ;;
      sepboot|lvm)
        echo "    {\"device\": \"hd0,msdos1\", \"uuid\": \"$BOOT_UUID\", \"dir\": \"hd0,msdos1\"},"
        echo "    {\"device\": \"hd0,msdos2\", \"uuid\": \"$ROOT_UUID\", \"dir\": \"hd0,msdos2\"}" ;;
      gpt)
        echo "    {\"device\": \"hd0,gpt1\", \"dir\": \"hd0,gpt1\"},"
        echo "    {\"device\": \"hd0,gpt2\", \"uuid\": \"$ROOT_UUID\", \"dir\": \"hd0,gpt2\"}" ;;
    esac
    echo "  ]"
    echo "}"
  } > "$dir/case.json"
}

run_variant() {
  local v=$1
  reset_variant; INITS=
  "v_$v"
  echo "grub-corpus: $v: $DESC" >&2
  write_probe_conf

  # Fake /boot and the bits of / that grub-mkconfig looks at.
  rm -rf "$CH/boot" && mkdir -p "$CH/boot/grub"
  for k in $KERNELS; do
    printf 'fake bzImage %s\n' "$k" > "$CH/boot/vmlinuz-$k"
    [ -n "$NOINITRD" ] || printf 'fake initramfs %s\n' "$k" > "$CH/boot/initrd.img-$k"
    printf 'CONFIG_XEN_DOM0=y\nCONFIG_XEN_PRIVILEGED_GUEST=y\n' > "$CH/boot/config-$k"
    printf '%s\n' "fake System.map" > "$CH/boot/System.map-$k"
  done
  for e in $EARLY; do printf 'fake microcode\n' > "$CH/boot/$e"; done
  [ -z "$XEN" ] || printf 'fake xen\n' > "$CH/boot/xen-4.17-amd64.gz"
  mkdir -p "$CH/dev/disk/by-uuid"; rm -f "$CH/dev/disk/by-uuid/"*
  touch "$CH/dev/disk/by-uuid/$ROOT_UUID"
  rm -f "$CH/lib/sysvinit/init"
  if [ -n "$INITS" ]; then mkdir -p "$CH/lib/sysvinit"; printf '#!/bin/sh\n' > "$CH/lib/sysvinit/init"; chmod 755 "$CH/lib/sysvinit/init"; fi

  [ -d "$CH/etc/grub.d.orig" ] || cp -a "$CH/etc/grub.d" "$CH/etc/grub.d.orig"
  rm -rf "$CH/etc/grub.d"; cp -a "$CH/etc/grub.d.orig" "$CH/etc/grub.d"
  [ -z "$UBUNTU" ] || ubuntu_flags

  mkdir -p "$CH/etc/default"
  { cat "$CH/usr/share/grub/default/grub"; printf '%s\n' "$DEFAULTS"; } > "$CH/etc/default/grub"
  local custom=$CUSTOM
  if [[ $custom == *@PBKDF2@* ]]; then
    local hash
    hash=$(printf 'gopvgrub\ngopvgrub\n' | chroot "$CH" grub-mkpasswd-pbkdf2 2>/dev/null | sed -n 's/.*is \(grub\.pbkdf2\.[^ ]*\).*/\1/p')
    [ -n "$hash" ] || { echo "grub-corpus: grub-mkpasswd-pbkdf2 failed" >&2; exit 1; }
    custom=${custom//@PBKDF2@/$hash}
  fi
  { printf '#!/bin/sh\nexec tail -n +3 $0\n'; [ -z "$custom" ] || printf '%s\n' "$custom"; } > "$CH/etc/grub.d/40_custom"
  chmod 755 "$CH/etc/grub.d/40_custom"

  chroot "$CH" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    grub-mkconfig -o /boot/grub/grub.cfg 2> "$CACHE/$v.log" || { cat "$CACHE/$v.log" >&2; exit 1; }
  if [ -n "$GRUBENV" ]; then
    chroot "$CH" grub-editenv /boot/grub/grubenv $GRUBENV
  fi

  # Copy out as volume trees.
  local dir=$OUT/$PREFIX-${v#ubuntu_}
  rm -rf "$dir"; mkdir -p "$dir"
  local bootvol rootvol
  case $LAYOUT in
    root)    bootvol=$dir/hd0,msdos1/boot ;;
    btrfs)   bootvol=$dir/hd0,msdos1/@/boot ;;
    gpt)     bootvol=$dir/hd0,gpt2/boot; mkdir -p "$dir/hd0,gpt1" ;;
    sepboot|lvm) bootvol=$dir/hd0,msdos1; rootvol=$dir/hd0,msdos2; mkdir -p "$rootvol/etc"
             printf 'UUID=%s / ext4 errors=remount-ro 0 1\nUUID=%s /boot ext4 defaults 0 2\n' "$ROOT_UUID" "$BOOT_UUID" > "$rootvol/etc/fstab" ;;
  esac
  mkdir -p "$bootvol"
  (cd "$CH/boot" && find . -type f ! -name 'System.map-*' ! -name 'config-*' | sort | while read -r f; do
     mkdir -p "$bootvol/$(dirname "$f")"; cp "$f" "$bootvol/$f"; done)
  [ -e "$dir/hd0,gpt1" ] && touch "$dir/hd0,gpt1/.keep"
  { echo "# /etc/default/grub additions for variant $v (on top of Debian's stock file):"
    printf '%s\n' "$DEFAULTS"
    [ -z "$custom" ] || { echo "# /etc/grub.d/40_custom body:"; printf '%s\n' "$custom"; }
    [ -z "$GRUBENV" ] || echo "# grub-editenv /boot/grub/grubenv $GRUBENV"
  } > "$dir/generator-input.txt"
  case_json "$v" "$dir"
}

variants=${*:-$ALL}
for v in $variants; do run_variant "$v"; done
echo "grub-corpus: done; now run: go test ./grub/... -run TestCorpus -update, and review the diffs" >&2
