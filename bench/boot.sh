#!/bin/bash
# bench/boot.sh - boot timings under the test bed (QEMU TCG running Xen):
#  - the image: ELF and gzip sizes; time from `xl create` to the first
#    console line (hello mode) and to the end of the self-test, and the
#    self-test's peak pages, against the domain's 64 MiB;
#  - the same Debian 12 guest disk (grub.cfg, timeout 0) booted directly
#    (kernel=/ramdisk=), through gopvgrub, pvgrub2 and PyGrub: medians of 3
#    boots each from `xl create` to the guest's marker, and gopvgrub's
#    overhead over direct boot as a ratio of pvgrub2's;
#  - the smallest domain memory (from a ladder) in which gopvgrub boots the
#    guest, against direct boot.
# Absolute times are TCG times, many times slower than hardware; the ratios
# are what carries over.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
testbed_bench bench-boot
elf=$(stat -c %s build/gopvgrub.elf); gz=$(stat -c %s build/gopvgrub-x86_64.gz)

echo "bench boot-image-size: $((elf >> 10)) KiB ELF, $((gz >> 10)) KiB gzip ratio $(ratio "$gz" "$elf") vs ELF"
h=$(vals hello | median); st=$(vals selftest | median); pk=$(vals selftest_peak_pages | median)
echo "bench boot-first-line: $h s from xl create (median of $(vals hello | wc -l)) ratio $(ratio "$h" "$st") vs self-test done"
echo "bench boot-selftest: $st s from xl create to SELFTEST done ratio $(ratio "$st" "$h") vs first line"
echo "bench boot-peak-pages: $pk pages ratio $(ratio "$pk" 16384) vs the 64 MiB domain (16384 pages)"
d=$(vals direct | median); g=$(vals gopvgrub | median); p=$(vals pvgrub2 | median); y=$(vals pygrub | median)
echo "bench boot-direct: $d s to guest marker (median of 3) ratio 1.00 vs direct"
echo "bench boot-gopvgrub: $g s to guest marker ratio $(ratio "$g" "$d") vs direct"
echo "bench boot-pvgrub2: $p s to guest marker ratio $(ratio "$p" "$d") vs direct"
echo "bench boot-pygrub: $y s to guest marker ratio $(ratio "$y" "$d") vs direct"
og=$(awk -v a="$g" -v b="$d" 'BEGIN { if (a=="NA"||b=="NA") print "NA"; else printf "%.2f", a-b }')
op=$(awk -v a="$p" -v b="$d" 'BEGIN { if (a=="NA"||b=="NA") print "NA"; else printf "%.2f", a-b }')
echo "bench boot-overhead: $og s gopvgrub over direct ratio $(ratio "$og" "$op") vs pvgrub2's overhead ($op s)"
mg=$(vals minmem_gopvgrub); md=$(vals minmem_direct)
echo "bench boot-min-memory: ${mg:-NA} MiB for gopvgrub ratio $(ratio "${mg:-NA}" "${md:-NA}") vs direct boot (${md:-NA} MiB)"
echo "bench boot: logs in $res" >&2
