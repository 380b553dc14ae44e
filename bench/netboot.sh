#!/bin/bash
# bench/netboot.sh - network-boot transfer times under the test bed: a
# 64 MiB file fetched by gopvgrub over TFTP (atftpd, blksize 1468,
# windowsize 1, 8, 16) against the Debian guest kernel fetching it in a
# direct-booted domU with busybox tftp (blksize 1468, windowsize 1) and
# busybox wget over HTTP, and by gopvgrub over HTTP (busybox httpd).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
testbed_bench bench-netboot
val() { vals "$1" | head -n 1 | median; }
bt=$(val busybox-tftp); bw=$(val busybox-wget)
for ws in 1 8 16; do
  g=$(val gopvgrub_ws$ws)
  echo "bench netboot-tftp-ws$ws: $g s for 64 MiB ratio $(ratio "$g" "$bt") vs Linux busybox tftp blksize 1468 ($bt s)"
done
gh=$(val gopvgrub_http)
echo "bench netboot-http: $gh s for 64 MiB ratio $(ratio "$gh" "$bw") vs Linux busybox wget ($bw s)"
echo "bench netboot: logs in $res" >&2
