# A small disk, so that the domain's xenstore tree has a device/vbd.
set -euo pipefail
img=/tmp/gopvgrub-e2e-xenstore.img
rm -f "$img"; truncate -s 4M "$img"
echo "$img" > "$SDIR/virtio.list"
