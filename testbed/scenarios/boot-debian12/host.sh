# The real Debian guest disk (testbed/mkguest.sh, cached), copied: the
# guest writes to it.
set -euo pipefail
G=$CACHE/testbed/guests/bookworm
bash "$REPO/testbed/mkguest.sh" bookworm "$G"
img=/tmp/gopvgrub-e2e-boot-debian12.img
cp --sparse=always "$G/disk.img" "$img"
cp "$G/KVER" "$G/UUID" "$SDIR/"
echo "$img" > "$SDIR/virtio.list"
