# The benchmark guest's disk: MBR, ext4, the test bed's Debian 12 kernel
# and guest initrd, and a grub.cfg with timeout 0 that pvgrub2, PyGrub and
# gopvgrub all read.
set -euo pipefail
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/boot/grub"
cp "$TB_OUT/vmlinuz" "$T/boot/vmlinuz"
cp "$TB_OUT/guest-initrd.gz" "$T/boot/initrd.img"
cat > "$T/boot/grub/grub.cfg" <<'CFG'
set default=0
set timeout=0
menuentry 'Debian GNU/Linux' {
	linux /boot/vmlinuz console=hvc0 tbmark=bench
	initrd /boot/initrd.img
}
CFG
img=/tmp/gopvgrub-e2e-$(basename "$SDIR").img
bash "$REPO/testbed/mkdisk.sh" "$img" 48 "$T" ext4
echo "$img" > "$SDIR/virtio.list"
