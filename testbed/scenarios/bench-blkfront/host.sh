set -euo pipefail
img=/tmp/gopvgrub-bench-blkfront.img
head -c 256M /dev/urandom > "$img"
echo "$img" > "$SDIR/virtio.list"
