#!/bin/bash
# e2e.sh [SCENARIO...] - run end-to-end scenarios under real Xen in QEMU (TCG).
#
# All scenarios run in one boot of the test bed's dom0 (testbed/build.sh
# makes it; cached under /var/cache/gopvgrub). Prints one line per scenario:
#   e2e NAME: PASS 12s      or      e2e NAME: FAIL 12s <reason>
# and exits non-zero if any failed. With no arguments, every scenario in
# testbed/scenarios/ORDER runs.
#
# A scenario is a directory testbed/scenarios/NAME with
#   dom0.sh  run in dom0 (cwd /tb/s/NAME, testbed/lib.sh sourced); exit 0 = pass
#   host.sh  optional, run on the host first with SDIR (the directory shipped to
#            /tb/s/NAME), REPO, TB_OUT, CACHE set; it may list big disk images in
#            $SDIR/virtio.list: they are attached as QEMU virtio disks with serial
#            NAME-0, NAME-1, ... (find them in dom0 with virtio_disk).
#   timeout  optional, seconds (default 300)
# Environment: QEMU_MEM (MiB, default 4096), DOM0_MEM (default 1280M),
# E2E_RESULTS (default build/e2e/<time>), E2E_ECHO=1 to stream the serial log.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
CACHE=${CACHE:-/var/cache/gopvgrub}
TB_OUT=${TB_OUT:-$CACHE/testbed/out}
export REPO CACHE TB_OUT
IMAGE=$REPO/build/gopvgrub-x86_64.gz
[ -f "$IMAGE" ] || { echo "e2e: $IMAGE missing (make image)" >&2; exit 2; }

if [ $# -eq 0 ]; then set -- $(grep -v '^#' testbed/scenarios/ORDER); fi
for s in "$@"; do
  [ -f "testbed/scenarios/$s/dom0.sh" ] || { echo "e2e $s: FAIL 0s no such scenario" ; exit 2; }
done

if ! bash testbed/build.sh > /tmp/gopvgrub-testbed-build.log 2>&1; then
  tail -20 /tmp/gopvgrub-testbed-build.log >&2
  for s in "$@"; do echo "e2e $s: FAIL 0s test bed build failed (see /tmp/gopvgrub-testbed-build.log)"; done
  exit 1
fi

RES=${E2E_RESULTS:-$REPO/build/e2e/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RES"
STAGE=$(mktemp -d /tmp/gopvgrub-e2e.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
OV=$STAGE/ov
mkdir -p "$OV/tb/s" "$OV/usr/local/bin"
install -m 755 testbed/dom0-init.sh "$OV/init"
install -m 644 testbed/lib.sh "$OV/tb/lib.sh"
install -m 755 testbed/console-driver.py "$OV/usr/local/bin/console-driver.py"
cp "$IMAGE" "$OV/tb/gopvgrub.gz"
cp "$TB_OUT/vmlinuz" "$TB_OUT/guest-initrd.gz" "$OV/tb/"
QEMU_DRIVES=()
total_limit=120
: > "$OV/tb/order"
for s in "$@"; do
  SDIR=$OV/tb/s/$s
  mkdir -p "$SDIR"
  for f in testbed/scenarios/$s/*; do
    [ "$(basename "$f")" = host.sh ] || cp -r "$f" "$SDIR/"
  done
  if [ -f "testbed/scenarios/$s/host.sh" ]; then
    if ! SDIR=$SDIR bash "testbed/scenarios/$s/host.sh" > "$RES/host-$s.log" 2>&1; then
      printf 'fail "host-side preparation failed: %s"\n' "$(tail -n 1 "$RES/host-$s.log" | tr -d '"$`\\')" > "$SDIR/dom0.sh"
    fi
  fi
  if [ -f "$SDIR/virtio.list" ]; then
    i=0
    while read -r disk; do
      QEMU_DRIVES+=(-drive "file=$disk,if=none,id=$s-$i,format=raw,cache=unsafe" -device "virtio-blk-pci,drive=$s-$i,serial=$s-$i")
      i=$((i+1))
    done < "$SDIR/virtio.list"
  fi
  total_limit=$((total_limit + $(cat "$SDIR/timeout" 2>/dev/null || echo 300) + 15))
  echo "$s" >> "$OV/tb/order"
done
(cd "$OV" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$STAGE/overlay.cpio"
cat "$TB_OUT/dom0.cpio" "$STAGE/overlay.cpio" > "$STAGE/initrd.cpio"

XENARGS="console=com1 com1=115200,8n1 dom0_mem=${DOM0_MEM:-1280M},max:${DOM0_MEM:-1280M} dom0_max_vcpus=1 dom0_vcpus_pin loglvl=all guest_loglvl=all console_timestamps=boot"
DOM0ARGS="console=hvc0 earlyprintk=xen loglevel=5 rdinit=/init"
START=$(date +%s.%N)
timeout "$total_limit" qemu-system-x86_64 -accel tcg -M pc -cpu "${QEMU_CPU:-qemu64}" -smp 2 \
  -m "${QEMU_MEM:-4096}" -display none -no-reboot -monitor none -nic none -serial stdio \
  -kernel "$TB_OUT/xen" -append "$XENARGS" -initrd "$TB_OUT/vmlinuz $DOM0ARGS,$STAGE/initrd.cpio" \
  "${QEMU_DRIVES[@]}" </dev/null 2>&1 |
  python3 -u -c '
import sys, time
t0 = float(sys.argv[1]); echo = sys.argv[3] == "1"
with open(sys.argv[2], "w") as f:
    for raw in sys.stdin.buffer:
        s = "[%8.2f] %s" % (time.time() - t0, raw.decode("utf-8", "replace").rstrip("\r\n"))
        f.write(s + "\n"); f.flush()
        if echo: print(s, flush=True)
' "$START" "$RES/serial.log" "${E2E_ECHO:-0}"
QRC=${PIPESTATUS[0]}

status=0
for s in "$@"; do
  grep -a "|$s| " "$RES/serial.log" | sed "s/^\[[ 0-9.]*\] |$s| //" > "$RES/$s.log"
  line=$(grep -a "TB-E2E-RESULT $s " "$RES/serial.log" | tail -n 1 | sed 's/^\[[ 0-9.]*\] //')
  if [ -z "$line" ]; then
    why="no result from dom0 (qemu exit $QRC; see $RES/serial.log)"
    if grep -aq "Panic on CPU" "$RES/serial.log"; then why="Xen panicked (see $RES/serial.log)"; fi
    echo "e2e $s: FAIL 0s $why"
    status=1
    continue
  fi
  read -r _ _ st secs reason <<< "$line"
  if [ "$st" = PASS ]; then echo "e2e $s: PASS ${secs}s"; else echo "e2e $s: FAIL ${secs}s $reason"; status=1; fi
done
echo "e2e: logs in $RES" >&2
exit $status
