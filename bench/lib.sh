# bench/lib.sh - what the test-bed benchmark groups share; sourced by
# bench/blkfront.sh, boot.sh and netboot.sh after they cd to the project.

# testbed_bench SCENARIO: build the image and run the test-bed scenario
# SCENARIO; sets res (its results directory) and log (its log), where
# the scenario printed `BENCH key value` lines.
testbed_bench() {
  make -s image >/dev/null || exit 1
  res=$(mktemp -d "/tmp/gopvgrub-$1.XXXXXX")
  E2E_RESULTS=$res bash testbed/e2e.sh "$1" >&2
  log=$res/$1.log
}

# vals KEY: the values of KEY's BENCH lines, one per line.
vals() { grep -a "^BENCH $1 " "$log" | awk '{print $3}'; }

# median: the median of the numbers on stdin, NA lines ignored; NA if none.
median() { grep -v NA | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "NA"; else print a[int((NR+1)/2)]}'; }

# ratio A B: A/B to two decimals, NA if either is NA or B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a=="NA" || b=="NA" || b+0==0) print "NA"; else printf "%.2f", a/b }'; }
