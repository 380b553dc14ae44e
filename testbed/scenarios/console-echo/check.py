"""Check the console-echo scenario's log: key names, 64 KiB block, typed bytes."""
import hashlib, re, sys

raw = open(sys.argv[1], errors="replace").read()
log = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", raw).replace("\r", "")
typed = open(sys.argv[2]).read()
errors = []
keys = re.findall(r"KEY (\S+)", log)
want = ["a", "Z", "Up", "Up", "Down", "Down", "Home", "End", "End", "Ctrl-C"]
if keys != want:
    errors.append("key events %s, want %s" % (keys, want))
got = {}
for m in re.finditer(r"BULK (\d{5}) ([0-9a-f]+)", log):
    got[int(m.group(1))] = m.group(0)
for i in range(1024):
    h = hashlib.sha256(str(i).encode()).hexdigest()
    want_line = ("BULK %05d %s" % (i, h))[:63]
    if got.get(i) != want_line:
        errors.append("bulk line %d is %r, want %r" % (i, got.get(i), want_line))
        break
m = re.search(r"TYPE got (\d+) sha256 ([0-9a-f]+)", log)
if not m or int(m.group(1)) != 4096 or m.group(2) != hashlib.sha256(typed.encode()).hexdigest():
    errors.append("typed 4096 bytes, guest reported %s" % (m.group(0) if m else "nothing"))
for e in errors:
    print("CHECK FAILED:", e)
print("CHECK %s" % ("ok" if not errors else "failed"))
sys.exit(1 if errors else 0)
