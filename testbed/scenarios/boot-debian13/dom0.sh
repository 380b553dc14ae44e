# boot-debian13: the same with Debian 13 (trixie), whose kernel is a zstd
# bzImage. pvgrub2 (Debian's grub-xen) is tried first on the same disk and
# must fail: its console error is recorded.
d=$(virtio_disk boot-debian13-0) || fail "no guest disk in dom0"
MEM=512 KERNEL=/usr/lib/grub-xen/grub-x86_64-xen.bin domcfg pvgrub2 "disk=[\"phy:$d,xvda,r\"]"
console pvgrub2 pvgrub2.cfg 'TB-DEBIAN-UP|Press any key to continue|Kernel panic' 300 >/dev/null
xl destroy pvgrub2 2>/dev/null
err=$(sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' pvgrub2.log | tr -d '\r' | grep -a 'error' | grep -v 'video mode\|file .*not found\|no such device\|disk .* not found' | sed 's/^\[ *[0-9.]*\] //' | head -n 3 | tr '\n' ' ')
note "pvgrub2 on trixie: ${err:-no error line}"
grep -aq 'TB-DEBIAN-UP' pvgrub2.log && fail "pvgrub2 booted the zstd kernel: the comparison is void"
[ -n "$err" ] || { showlog pvgrub2 | tail -n 20; fail "pvgrub2 failed without an error line"; }
debian_boot deb13 trixie boot-debian13-0
