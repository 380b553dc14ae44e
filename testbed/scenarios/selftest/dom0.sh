# selftest: the built-in self-test in a 64 MiB domain, then a clean poweroff.
MEM=64 domcfg selftest 'extra="gopvgrub.test=selftest"'
console selftest selftest.cfg 'SELFTEST (done|FAIL)' 900
showlog selftest
xlog selftest
grep -aq 'SELFTEST done' selftest.log || fail "self-test did not finish: $(grep -a 'FAIL\|minios:' selftest.log | head -n 1 | tr -d '\r')"
python3 ./check.py selftest.log "$(cat expected_sha256)" || fail "self-test figures out of range (see above)"
for i in $(seq 20); do gone selftest && break; sleep 0.5; done
gone selftest || fail "domain still listed by xl after the self-test"
grep -q 'shut down, reason code 0' /var/log/xen/xl-selftest.log || fail "the domain did not power off cleanly"
