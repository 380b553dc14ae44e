# The layout checker runs in dom0: the host CLI, static.
set -euo pipefail
cd "$REPO"
CGO_ENABLED=0 go build -trimpath -o "$SDIR/gopvgrub" ./cmd/gopvgrub
