# blk-read: a domU with two disks, a writable 256 MiB one and a read-only
# 16 MiB one, reads both end to end through blkfront; the sha256 sums it
# prints must equal dom0's sha256sum of the same images. Reading past the
# end gives EOF, a write to the read-only disk is refused with a clear
# error, and a marker written to the writable one is found in dom0.
a=$(virtio_disk blk-read-0) && b=$(virtio_disk blk-read-1) || fail "no test disks in dom0"
sa=$(sha256sum < "$a" | cut -d' ' -f1); sb=$(sha256sum < "$b" | cut -d' ' -f1)
MEM=128 domcfg blk 'extra="gopvgrub.test=blk"' "disk=[\"phy:$a,xvda,w\",\"phy:$b,xvdb,r\"]"
console blk blk.cfg 'BLK done|BLK FAIL|fatal|minios:|panic' 400
showlog blk
log=$(sed 's/^\[ *[0-9.]*\] //' blk.log | tr -d '\r')
echo "$log" | grep -q '^BLK done' || fail "the guest failed: $(echo "$log" | grep -a 'BLK FAIL\|fatal\|minios:\|panic' | head -n 1)"
for want in "^BLK dev xvda .* size 268435456 .* ro false" "^BLK dev xvdb .* size 16777216 .* ro true" \
    "^BLK sha xvda $sa bytes 268435456 " "^BLK sha xvdb $sb bytes 16777216 " \
    '^BLK past-end xvda n 0 err EOF' '^BLK straddle xvdb n 4096 err EOF' \
    '^BLK write xvdb refused n 0: blkfront: xvdb: write .*read-only' '^BLK write-past-end xvda n 512 err .*end'; do
  echo "$log" | grep -q -- "$want" || fail "console lacks: $want"
done
i=0; while ! gone blk && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done
mark="gopvgrub-blk-marker xvda 268435456"
got=$(dd if="$a" bs=1 skip=$((268435456 - 4096 + 100)) count=${#mark} 2>/dev/null)
[ "$got" = "$mark" ] || fail "the marker the guest wrote reads as '$got' in dom0"
[ "$(sha256sum < "$b" | cut -d' ' -f1)" = "$sb" ] || fail "the read-only disk changed"
