# boot-fallback: the default entry's kernel is corrupt: the console says why
# and the menu.lst's fallback entry boots instead.
d=$(virtio_disk boot-fallback-0) || fail "no test disk in dom0"
MEM=256 domcfg fallback "disk=[\"phy:$d,xvda,r\"]" 'extra="(hd0,0)/boot/grub/menu.lst"'
console fallback fallback.cfg 'GUEST-UP|fatal|minios:|Kernel panic' 300
showlog fallback
xlog fallback
grep -aq 'cannot boot "Debian (corrupt kernel)"' fallback.log || fail "no message about the corrupt kernel"
grep -a 'cannot boot' fallback.log | head -n 2
grep -aq 'GUEST-UP.*tbmark=menulst-fallback' fallback.log || fail "the fallback entry did not boot: $(grep -a 'GUEST-UP\|fatal\|minios:' fallback.log | head -n 1 | tr -d '\r')"
