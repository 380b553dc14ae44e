# netboot-dhcp: no extra= and no disk: gopvgrub finds no configuration on a
# disk, runs DHCP and fetches the configuration the boot-file option names.
mkdir -p srv/pxe
cp /tb/vmlinuz srv/vmlinuz
cp /tb/guest-initrd.gz srv/initrd.img
cat > srv/pxe/menu.lst <<CFG
default 0
timeout 2
title Debian, config named by DHCP
	kernel (nd)/vmlinuz console=hvc0 tbnet=1 tbmark=netboot-dhcp
	initrd (nd)/initrd.img
CFG
netservers "$PWD/srv" pxe/menu.lst
MEM=256 domcfg nbdhcp 'vif=["bridge=xenbr0"]'
console nbdhcp nbdhcp.cfg 'DHCP-OK|DHCP-FAIL|cannot boot|fatal|minios:|Kernel panic' 400
showlog nbdhcp
xlog nbdhcp
grep -aq 'trying network boot' nbdhcp.log || fail "no fallback to network boot"
grep -aq 'GUEST-UP.*tbmark=netboot-dhcp' nbdhcp.log ||
  fail "the guest did not come up: $(grep -a 'cannot boot\|fatal\|minios:\|gopvgrub: network' nbdhcp.log | head -n 1 | tr -d '\r')"
grep -aq 'DHCP-OK ip=10.0.0.1' nbdhcp.log || fail "the guest's own netfront got no lease after the handback"
netservers_stop
