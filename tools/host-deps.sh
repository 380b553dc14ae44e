#!/bin/bash
# host-deps.sh - install what building and testing gopvgrub needs on a Debian 12
# (bookworm) amd64 host: the apt packages below and the Go toolchain named in
# go.mod (fetched from the Go module proxy if the host's go is missing or older),
# then the Go modules. Idempotent; needs root for apt.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(
  # test bed: QEMU (TCG) running Xen + a Debian dom0 built with mmdebstrap
  qemu-system-x86 qemu-utils mmdebstrap debootstrap kmod bc cpio busybox-static python3
  # filesystem images made by the real tools (fs tests, guest disks)
  e2fsprogs dosfstools mtools xorriso genisoimage squashfs-tools fdisk gdisk
  # every kernel payload compressor (loader tests)
  gzip bzip2 xz-utils lz4 zstd lzop
  # Xen public headers, to check our ABI mirrors against
  libxen-dev
  # misc
  ca-certificates curl unzip git make
)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "host-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  echo "host-deps: installing ${missing[*]}" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go toolchain: the version go.mod names.
want=$(awk '/^go /{print $2}' go.mod)
have=$(go env GOVERSION 2>/dev/null | sed 's/^go//' || true)
ver_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
if [ -z "$have" ] || ! ver_ge "$have" "$want"; then
  GOROOT_DIR=/usr/local/go
  echo "host-deps: installing Go $want into $GOROOT_DIR from the module proxy" >&2
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${want}.linux-amd64.zip"
  (cd "$tmp" && unzip -q go.zip)
  rm -rf "$GOROOT_DIR"; mkdir -p "$(dirname "$GOROOT_DIR")"
  mv "$tmp/golang.org/toolchain@v0.0.1-go${want}.linux-amd64" "$GOROOT_DIR"
  chmod +x "$GOROOT_DIR"/bin/* "$GOROOT_DIR"/pkg/tool/*/* 2>/dev/null || true
  rm -rf "$tmp"
  ln -sf "$GOROOT_DIR/bin/go" /usr/local/bin/go; ln -sf "$GOROOT_DIR/bin/gofmt" /usr/local/bin/gofmt
fi
go mod download
