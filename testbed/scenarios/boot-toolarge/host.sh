# A disk whose default entry has an initrd (sparse, 1 GiB) larger than the
# domain's memory, and a second, normal entry.
set -euo pipefail
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/boot/grub"
cp "$TB_OUT/vmlinuz" "$T/boot/vmlinuz"
cp "$TB_OUT/guest-initrd.gz" "$T/boot/initrd.img"
truncate -s 1G "$T/boot/initrd-huge.img"
cat > "$T/boot/grub/menu.lst" <<'CFG'
default 0
timeout 2

title Debian with a 1 GiB initrd
	root (hd0,0)
	kernel /boot/vmlinuz console=hvc0 tbmark=huge
	initrd /boot/initrd-huge.img

title Debian small
	root (hd0,0)
	kernel /boot/vmlinuz console=hvc0 tbmark=toolarge-second
	initrd /boot/initrd.img
CFG
img=/tmp/gopvgrub-e2e-$(basename "$SDIR").img
bash "$REPO/testbed/mkdisk.sh" "$img" 64 "$T" ext4
echo "$img" > "$SDIR/virtio.list"
