# boot-lowmem: Debian 12's generic kernel (xz, whose decoder keeps a
# 32 MiB dictionary while it fills the next kernel's frames) in a 128 MiB
# domain does not fit: gopvgrub must say how much memory is missing and
# return to the menu, not run the shim out of frames and crash.
d=$(virtio_disk boot-lowmem-0) || fail "no test disk in dom0"
MEM=128 domcfg lowmem "disk=[\"phy:$d,xvda,r\"]"
console lowmem lowmem.cfg 'back to the menu|GUEST-UP|fatal|minios:|Kernel panic' 200
showlog lowmem | grep -v '^\[lowmem\] \[ *[0-9.]*\] \[ *[0-9.]*\]' | grep 'gopvgrub\|minios' | tail -n 12
grep -aq 'minios: out of memory' lowmem.log && fail "the shim ran out of frames: the domain crashed"
grep -aq 'cannot boot "Debian GNU/Linux": .*not enough memory.*MiB missing' lowmem.log || fail "no clear message about the missing memory"
grep -aq 'back to the menu' lowmem.log || fail "the menu did not come back"
