#!/bin/bash
# bench.sh [GROUP] - run benchmark group GROUP (bench/GROUP.sh), or all of
# them. Each prints lines `bench NAME: <value> <unit> ... ratio <r> vs <what>`.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ] && [ -n "$1" ]; then
  [ -f "bench/$1.sh" ] || { echo "bench: no group $1 (have: $(ls bench | sed 's/\.sh$//' | tr '\n' ' '))" >&2; exit 2; }
  exec bash "bench/$1.sh"
fi
status=0
for f in bench/*.sh; do bash "$f" || status=1; done
exit $status
