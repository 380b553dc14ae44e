# bench-blkfront (make bench BENCH=blkfront; not part of make e2e):
# sequential read of a 256 MiB disk by gopvgrub's blkfront, with its
# read-ahead ("gopvgrub", 9 passes) and without ("noreadahead", 9
# passes), and by dom0 itself with direct I/O (5 passes before, between
# and after the guests, so that drift in the test bed hits both sides),
# as `BENCH key MB/s` lines. A pass takes well under a second: the passes
# are many because the test bed's speed swings by tens of percent.
d=$(virtio_disk bench-blkfront-0) || fail "no test disk in dom0"
dom0_passes() {
  for i in 1 2 3 4 5; do
    s=$(date +%s%N)
    dd if="$d" of=/dev/null bs=4M iflag=direct 2>/dev/null
    e=$(date +%s%N)
    echo "BENCH dom0 $(awk -v b=268435456 -v ns=$((e - s)) 'BEGIN { printf "%.1f", b / (ns / 1e9) / 1e6 }')"
  done
}
guest() { # guest NAME KEY EXTRA...
  MEM=128 domcfg "$1" "extra=\"gopvgrub.test=blk blk.bench=9 $3\"" "disk=[\"phy:$d,xvda,r\"]"
  console "$1" "$1.cfg" 'BLK done|BLK FAIL|fatal|minios:|panic' 300 >/dev/null
  showlog "$1" | grep 'BLK'
  sed 's/^\[ *[0-9.]*\] //' "$1.log" | tr -d '\r' | awk -v k="$2" '/^BLK bench xvda/ { print "BENCH " k " " $NF }'
  grep -aq 'BLK done' "$1.log" || fail "the guest $1 did not finish"
}
dom0_passes
guest bb gopvgrub ""
dom0_passes
guest bn noreadahead "blk.readahead=-1"
dom0_passes
