#!/bin/bash
# mkseeds.sh - regenerate the fuzz seed images in this directory with the
# real tools (e2fsprogs, dosfstools, mtools, xorriso, squashfs-tools,
# fdisk, gdisk). Each image is small (fuzzing mutates the whole input),
# trimmed of trailing zeros where the reader does not need them, and
# gzipped. Run from anywhere; needs no root.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MTOOLS_SKIP_CHECK=1 LC_ALL=C.UTF-8 SOURCE_DATE_EPOCH=1700000000 E2FSPROGS_FAKE_TIME=1700000000

# A tiny tree: a config, a file of a few blocks, a directory of 90 empty
# entries (two blocks: e2fsck -D makes it an htree) and 3 small files,
# fast and slow symlinks, a nested directory.
t=$tmp/tree
mkdir -p "$t/boot/grub" "$t/dir" "$t/a/b/c"
printf 'set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n' > "$t/boot/grub/grub.cfg"
head -c 3000 /dev/zero | tr '\0' 'k' > "$t/boot/vmlinuz"
for i in $(seq -w 0 89); do : > "$t/dir/e$i"; done
for i in 1 2 3; do echo "$i" > "$t/dir/file-$i"; done
echo deep > "$t/a/b/c/leaf"
ln -s ../boot/grub/grub.cfg "$t/dir/fast"
ln -s "../$(printf 'a/../%.0s' {1..14})boot/grub/grub.cfg" "$t/dir/slow"
fat=$tmp/fat
mkdir -p "$fat"
cp -r "$t/boot" "$t/a" "$fat/"
echo "long name" > "$fat/Long File Name.txt"

trim() { # drop trailing zero blocks past $2 bytes, then gzip into $out/$3
  python3 - "$1" "$2" <<'PY'
import sys
p, keep = sys.argv[1], int(sys.argv[2])
b = open(p, 'rb').read()
end = -(-len(b.rstrip(b'\0')) // 4096) * 4096  # whole 4 KiB blocks
open(p, 'wb').write(b[:max(end, keep)])
PY
  gzip -9n < "$1" > "$out/$3.gz"
}

U=0f0e0d0c-0b0a-4908-8706-050403020100
mke2fs -q -F -t ext4 -O ^has_journal -b 1024 -I 128 -N 128 -U $U -L seed -d "$t" "$tmp/ext4.img" 256K
e2fsck -fyD "$tmp/ext4.img" >/dev/null 2>&1 || true
trim "$tmp/ext4.img" 0 ext4.img
mke2fs -q -F -t ext4 -O ^has_journal,inline_data -b 1024 -I 256 -N 128 -U $U -d "$t" "$tmp/inline.img" 256K
trim "$tmp/inline.img" 0 ext4-inline.img
mke2fs -q -F -t ext2 -b 1024 -I 128 -N 128 -U $U -d "$t" "$tmp/ext2.img" 256K
trim "$tmp/ext2.img" 0 ext2.img

mkfs.fat -F 12 -i 12345678 -n SEED12 -C "$tmp/fat12.img" 256 >/dev/null
mcopy -s -i "$tmp/fat12.img" "$fat"/* ::/
trim "$tmp/fat12.img" 0 fat12.img
mkfs.fat -F 16 -s 1 -i 12345678 -n SEED16 -C "$tmp/fat16.img" 4096 >/dev/null
mcopy -s -i "$tmp/fat16.img" "$fat"/* ::/
trim "$tmp/fat16.img" 0 fat16.img
mkfs.fat -F 32 -s 1 -f 1 -i 12345678 -n SEED32 -C "$tmp/fat32.img" 34000 >/dev/null
mcopy -s -i "$tmp/fat32.img" "$fat"/* ::/
trim "$tmp/fat32.img" 0 fat32.img

xorriso -as mkisofs -quiet -R -J -V SEED -o "$tmp/iso.iso" "$t" 2>/dev/null
trim "$tmp/iso.iso" 0 iso9660.iso

for c in gzip xz lz4 zstd; do
  mksquashfs "$t" "$tmp/sq-$c.img" -quiet -noappend -no-progress -comp "$c" -all-root
  cp "$tmp/sq-$c.img" "$tmp/t.img"
  trim "$tmp/t.img" 0 "squashfs-$c.img"
done

# Partition tables packed into a few KiB: MBR with three logical
# partitions (EBRs at sectors 8, 16, 24), and GPT with a 4-entry table
# on a 40 KiB disk (its backup header is the last sector).
truncate -s 64K "$tmp/mbr.img"
printf 'label: dos\nlabel-id: 0x0badcafe\nstart=2, size=4, type=83\nstart=8, size=100, type=5\nstart=9, size=4, type=83\nstart=17, size=4, type=c\nstart=25, size=4, type=83\n' \
  | sfdisk -q --no-reread "$tmp/mbr.img"
trim "$tmp/mbr.img" 0 mbr-logical.img
truncate -s 40K "$tmp/gpt.img"
sgdisk -a 1 --resize-table=4 -n 1:8:+4K -t 1:8300 -c 1:one -n 3:0:+4K -t 3:ef00 -c 3:three "$tmp/gpt.img" >/dev/null
trim "$tmp/gpt.img" $((40*1024)) gpt.img
ls -l "$out"
