# netboot-faults: network boot when the network misbehaves.
#  1. lossy: while the kernel comes over TFTP, dom0 drops 25% of the
#     packets to the guest for 5 s (tc netem on its vif); the transfer
#     retransmits, completes, and the guest boots.
#  2. gone: the TFTP server is killed in the middle of the kernel; the
#     console says the server is gone and the menu comes back (nothing
#     hangs); dom0 starts the server again, Enter boots the entry.
mkdir -p srv/pxe
cp /tb/vmlinuz srv/vmlinuz
cp /tb/guest-initrd.gz srv/initrd.img
cat > srv/pxe/menu.lst <<CFG
default 0
timeout 1
title Debian over a bad network
	kernel (nd)/vmlinuz console=hvc0 tbmark=netboot-faults
	initrd (nd)/initrd.img
CFG
netservers "$PWD/srv"
# vifof NAME: the dom0 side of NAME's first vif.
vifof() { echo "vif$(xl domid "$1" 2>/dev/null).0"; }

MEM=256 domcfg lossy 'extra="(nd)/pxe/menu.lst"' 'vif=["bridge=xenbr0,mac=00:16:3e:00:00:51"]'
console lossy lossy.cfg 'GUEST-UP|cannot boot|fatal|minios:|Kernel panic' 400 > lossy.out 2>&1 &
waitlog lossy.log 'loading (nd)/vmlinuz' 120 || { wait; showlog lossy; fail "lossy: the kernel transfer did not start"; }
v=$(vifof lossy)
tc qdisc add dev "$v" root netem loss 25% || { wait; fail "tc netem on $v failed"; }
sleep 5
tc -s qdisc show dev "$v" | sed 's/^/[tc] /'
tc qdisc del dev "$v" root
wait
showlog lossy | grep -v '^\[lossy\] \[ *[0-9.]*\] *\[ *[0-9.]*\]' | tail -n 40
grep -aq 'GUEST-UP.*tbmark=netboot-faults' lossy.log ||
  fail "lossy: the guest did not come up: $(grep -a 'cannot boot\|fatal\|minios:\|net: tftp' lossy.log | head -n 1 | tr -d '\r')"
line=$(grep -a 'net: tftp .*/vmlinuz: [0-9]* bytes' lossy.log | tail -n 1 | tr -d '\r')
note "lossy: $line"
r=$(echo "$line" | sed -n 's/.*), \([0-9]*\) retransmissions.*/\1/p')
[ "${r:-0}" -gt 0 ] || fail "lossy: no retransmission recorded for the kernel ($line)"

MEM=256 domcfg gone 'extra="(nd)/pxe/menu.lst"' 'vif=["bridge=xenbr0,mac=00:16:3e:00:00:52"]'
console gone gone.cfg 'GUEST-UP|fatal|minios:|Kernel panic' 400 keys > gone.out 2>&1 &
waitlog gone.log 'loading (nd)/vmlinuz' 120 || { wait; showlog gone; fail "gone: the kernel transfer did not start"; }
sleep 1
pgrep -a in.tftpd | sed 's/^/[tftpd] /'
pkill -f in.tftpd
sleep 0.2
pgrep in.tftpd >/dev/null && { pkill -9 -f in.tftpd; note "in.tftpd needed SIGKILL"; }
t0=$(up)
waitlog gone.log 'back to the menu' 180 || { wait; showlog gone; fail "gone: the menu did not come back"; }
note "gone: the menu came back $(awk -v a="$t0" -v b="$(up)" 'BEGIN{printf "%.0f", b-a}') s after the server died"
netservers "$PWD/srv"
wait
showlog gone | grep -v '^\[gone\] \[ *[0-9.]*\] *\[ *[0-9.]*\]' | tail -n 40
grep -aq 'net: tftp 10.0.0.1/vmlinuz: failed' gone.log || fail "gone: the kernel transfer did not fail when the server died"
grep -aq 'cannot boot.*tftp' gone.log || fail "gone: no clear message about the lost server"
grep -aq 'GUEST-UP.*tbmark=netboot-faults' gone.log || fail "gone: the entry did not boot once the server was back"
netservers_stop
