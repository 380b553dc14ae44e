# A disk as a Debian 12 install leaves it, in miniature: MBR, ext4 root with
# /boot, a grub.cfg in grub-mkconfig's shape (search by UUID, linux/initrd).
set -euo pipefail
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/boot/grub"
cp "$TB_OUT/vmlinuz" "$T/boot/vmlinuz-6.1.0-tb-amd64"
cp "$TB_OUT/guest-initrd.gz" "$T/boot/initrd.img-6.1.0-tb-amd64"
cat > "$T/boot/grub/grub.cfg" <<'CFG'
set default="0"
set timeout=2
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root 6f0e3c1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class os $menuentry_id_option 'gnulinux-simple-6f0e3c1a' {
	load_video
	insmod gzio
	insmod part_msdos
	insmod ext2
	search --no-floppy --fs-uuid --set=root 6f0e3c1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b
	echo	'Loading Linux 6.1.0-tb-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-tb-amd64 root=UUID=6f0e3c1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b ro console=hvc0 quiet tbmark=grubcfg-default
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-tb-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-6f0e3c1a' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-tb-amd64 (recovery mode)' {
		linux	/boot/vmlinuz-6.1.0-tb-amd64 root=UUID=6f0e3c1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b ro single console=hvc0 tbmark=recovery
		initrd	/boot/initrd.img-6.1.0-tb-amd64
	}
}
CFG
img=/tmp/gopvgrub-e2e-boot-grubcfg.img
bash "$REPO/testbed/mkdisk.sh" "$img" 48 "$T" ext4 6f0e3c1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b
echo "$img" > "$SDIR/virtio.list"
