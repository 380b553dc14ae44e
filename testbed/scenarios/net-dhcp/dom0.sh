# net-dhcp: gopvgrub's netfront gets a lease from dom0's DHCP server on the
# bridge and fetches the config the boot-file option names; dom0 sees the
# frontend connected, then gopvgrub hands the vif back.
mkdir -p srv/pxe
printf 'default 0\ntitle net-dhcp\nkernel (nd)/vmlinuz\n' > srv/pxe/menu.lst
netservers "$PWD/srv" pxe/menu.lst
MEM=128 domcfg net 'extra="gopvgrub.test=net"' 'vif=["bridge=xenbr0,mac=00:16:3e:00:00:42"]'
console net net.cfg 'NET lease|NET FAIL|fatal|minios:' 120
showlog net
grep -aq 'NET lease' net.log || { xlog net; fail "no lease: $(grep -a 'NET FAIL\|fatal\|minios:' net.log | head -n 1 | tr -d '\r')"; }
line=$(grep -a 'NET lease' net.log | head -n 1 | tr -d '\r')
for want in 'address 10.0.0.1[0-9][0-9]/24' 'router 10.0.0.1 ' 'server 10.0.0.1 ' 'boot_file "pxe/menu.lst"' 'config pxe/menu.lst ([1-9]'; do
  echo "$line" | grep -q "$want" || fail "lease line lacks '$want': $line"
done
xl network-list net | tee netlist.txt
# Idx BE Mac Addr. handle state evt-ch tx-/rx-ring-ref BE-path: state 4 is Connected.
awk 'NR==2 && $5==4 {ok=1} END {exit !ok}' netlist.txt || fail "frontend not connected in xl network-list"
# The guest closes the vif after 15 s and powers off; its console log says how.
i=0; while ! gone net && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done
gone net || fail "the domain did not power off after the handback"
cl=/var/log/xen/console/guest-net.log
sed 's/^/[console] /' "$cl" | tail -n 5
grep -aq 'NET closed' "$cl" || fail "handback failed: $(grep -a 'NET FAIL' "$cl" | head -n 1 | tr -d '\r')"
netservers_stop
