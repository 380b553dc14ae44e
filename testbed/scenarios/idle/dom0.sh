# idle: a booted image waiting for input uses under 5 % of a CPU,
# measured from dom0 as the domain's CPU time over 10 s.
domcfg idletest 'extra="gopvgrub.test=idle"'
console idletest idletest.cfg 'IDLE waiting' 120 || { showlog idletest; fail "the image did not reach its wait"; }
showlog idletest
cpu() { xl list idletest | awk 'NR==2{print $6}'; }
t1=$(cpu); s1=$(up)
sleep 10
t2=$(cpu); s2=$(up)
xl destroy idletest
[ -n "$t1" ] && [ -n "$t2" ] || fail "could not read the domain's CPU time"
echo "IDLE cpu_s $t1 -> $t2 over $(awk -v a="$s1" -v b="$s2" 'BEGIN{print b-a}') s"
awk -v a="$t1" -v b="$t2" -v x="$s1" -v y="$s2" 'BEGIN{ exit !((b-a)/(y-x) < 0.05) }' ||
  fail "idle domain used $(awk -v a="$t1" -v b="$t2" -v x="$s1" -v y="$s2" 'BEGIN{printf "%.1f", 100*(b-a)/(y-x)}') % of a CPU"
