# The real Debian guest disk (testbed/mkguest.sh, cached), copied: the
# guest writes to it.
set -euo pipefail
G=$CACHE/testbed/guests/trixie
bash "$REPO/testbed/mkguest.sh" trixie "$G"
img=/tmp/gopvgrub-e2e-boot-debian13.img
cp --sparse=always "$G/disk.img" "$img"
cp "$G/KVER" "$G/UUID" "$SDIR/"
echo "$img" > "$SDIR/virtio.list"
