# One disk with the test bed's Debian 12 kernel in every form a PV loader
# may meet: Debian's own xz bzImage, Debian's cloud kernel (lz4), the xz
# kernel's vmlinux recompressed by zstd, gzip, bzip2, lzma and lzo and put
# back into the bzImage (setup header updated), the bare vmlinux ELF and a
# gzipped vmlinux; one menu.lst per form.
set -euo pipefail
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/boot/grub"
cloud() { ls "${CACHE:-/var/cache/gopvgrub}"/pkgs/linux-image-*[0-9]-cloud-amd64/boot/vmlinuz-* 2>/dev/null | grep -v deb13 | head -n 1; }
if [ -z "$(cloud)" ]; then
  (cd "$REPO" && GOPVGRUB_REQUIRE_ASSETS=1 go test -count=1 -run '^TestDebianKernel$' ./internal/testassets >/dev/null)
fi
cp "$(cloud)" "$T/boot/vmlinuz-lz4"
cp "$TB_OUT/vmlinuz" "$T/boot/vmlinuz-xz"
(cd "$REPO" && go run ./tools/repack "$TB_OUT/vmlinuz" "$T/repack")
for f in zstd gzip bzip2 lzma lzo; do mv "$T/repack/vmlinuz-$f" "$T/boot/"; done
mv "$T/repack/vmlinux" "$T/repack/vmlinux.gz" "$T/boot/"
cp "$TB_OUT/guest-initrd.gz" "$T/boot/initrd.img"
for f in xz lz4 zstd gzip bzip2 lzma lzo vmlinux vmlinux.gz; do
  k=vmlinuz-$f; case $f in vmlinux*) k=$f;; esac
  printf 'default 0\ntimeout 0\ntitle %s\n\troot (hd0,0)\n\tkernel /boot/%s console=hvc0 tbmark=fmt-%s\n\tinitrd /boot/initrd.img\n' \
    "$f" "$k" "$f" > "$T/boot/grub/$f.lst"
done
ls -l "$T/boot"
img=/tmp/gopvgrub-e2e-$(basename "$SDIR").img
bash "$REPO/testbed/mkdisk.sh" "$img" 320 "$T" ext4
echo "$img" > "$SDIR/virtio.list"
