# netboot-faults: network boot when the network misbehaves.
#  1. lossy: while the kernel comes over TFTP, dom0 drops 25% of the
#     packets to the guest for 5 s (tc netem on its vif); the transfer
#     retransmits, completes, and the guest boots.
#  2. gone: the TFTP server is killed in the middle of the kernel; the
#     console says the server is gone and the menu comes back (nothing
#     hangs); dom0 starts the server again, Enter boots the entry.
#  3. http: a menu whose default kernel is on an HTTP port nobody
#     listens on, whose first fallback is on a server that sends the
#     headers and a little data and then stalls, and whose second is
#     served by busybox httpd. Each failure is said on the console
#     (refused; stalled, after the 30 s idle deadline) and the third
#     entry boots.
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

cat > srv/pxe/http.lst <<CFG
default 0
fallback 1 2
timeout 1
title HTTP server refuses
	kernel (http,10.0.0.1:8081)/vmlinuz console=hvc0
title HTTP server stalls
	kernel (http,10.0.0.1:8080)/vmlinuz console=hvc0
title Debian over HTTP
	kernel (http)/vmlinuz console=hvc0 tbmark=netboot-faults
	initrd (http)/initrd.img
CFG
httpserver "$PWD/srv"
# The stalling server: headers promising 100 MB, 64 KiB of it, then
# nothing; connections are kept open until the scenario ends.
python3 -c '
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.0.1", 8080))
s.listen(8)
open("stall.ready", "w").close()
held = []
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + bytes(65536))
    held.append(c)
' 2>stall.log &
stall=$!
i=0; while [ ! -e stall.ready ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
[ -e stall.ready ] || fail "http: the stalling server did not start: $(cat stall.log)"
MEM=256 domcfg http 'extra="(nd)/pxe/http.lst"' 'vif=["bridge=xenbr0,mac=00:16:3e:00:00:53"]'
console http http.cfg 'GUEST-UP|fatal|minios:|Kernel panic|back to the menu' 300 > http.out 2>&1
kill "$stall" 2>/dev/null
showlog http | grep -v '^\[http\] \[ *[0-9.]*\] *\[ *[0-9.]*\]' | tail -n 30
grep -a 'cannot boot' http.log | tr -d '\r' | sed 's/^.*gopvgrub: /NOTE: http: /'
grep -aq 'cannot boot "HTTP server refuses".*refused' http.log || fail "http: no clear message for the refused connection"
grep -aq 'cannot boot "HTTP server stalls".*stalled' http.log || fail "http: no clear message for the stalled server"
grep -aq 'GUEST-UP.*tbmark=netboot-faults' http.log || fail "http: the third entry did not boot"
netservers_stop
