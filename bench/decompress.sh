#!/bin/bash
# bench/decompress.sh - decompression time of Debian 12's vmlinux with each
# of the seven payload formats: loader/decompress (Go, in-process) against
# the C tool (`xz -dc` …, wall clock, output to /dev/null) on the same
# compressed stream. ratio = Go time / C time (lower is better).
# The compressed files are made with the flags Linux's build uses
# (scripts/Makefile.lib; zstd at -19 rather than -22 to save minutes) and
# cached under $GOPVGRUB_CACHE/bench-decompress.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
CACHE=${GOPVGRUB_CACHE:-/var/cache/gopvgrub}
work=$CACHE/bench-decompress
mkdir -p "$work"

# The Debian kernel: the loader tests download it through testassets.
go test -count=1 -run '^TestDebianKernels$' ./loader/ >/dev/null
vmlinuz=$(ls "$CACHE"/pkgs/linux-image-*-amd64/boot/vmlinuz-* 2>/dev/null | grep -v cloud | head -1)
[ -n "$vmlinuz" ] || { echo "decompress.sh: no Debian amd64 kernel in $CACHE" >&2; exit 1; }
tool=$work/decompressbench
go build -o "$tool" ./loader/internal/decompressbench
vmlinux=$work/vmlinux
"$tool" extract "$vmlinuz" "$vmlinux"
size=$(stat -c %s "$vmlinux")
key=$(sha256sum "$vmlinux" | cut -c1-16)

# name|compress command|C decompressor
formats=(
  "gzip|gzip -n -9|gzip -dc"
  "bzip2|bzip2 -9|bzip2 -dc"
  "xz|xz --check=crc32 --x86 --lzma2=dict=32MiB|xz -dc"
  "lzma|lzma -9|lzma -dc"
  "lz4|lz4 -l -9|lz4 -dc"
  "zstd|zstd -q -19|zstd -dc"
  "lzo|lzop -9|lzop -dc"
)

now_ms() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for f in "${formats[@]}"; do
  IFS='|' read -r name comp dec <<<"$f"
  plain=$work/$key.$name
  if [ ! -s "$plain" ]; then
    $comp <"$vmlinux" >"$plain.tmp" && mv "$plain.tmp" "$plain"
  fi
  # Go gets the stream as it sits in a bzImage: with the size trailer.
  withtrailer=$work/$key.$name.trailer
  if [ ! -s "$withtrailer" ]; then
    { cat "$plain"; python3 -c "import struct,sys; sys.stdout.buffer.write(struct.pack('<I', $size))"; } >"$withtrailer"
  fi
  go_ms=$("$tool" time "$RUNS" "$withtrailer" "$size")
  c_ms=$(for _ in $(seq "$RUNS"); do
    t0=$(now_ms); $dec <"$plain" >/dev/null; t1=$(now_ms)
    echo $(( (t1 - t0) / 1000 ))
  done | median)
  c_ms=$(awk -v us="$c_ms" 'BEGIN {printf "%.1f", us/1000}')
  ratio=$(awk -v g="$go_ms" -v c="$c_ms" 'BEGIN {printf "%.2f", g/c}')
  echo "bench decompress-$name: $go_ms ms (C: $c_ms ms, $((size / 1048576)) MiB vmlinux) ratio $ratio vs ${dec}"
done
