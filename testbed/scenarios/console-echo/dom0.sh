# console-echo: keys typed in dom0 (letters, arrows in both the CSI and SS3
# encodings, Home/End, Ctrl-C) come back as named key events; 64 KiB written
# by the guest arrive intact; 4 KiB typed in one go are not lost.
domcfg echo 'extra="gopvgrub.test=console-echo"'
console echo echo.cfg 'TYPE got [0-9]+ sha256 [0-9a-f]+' 180 keys
rc=$?
showlog echo | grep -v '^\[echo\] \[[ 0-9.]*\] BULK [0-9]' | head -n 60
[ $rc = 0 ] || fail "the guest did not report the typed bytes"
python3 ./check.py echo.log typed.txt || fail "console check failed (see above)"
