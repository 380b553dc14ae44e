# crash: an unrecovered panic prints the Go traceback on the console and the
# domain ends as crashed (on_crash=preserve keeps it for xl to show), not hung.
ONCRASH=preserve domcfg crash 'extra="gopvgrub.test=crash"'
console crash crash.cfg 'exited with status' 120
showlog crash
grep -aq 'panic: deliberate crash for the e2e test: gopvgrub' crash.log || fail "no panic message on the console"
grep -aq 'goroutine [0-9]* \[running\]' crash.log || fail "no goroutine traceback on the console"
grep -aq 'main.deliberateCrash' crash.log || fail "the traceback does not name the crashing function"
state=""
for i in $(seq 40); do
  state=$(xl list crash 2>/dev/null | awk 'NR==2{print $5}')
  case $state in *c*) break;; esac
  sleep 0.5
done
xl list
xl destroy crash 2>/dev/null
case $state in *c*) ;; *) fail "domain state is '$state', want crashed (c)";; esac
