# The layout checker (static host CLI) and two copies of the Debian 12
# guest disk (each boot writes to its own).
set -euo pipefail
CGO_ENABLED=0 go -C "$REPO" build -trimpath -o "$SDIR/gopvgrub" ./cmd/gopvgrub
G=$CACHE/testbed/guests/bookworm
bash "$REPO/testbed/mkguest.sh" bookworm "$G"
cp "$G/KVER" "$G/UUID" "$SDIR/"
: > "$SDIR/virtio.list"
for m in 128 2048; do
  cp --sparse=always "$G/disk.img" "/tmp/gopvgrub-e2e-boot-memory-$m.img"
  echo "/tmp/gopvgrub-e2e-boot-memory-$m.img" >> "$SDIR/virtio.list"
done
