# blk-reconnect: the guest reads its disk, closes the vbd (dom0 checks the
# backend is back in InitWait and the frontend Initialising, as the next
# kernel needs it), opens it again and reads it again, twice; every read
# must give dom0's sha256.
d=$(virtio_disk blk-reconnect-0) || fail "no test disk in dom0"
sum=$(sha256sum < "$d" | cut -d' ' -f1)
MEM=64 domcfg rc 'extra="gopvgrub.test=blk blk.reopen=2 blk.pause=4"' "disk=[\"phy:$d,xvda,r\"]"
console rc rc.cfg 'BLK done|BLK FAIL|fatal|minios:|panic' 200 > console.out 2>&1 &
for c in 1 2; do
  waitlog rc.log "BLK closed xvda cycle $c" 120 || { wait; showlog rc; fail "no close in cycle $c"; }
  id=$(xl domid rc)
  be=$(xenstore-read "/local/domain/$id/device/vbd/51712/backend")
  st=$(xenstore-read "$be/state"); fst=$(xenstore-read "/local/domain/$id/device/vbd/51712/state")
  note "cycle $c: backend state $st, frontend state $fst"
  [ "$st" = 2 ] && [ "$fst" = 1 ] || { wait; showlog rc; fail "after close $c: backend state $st (want 2, InitWait), frontend $fst (want 1)"; }
done
wait
showlog rc
log=$(sed 's/^\[ *[0-9.]*\] //' rc.log | tr -d '\r')
echo "$log" | grep -q '^BLK done' || fail "the guest failed: $(echo "$log" | grep -a 'BLK FAIL\|fatal\|minios:\|panic' | head -n 1)"
for want in "^BLK sha xvda $sum bytes 16777216 ms [0-9]*\$" "^BLK sha xvda $sum bytes 16777216 ms [0-9]* cycle 1" "^BLK sha xvda $sum bytes 16777216 ms [0-9]* cycle 2"; do
  echo "$log" | grep -q -- "$want" || fail "console lacks: $want"
done
