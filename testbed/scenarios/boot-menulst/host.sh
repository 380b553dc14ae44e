# A PV-GRUB-era disk: MBR, ext3, /boot/grub/menu.lst only (GRUB legacy), with a
# default entry whose kernel is corrupt and a fallback.
set -euo pipefail
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/boot/grub"
cp "$TB_OUT/vmlinuz" "$T/boot/vmlinuz"
cp "$TB_OUT/guest-initrd.gz" "$T/boot/initrd.img"
# The same kernel with 4 KiB of its compressed payload overwritten.
python3 - "$T/boot/vmlinuz" "$T/boot/vmlinuz-corrupt" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[len(b)//2:len(b)//2 + 4096] = bytes(4096)
open(sys.argv[2], 'wb').write(b)
PY
cat > "$T/boot/grub/menu.lst" <<'CFG'
default 0
fallback 2
timeout 4

title Debian (corrupt kernel)
	root (hd0,0)
	kernel /boot/vmlinuz-corrupt console=hvc0 tbmark=corrupt
	initrd /boot/initrd.img

title Debian entry two
	root (hd0,0)
	kernel /boot/vmlinuz console=hvc0 tbmark=menulst-entry2
	initrd /boot/initrd.img

title Debian fallback
	root (hd0,0)
	kernel /boot/vmlinuz console=hvc0 tbmark=menulst-fallback
	initrd /boot/initrd.img
CFG
img=/tmp/gopvgrub-e2e-$(basename "$SDIR").img
bash "$REPO/testbed/mkdisk.sh" "$img" 48 "$T" "${FSTYPE:-ext3}"
echo "$img" > "$SDIR/virtio.list"
