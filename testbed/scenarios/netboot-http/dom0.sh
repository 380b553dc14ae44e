# netboot-http: netboot-dhcp over HTTP. No extra= and no disk: DHCP's boot
# file is an http:// URL, and the grub.cfg it names loads the kernel and
# the initrd over HTTP in both GRUB 2 forms, "(http)/path" (the boot
# server) and "http://server/path", from busybox httpd in dom0. TFTP serves
# an empty directory, so nothing can come over TFTP by mistake. The guest's
# own netfront then gets a lease (the handback proof).
mkdir -p srv/pxe empty
cp /tb/vmlinuz srv/vmlinuz
cp /tb/guest-initrd.gz srv/initrd.img
cat > srv/pxe/grub.cfg <<CFG
set timeout=2
menuentry 'Debian over HTTP' {
	linux (http)/vmlinuz console=hvc0 tbnet=1 tbmark=netboot-http
	initrd http://10.0.0.1/initrd.img
}
CFG
netservers "$PWD/empty" http://10.0.0.1/pxe/grub.cfg
httpserver "$PWD/srv"
MEM=256 domcfg nbhttp 'vif=["bridge=xenbr0"]'
console nbhttp nbhttp.cfg 'DHCP-OK|DHCP-FAIL|cannot boot|fatal|minios:|Kernel panic' 400
showlog nbhttp
xlog nbhttp
cat httpd.log
netservers_stop
log=$(sed 's/^\[ *[0-9.]*\] //' nbhttp.log | tr -d '\r')
echo "$log" | grep -q 'using http://10.0.0.1/pxe/grub.cfg' || fail "the grub.cfg did not come over HTTP: $(echo "$log" | grep -a 'cannot boot\|fatal\|minios:\|gopvgrub: network\|netboot:' | head -n 1)"
for f in vmlinuz initrd.img; do
  want=$(stat -c %s "srv/$f")
  echo "$log" | grep -q "http http://10.0.0.1:80/$f: $want bytes in" || fail "no complete HTTP transfer of $f ($want bytes) on the console"
  grep -q "url:/$f" httpd.log || fail "busybox httpd logged no request for /$f"
done
note "$(echo "$log" | grep -o 'http http://10.0.0.1:80/vmlinuz: [0-9]* bytes in [0-9.]*m\?s' | head -n 1)"
grep -aq 'GUEST-UP.*tbmark=netboot-http' nbhttp.log ||
  fail "the guest did not come up: $(echo "$log" | grep -a 'cannot boot\|fatal\|minios:\|gopvgrub: network' | head -n 1)"
grep -aq 'DHCP-OK ip=10.0.0.1' nbhttp.log || fail "the guest's own netfront got no lease after the handback"
