#!/bin/bash
# fuzz-smoke.sh [FUZZTIME] - run every `func FuzzXxx(f *testing.F)` target in
# the module briefly on top of its seed corpus, so that CI exercises each
# parser of guest- or network-supplied data with the fuzzer.
# Prints one line per target; exits non-zero if any target failed.
#
# The budget is a count of executions (default 20000x), not a duration: with a
# wall-clock -fuzztime, Go's fuzz coordinator can fail a target with a bare
# "context deadline exceeded" when the deadline lands while a worker is busy
# (minimising a new input, or starved of CPU) — no crasher, nothing to fix.
# A count has no deadline to race. -timeout still catches a real hang, and
# -fuzzminimizetime keeps minimising large new inputs from eating the run.
set -uo pipefail
cd "$(dirname "$0")/.."
T=${1:-20000x}
fail=0; n=0
while IFS=: read -r file name; do
  pkg=./$(dirname "$file")
  n=$((n+1))
  out=$(go test -run='^$' -fuzz="^${name}\$" -fuzztime="$T" -fuzzminimizetime=3s -timeout=5m -parallel=1 "$pkg" 2>&1)
  if [ $? -eq 0 ]; then
    echo "fuzz $pkg $name: ok"
  else
    echo "fuzz $pkg $name: FAIL"
    echo "$out" | tail -n 25
    fail=1
  fi
done < <(grep -rHo --include='*_test.go' -E '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' . |
         sed -E 's#^\./##; s#:func (Fuzz[A-Za-z0-9_]+).*#:\1#' | sort)
echo "fuzz-smoke: $n targets, $([ $fail = 0 ] && echo all passed || echo some FAILED)"
exit $fail
