# sleeptrace: a diagnostic, not part of the suite: short sleeps with the
# shim's scheduler trace on.
domcfg sleeptrace 'extra="gopvgrub.test=sleeptrace"'
console sleeptrace sleeptrace.cfg 'SLEEPTRACE done' 120
showlog sleeptrace
