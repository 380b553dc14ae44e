# chain: gopvgrub chainloads the test bed's Debian 12 kernel (xz bzImage) and
# the tiny guest initrd, handed to it as a ramdisk= tar; the guest must come
# up with our command line, on the same console.
mkdir -p k
cp /tb/vmlinuz k/vmlinuz
cp /tb/guest-initrd.gz k/initrd
echo "console=hvc0 quiet gopvgrub.chaintest=1" > k/cmdline
tar --format=ustar -C k -cf chain.tar vmlinuz initrd cmdline
MEM=256 domcfg chain 'extra="gopvgrub.test=chain"' 'ramdisk="chain.tar"'
console chain chain.cfg 'GUEST-UP|CHAIN FAIL|minios:|panic' 300
showlog chain
xlog chain
grep -a 'd[0-9]*v0\|domain_crash' /var/log/xen/xen.log 2>/dev/null | tail -n 5
grep -aq 'GUEST-UP.*gopvgrub.chaintest=1' chain.log || fail "the chainloaded guest did not come up: $(grep -a 'CHAIN FAIL\|minios:\|Kernel panic' chain.log | head -n 1 | tr -d '\r')"
