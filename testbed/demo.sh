#!/bin/bash
# demo.sh - gopvgrub's main job, end to end: the test bed (Xen 4.17 + a Debian
# dom0 in QEMU, built and cached on first use) creates a domU whose kernel= is
# build/gopvgrub-x86_64.gz and whose disk is a small Debian-style MBR/ext4
# image with a grub.cfg; gopvgrub finds the config, shows its menu, loads
# Debian's kernel and initrd from the disk and chainloads them. The guest's
# console, as `xl create -c` showed it, is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(bash testbed/e2e.sh boot-grubcfg 2>&1) || st=$?
echo "$out"
log=$(echo "$out" | sed -n 's/^e2e: logs in //p')
if [ -n "$log" ] && [ -f "$log/boot-grubcfg.log" ]; then
  echo "---- the domU's console (xl create -c) ----"
  grep -a '^\[bootcfg\]' "$log/boot-grubcfg.log" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/^\[bootcfg\] //'
fi
exit "${st:-0}"
