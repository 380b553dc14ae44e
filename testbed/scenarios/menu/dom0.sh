# menu: no extra=: gopvgrub discovers /boot/grub/menu.lst on a real ext4
# guest disk through blkfront; the 2nd entry is picked with the arrow keys
# and Enter, and the console shows the kernel, initrd and command line
# that boot.
d=$(virtio_disk menu-0) || fail "no test disk in dom0"
MEM=256 domcfg menu "disk=[\"phy:$d,xvda,r\"]"
console menu menu.cfg 'GUEST-UP|fatal|minios:|Kernel panic' 200 keys
showlog menu
log=$(sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' menu.log | tr -d '\r')
for want in 'using (hd0,msdos1)/boot/grub/menu.lst (menu.lst, 3 entries)' "Booting \`Debian entry two'" \
    'loading (hd0,1)/boot/vmlinuz$' 'loading (hd0,1)/boot/initrd.img' 'GUEST-UP.*cmdline=console=hvc0 tbmark=menulst-entry2'; do
  echo "$log" | grep -q -- "$want" || fail "console lacks: $want"
done
