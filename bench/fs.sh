#!/bin/bash
# bench/fs.sh - time reading a 64 MiB file out of an ext4 image (Debian 12
# mke2fs defaults) with our reader (fs/internal/fsbench: open the image,
# the volume and the file, copy it out with 1 MiB reads) against
# `debugfs -R "dump ..."` of the same file. Both are whole processes timed
# from outside, both write the file to the same temporary directory, both
# are best of 5 warm-cache runs, and both copies are compared with the
# original byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=5

mkdir -p "$tmp/tree/boot"
head -c $((64 << 20)) /dev/urandom > "$tmp/tree/boot/vmlinuz"
mke2fs -q -F -t ext4 -d "$tmp/tree" "$tmp/ext4.img" 256M >/dev/null
go build -o "$tmp/fsbench" ./fs/internal/fsbench

# best_ms CMD...: the fastest of $runs runs of a command, in ms.
best_ms() {
  local best="" s e us
  for _ in $(seq $runs); do
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s%N)
    us=$(( (e - s) / 1000 ))
    if [ -z "$best" ] || [ "$us" -lt "$best" ]; then best=$us; fi
  done
  awk -v us="$best" 'BEGIN { printf "%.1f", us / 1000 }'
}
ours=$(best_ms "$tmp/fsbench" -runs 1 "$tmp/ext4.img" /boot/vmlinuz "$tmp/ours.out")
theirs=$(best_ms debugfs -R "dump /boot/vmlinuz $tmp/debugfs.out" "$tmp/ext4.img")

cmp -s "$tmp/ours.out" "$tmp/tree/boot/vmlinuz" || { echo "bench fs: our copy differs from the original" >&2; exit 1; }
cmp -s "$tmp/debugfs.out" "$tmp/tree/boot/vmlinuz" || { echo "bench fs: debugfs's copy differs from the original" >&2; exit 1; }

ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')
echo "bench fs-ext4-read-64MiB: $ours ms (debugfs $theirs ms, best of $runs) ratio $ratio vs debugfs"
