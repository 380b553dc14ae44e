# hello: the image boots and the Go runtime reaches main.
domcfg hello 'extra="gopvgrub.test=hello a b"'
console hello hello.cfg 'hello from Go main' 120
rc=$?
showlog hello
xlog hello
[ $rc = 0 ] || fail "no hello line on the console"
