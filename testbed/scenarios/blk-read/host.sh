# Two disks of random bytes: 256 MiB (writable) and 16 MiB (read-only).
set -euo pipefail
a=/tmp/gopvgrub-e2e-blk-a.img b=/tmp/gopvgrub-e2e-blk-b.img
head -c 256M /dev/urandom > "$a"
head -c 16M /dev/urandom > "$b"
printf '%s\n' "$a" "$b" > "$SDIR/virtio.list"
