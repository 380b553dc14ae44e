#!/bin/bash
# bench/blkfront.sh - blkfront's sequential read throughput of a 256 MiB
# disk (4 MiB reads; median of 9 passes), against dom0's own read of the
# same disk with direct I/O (dd iflag=direct bs=4M; median of 15 passes
# around the guests'), in one test-bed run; and the same without
# blkfront's read-ahead, to show what it is worth. Both go through
# QEMU's emulated virtio disk under TCG; the ratio is what carries over.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
testbed_bench bench-blkfront
d=$(vals dom0 | median)
g=$(vals gopvgrub | median)
echo "bench blkfront-seq-read: $g MB/s for 256 MiB ratio $(ratio "$g" "$d") vs dom0 dd iflag=direct ($d MB/s); target >= 0.9"
n=$(vals noreadahead | median)
echo "bench blkfront-seq-read-noreadahead: $n MB/s for 256 MiB ratio $(ratio "$n" "$d") vs dom0 dd iflag=direct ($d MB/s)"
echo "bench blkfront: logs in $res" >&2
