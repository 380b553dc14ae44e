#!/bin/bash
# bench.sh [GROUP] - run benchmark group GROUP (bench/GROUP.sh), or all of
# them. Each prints lines `bench NAME: <value> <unit> ... ratio <r> vs <what>`.
set -uo pipefail
cd "$(dirname "$0")/.."
# bench/lib.sh is the groups' shared code, not a group.
groups=$(ls bench | sed -n 's/\.sh$//p' | grep -vx lib)
if [ $# -gt 0 ] && [ -n "$1" ]; then
  echo "$groups" | grep -qx -- "$1" || { echo "bench: no group $1 (have: $(echo $groups))" >&2; exit 2; }
  exec bash "bench/$1.sh"
fi
status=0
for g in $groups; do bash "bench/$g.sh" || status=1; done
exit $status
