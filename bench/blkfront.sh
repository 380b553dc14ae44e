#!/bin/bash
# bench/blkfront.sh - blkfront's sequential read throughput of a 256 MiB
# disk (4 MiB reads; median of 9 passes), against dom0's own read of the
# same disk with direct I/O (dd iflag=direct bs=4M; median of 15 passes
# around the guests'), in one test-bed run; and the same without
# blkfront's read-ahead, to show what it is worth. Both go through
# QEMU's emulated virtio disk under TCG; the ratio is what carries over.
set -uo pipefail
cd "$(dirname "$0")/.."
make -s image >/dev/null || exit 1
res=$(mktemp -d /tmp/gopvgrub-bench-blkfront.XXXXXX)
E2E_RESULTS=$res bash testbed/e2e.sh bench-blkfront >&2
log=$res/bench-blkfront.log
vals() { grep -a "^BENCH $1 " "$log" | awk '{print $3}'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "NA"; else print a[int((NR+1)/2)]}'; }
d=$(vals dom0 | median)
ratio() { awk -v a="$1" -v b="$d" 'BEGIN { if (a=="NA" || b=="NA" || b+0==0) print "NA"; else printf "%.2f", a/b }'; }
g=$(vals gopvgrub | median)
echo "bench blkfront-seq-read: $g MB/s for 256 MiB ratio $(ratio "$g") vs dom0 dd iflag=direct ($d MB/s); target >= 0.9"
n=$(vals noreadahead | median)
echo "bench blkfront-seq-read-noreadahead: $n MB/s for 256 MiB ratio $(ratio "$n") vs dom0 dd iflag=direct ($d MB/s)"
echo "bench blkfront: logs in $res" >&2
