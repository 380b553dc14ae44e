#!/bin/bash
# bench/blkfront.sh - blkfront's sequential read throughput of a 256 MiB
# disk (4 MiB reads; median of 5 passes, dom0 median of 3), against dom0's own read of the same
# disk with direct I/O (dd iflag=direct bs=4M), in one test-bed run.
# Both go through QEMU's emulated virtio disk under TCG; the ratio is
# what carries over.
set -uo pipefail
cd "$(dirname "$0")/.."
make -s image >/dev/null || exit 1
res=$(mktemp -d /tmp/gopvgrub-bench-blkfront.XXXXXX)
E2E_RESULTS=$res bash testbed/e2e.sh bench-blkfront >&2
log=$res/bench-blkfront.log
vals() { grep -a "^BENCH $1 " "$log" | awk '{print $3}'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "NA"; else print a[int((NR+1)/2)]}'; }
g=$(vals gopvgrub | median); d=$(vals dom0 | median)
r=$(awk -v a="$g" -v b="$d" 'BEGIN { if (a=="NA" || b=="NA" || b+0==0) print "NA"; else printf "%.2f", a/b }')
echo "bench blkfront-seq-read: $g MB/s for 256 MiB ratio $r vs dom0 dd iflag=direct ($d MB/s); target >= 0.9"
echo "bench blkfront: logs in $res" >&2
