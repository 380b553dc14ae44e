# bench-netboot (make bench BENCH=netboot; not part of make e2e): a 64 MiB
# file fetched by gopvgrub over TFTP from atftpd with windowsize 1, 8 and
# 16 and over HTTP from busybox httpd, and by the Debian guest kernel in a
# direct-booted domU with busybox tftp (blksize 1468) and wget (from the
# same httpd), as `BENCH key seconds`.
mkdir -p srv/pxe
printf 'default 0\ntitle bench\nkernel (nd)/vmlinuz\n' > srv/pxe/menu.lst
head -c 67108864 /dev/urandom > srv/big64
sum=$(sha256sum < srv/big64 | cut -d' ' -f1)
netservers "$PWD/srv" pxe/menu.lst
kill "$(cat /run/tb-tftpd.pid)" 2>/dev/null; sleep 0.5
./atftpd --daemon --no-fork --port 69 --bind-address 10.0.0.1 --user nobody.nogroup --logfile /dev/null --no-multicast "$PWD/srv" &
apid=$!
sleep 1
httpserver "$PWD/srv"
MEM=256 domcfg gf 'extra="gopvgrub.test=fetch fetch.file=/big64 fetch.ws=1,8,16 fetch.http=1"' 'vif=["bridge=xenbr0,mac=00:16:3e:00:00:61"]'
console gf gf.cfg 'FETCH done|FETCH FAIL|fatal|minios:|panic' 900 >/dev/null
showlog gf | grep 'FETCH\|net: tftp\|net: http'
sed 's/^\[ *[0-9.]*\] //' gf.log | tr -d '\r' | awk -v s="$sum" '
  /^FETCH tftp ws/ { if ($NF != s) print "FAIL: windowsize " $4 ": wrong sha256"; printf "BENCH gopvgrub_ws%s %.3f\n", $4, $8 / 1000 }
  /^FETCH http / { if ($NF != s) print "FAIL: http: wrong sha256"; printf "BENCH gopvgrub_http %.3f\n", $6 / 1000 }'
i=0; while ! gone gf && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done
MEM=256 KERNEL=/tb/vmlinuz domcfg bf 'ramdisk="fetch-initrd.gz"' 'extra="console=hvc0 tbfetch=big64"' 'vif=["bridge=xenbr0,mac=00:16:3e:00:00:62"]'
console bf bf.cfg 'FETCH done|FETCH FAIL|Kernel panic' 900 >/dev/null
showlog bf | grep 'FETCH'
sed 's/^\[ *[0-9.]*\] //' bf.log | tr -d '\r' | awk '/^FETCH busybox-/ { print "BENCH " $2 " " $4 }'
kill $apid 2>/dev/null
netservers_stop
grep -aq 'FETCH done' gf.log || fail "gopvgrub did not finish: $(grep -a 'FETCH FAIL' gf.log | head -n 1 | tr -d '\r')"
