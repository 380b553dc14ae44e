# The sha256 the self-test must print for its 8 MiB pattern
# (internal/selftest.Pattern), computed here on the host.
python3 -c '
import hashlib
n = 8 << 20
print(hashlib.sha256(bytes(((i % 251) ^ (i >> 16)) & 255 for i in range(n))).hexdigest())
' > "$SDIR/expected_sha256"
