# bench-boot (make bench BENCH=boot; not part of make e2e): timings of
# whole boots, from `xl create` to a console marker, as the console driver
# measures them. Prints `BENCH key value` lines that bench/boot.sh turns
# into its report.
d=$(virtio_disk bench-boot-0) || fail "no test disk in dom0"
RUNS=${RUNS:-3}

# timed NAME MARKER CFGLINES...: create a domain, print the seconds to MARKER
# (or NA), leave its log in NAME.log.
timed() {
  n=$1; m=$2; shift 2
  domcfg "$n" "$@"
  # Not "error:": pvgrub2 prints harmless ones while its embedded config searches.
  console "$n" "$n.cfg" "$m|fatal|minios:|Kernel panic" 240 > "$n.res" 2>&1
  i=0; while ! gone "$n" && [ $i -lt 20 ]; do sleep 1; i=$((i+1)); done
  xl destroy "$n" >/dev/null 2>&1
  if grep -aq -- "$m" "$n.log"; then sed -n 's/.*t_marker=\([0-9.]*\).*/\1/p' "$n.res"; else echo NA; fi
}

for i in $(seq "$RUNS"); do
  echo "BENCH hello $(MEM=64 timed hello$i 'hello from Go main' 'extra="gopvgrub.test=hello"')"
done
MEM=64 timed selftest 'SELFTEST done' 'extra="gopvgrub.test=selftest"' > selftest.t
echo "BENCH selftest $(cat selftest.t)"
echo "BENCH selftest_peak_pages $(grep -a 'SELFTEST stats' selftest.log | sed -n 's/.*peak_pages \([0-9]*\).*/\1/p' | head -n 1)"

disk="disk=[\"phy:$d,xvda,r\"]"
mkdir -p k; cp /tb/vmlinuz k/vmlinuz; cp /tb/guest-initrd.gz k/initrd.img
for i in $(seq "$RUNS"); do
  echo "BENCH direct $(MEM=256 timed direct$i 'GUEST-UP' "$disk" 'kernel="k/vmlinuz"' 'ramdisk="k/initrd.img"' 'extra="console=hvc0 tbmark=bench"')"
  echo "BENCH gopvgrub $(MEM=256 timed gopvgrub$i 'GUEST-UP' "$disk")"
  echo "BENCH pvgrub2 $(MEM=256 KERNEL=/usr/lib/grub-xen/grub-x86_64-xen.bin timed pvgrub2$i 'GUEST-UP' "$disk")"
  echo "BENCH pygrub $(MEM=256 timed pygrub$i 'GUEST-UP' "$disk" 'bootloader="pygrub"' | tail -n 1)"
done
grep -a 'error\|GUEST-UP' pvgrub21.log | head -n 3 | sed 's/^/[pvgrub2] /'
xlog pygrub1 | tail -n 8; grep -a "pygrub\|bootloader" pygrub1.log | head -n 5

# The smallest domain (MiB) each boots the guest in, from a fixed ladder.
for kind in direct gopvgrub; do
  best=NA
  for mem in 256 128 96 64 48 40 32; do
    if [ $kind = direct ]; then
      t=$(MEM=$mem timed m$kind$mem 'GUEST-UP' "$disk" 'kernel="k/vmlinuz"' 'ramdisk="k/initrd.img"' 'extra="console=hvc0 tbmark=bench"')
    else
      t=$(MEM=$mem timed m$kind$mem 'GUEST-UP' "$disk")
    fi
    [ "$t" = NA ] && break
    best=$mem
  done
  echo "BENCH minmem_$kind $best"
done
