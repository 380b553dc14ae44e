# boot-menulst: extra="(hd0,0)/boot/grub/menu.lst" as PV-GRUB users write it;
# the second entry is picked with the arrow keys and Enter.
d=$(virtio_disk boot-menulst-0) || fail "no test disk in dom0"
MEM=256 domcfg menulst "disk=[\"phy:$d,xvda,r\"]" 'extra="(hd0,0)/boot/grub/menu.lst"'
console menulst menulst.cfg 'GUEST-UP|fatal|minios:|Kernel panic' 300 keys
showlog menulst
xlog menulst
grep -aq 'GUEST-UP.*tbmark=menulst-entry2' menulst.log || fail "entry 2 did not boot: $(grep -a 'GUEST-UP\|cannot boot\|fatal\|minios:' menulst.log | head -n 1 | tr -d '\r')"
