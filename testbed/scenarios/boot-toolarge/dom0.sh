# boot-toolarge: the default entry's initrd is larger than the domain's
# memory: gopvgrub says so before reading it, the menu comes back (no
# timeout), and the second entry, picked with the keys, boots.
d=$(virtio_disk boot-toolarge-0) || fail "no test disk in dom0"
MEM=256 domcfg toolarge "disk=[\"phy:$d,xvda,r\"]"
console toolarge toolarge.cfg 'GUEST-UP|fatal|minios:|Kernel panic' 200 keys
showlog toolarge
xlog toolarge
grep -a 'cannot boot' toolarge.log | head -n 2 | tr -d '\r'
grep -aq 'cannot boot "Debian with a 1 GiB initrd".*MiB missing' toolarge.log || fail "no clear message about the initrd's size"
grep -aq 'back to the menu' toolarge.log || fail "the menu did not come back"
grep -aq 'GUEST-UP.*tbmark=toolarge-second' toolarge.log || fail "the second entry did not boot from the menu: $(grep -a 'GUEST-UP\|fatal\|minios:' toolarge.log | head -n 1 | tr -d '\r')"
