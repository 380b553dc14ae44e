# netboot-tftp: PV-GRUB's extra="(nd)/pxe/menu.lst" on a domU with a vif and
# no disk: DHCP, then menu.lst, the kernel and the initrd over TFTP from
# dom0's tftpd-hpa. The chainloaded guest's own netfront then gets a lease
# on the same vif (tbnet=1): the handback left the backend usable.
mkdir -p srv/pxe
cp /tb/vmlinuz srv/vmlinuz
cp /tb/guest-initrd.gz srv/initrd.img
cat > srv/pxe/menu.lst <<CFG
default 0
timeout 2
title Debian over TFTP
	kernel (nd)/vmlinuz console=hvc0 tbnet=1 tbmark=netboot-tftp
	initrd (nd)/initrd.img
CFG
netservers "$PWD/srv"
MEM=256 domcfg nbtftp 'extra="(nd)/pxe/menu.lst"' 'vif=["bridge=xenbr0"]'
console nbtftp nbtftp.cfg 'DHCP-OK|DHCP-FAIL|cannot boot|fatal|minios:|Kernel panic' 400
showlog nbtftp
xlog nbtftp
grep -aq 'GUEST-UP.*tbmark=netboot-tftp' nbtftp.log ||
  fail "the guest did not come up: $(grep -a 'cannot boot\|fatal\|minios:\|gopvgrub: network' nbtftp.log | head -n 1 | tr -d '\r')"
grep -aq 'DHCP-OK ip=10.0.0.1' nbtftp.log || fail "the guest's own netfront got no lease after the handback"
netservers_stop
