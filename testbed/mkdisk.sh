#!/bin/bash
# mkdisk.sh IMG SIZE_MB DIR [FSTYPE] [UUID] - a guest disk as real tools make
# it: an MBR (sfdisk) with one bootable partition from 1 MiB, formatted
# ext4 (mke2fs -d) or vfat (mkfs.fat + mcopy) with DIR's contents.
set -euo pipefail
img=$1 size=$2 dir=$3 fstype=${4:-ext4} uuid=${5:-}
PATH=$PATH:/usr/sbin:/sbin
rm -f "$img"
truncate -s "${size}M" "$img"
printf 'label: dos\nstart=2048, type=%s, bootable\n' "$([ "$fstype" = vfat ] && echo c || echo 83)" | sfdisk -q "$img"
part_mb=$((size - 1))
case $fstype in
ext*)
  mke2fs -q -F -t "$fstype" ${uuid:+-U "$uuid"} -E offset=1048576 -d "$dir" "$img" "${part_mb}M"
  ;;
vfat)
  p=$(mktemp); truncate -s "${part_mb}M" "$p"
  mkfs.fat -F 32 ${uuid:+-i "${uuid//-/}"} "$p" >/dev/null
  (cd "$dir" && find . -mindepth 1 -type d | sed 's|^\./||' | while read -r d; do mmd -i "$p" "::/$d"; done
   find . -type f | sed 's|^\./||' | while read -r f; do mcopy -i "$p" "$f" "::/$f"; done)
  dd if="$p" of="$img" bs=1M seek=1 conv=notrunc status=none
  rm -f "$p"
  ;;
*) echo "mkdisk: unknown fstype $fstype" >&2; exit 1 ;;
esac
