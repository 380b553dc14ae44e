# xenstore: the guest prints its own xenstore subtree, which must equal
# `xenstore-ls -f` of the same domain in dom0; a watch on a key dom0
# writes fires (dom0 times write -> guest's echo, < 1 s); a transaction
# that dom0 makes conflict is retried and commits the right value.
d=$(virtio_disk xenstore-0) || fail "no test disk in dom0"
MEM=64 domcfg xs 'extra="gopvgrub.test=xenstore"' "disk=[\"phy:$d,xvda,r\"]" 'vif=["bridge=xenbr0,mac=00:16:3e:00:00:31"]'
console xs xs.cfg 'XS done|XS FAIL|fatal|minios:|panic' 150 > console.out 2>&1 &
finish() { wait; showlog xs | grep -v '\] XS node ' | tail -n 40; fail "$*"; }
waitlog xs.log 'XS watch armed' 120 || finish "the guest did not list its tree: $(grep -a 'XS FAIL\|minios:\|panic' xs.log | head -n 1 | tr -d '\r')"
id=$(xl domid xs) || finish "no domain xs"
P=/local/domain/$id

# 1. The tree, both ways.
xenstore-ls -f "$P" | sort > dom0.txt
sed 's/^\[ *[0-9.]*\] //' xs.log | tr -d '\r' | grep '^XS node ' | cut -c9- | sort > guest.txt
# The walk starts at the domain directory itself, which xenstore-ls omits.
grep -v "^$P = " guest.txt > guest-sub.txt
n=$(wc -l < guest-sub.txt)
note "guest listed $n nodes, dom0 $(wc -l < dom0.txt)"
for k in name domid device/vbd device/vif console/ring-ref console/port store/port memory/target; do
  grep -q "^$P/$k = " guest-sub.txt || finish "the guest's tree lacks $k"
done
diff -u dom0.txt guest-sub.txt > tree.diff || { head -n 30 tree.diff; finish "the guest's tree differs from xenstore-ls ($(grep -c '^[-+]/' tree.diff) lines)"; }

# 2. Watches: three writes, each echoed back within 1 s.
xenstore-write "$P/data/tb-tx" 100
for i in 1 2 3; do
  v="w$i-$(date +%s%N)"
  t0=$(date +%s%N)
  xenstore-write "$P/data/tb-watch" "$v"
  ok=
  while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ]; do
    [ "$(xenstore-read "$P/data/tb-ack" 2>/dev/null)" = "$v" ] && { ok=1; break; }
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  note "watch $i: echoed after $ms ms"
  [ -n "$ok" ] || finish "watch $i: no echo of $v within 5 s"
  [ "$ms" -lt 1000 ] || finish "watch $i: the echo took $ms ms (limit 1000)"
done

# 3. A transaction conflict.
waitlog xs.log 'XS tx open value 100' 30 || finish "the guest did not open its transaction"
xenstore-write "$P/data/tb-tx" 200
waitlog xs.log 'XS done' 30 || finish "the transaction did not finish: $(grep -a 'XS FAIL' xs.log | head -n 1 | tr -d '\r')"
grep -aq 'XS tx committed attempts 2 value 201' xs.log || finish "want 2 attempts and value 201: $(grep -a 'XS tx committed' xs.log | tr -d '\r')"
[ "$(xenstore-read "$P/data/tb-tx")" = 201 ] || finish "data/tb-tx is $(xenstore-read "$P/data/tb-tx"), want 201"
wait
showlog xs | grep -v '\] XS node ' | tail -n 20
