set -euo pipefail
img=/tmp/gopvgrub-e2e-blk-reconnect.img
head -c 16M /dev/urandom > "$img"
echo "$img" > "$SDIR/virtio.list"
