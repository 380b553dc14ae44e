# bench-blkfront (make bench BENCH=blkfront; not part of make e2e):
# sequential read of a 256 MiB disk by gopvgrub's blkfront (3 passes) and
# by dom0 itself with direct I/O (5 passes), as `BENCH key MB/s` lines.
d=$(virtio_disk bench-blkfront-0) || fail "no test disk in dom0"
for i in 1 2 3; do
  s=$(date +%s%N)
  dd if="$d" of=/dev/null bs=4M iflag=direct 2>/dev/null
  e=$(date +%s%N)
  echo "BENCH dom0 $(awk -v b=268435456 -v ns=$((e - s)) 'BEGIN { printf "%.1f", b / (ns / 1e9) / 1e6 }')"
done
MEM=128 domcfg bb 'extra="gopvgrub.test=blk blk.bench=5"' "disk=[\"phy:$d,xvda,r\"]"
console bb bb.cfg 'BLK done|BLK FAIL|fatal|minios:|panic' 300 >/dev/null
showlog bb | grep 'BLK'
sed 's/^\[ *[0-9.]*\] //' bb.log | tr -d '\r' | awk '/^BLK bench xvda/ { print "BENCH gopvgrub " $NF }'
grep -aq 'BLK done' bb.log || fail "the guest did not finish"
