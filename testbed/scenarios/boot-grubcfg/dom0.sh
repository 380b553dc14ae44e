# boot-grubcfg: no extra=: gopvgrub finds /boot/grub/grub.cfg on the guest's
# ext4 partition, shows the menu and after its timeout boots the default
# entry's kernel and initrd from the disk, with that entry's command line.
d=$(virtio_disk boot-grubcfg-0) || fail "no test disk in dom0"
MEM=256 domcfg bootcfg "disk=[\"phy:$d,xvda,r\"]"
console bootcfg bootcfg.cfg 'GUEST-UP|fatal|minios:|Kernel panic' 300
showlog bootcfg
xlog bootcfg
grep -aq 'using (hd0,msdos1)/boot/grub/grub.cfg' bootcfg.log || fail "grub.cfg was not found on the disk"
grep -aq 'GUEST-UP.*tbmark=grubcfg-default' bootcfg.log || fail "the default entry did not boot: $(grep -a 'cannot boot\|fatal\|minios:' bootcfg.log | head -n 1 | tr -d '\r')"
