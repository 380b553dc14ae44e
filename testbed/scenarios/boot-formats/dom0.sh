# boot-formats: one domU per kernel form; each must reach GUEST-UP with its
# own command line. pvgrub2 boots only the gzip, xz, lzma and ELF ones.
d=$(virtio_disk boot-formats-0) || fail "no test disk in dom0"
bad=""
for f in xz lz4 zstd gzip bzip2 lzma lzo vmlinux vmlinux.gz; do
  n=fmt-$(echo "$f" | tr . -)
  MEM=256 domcfg "$n" "disk=[\"phy:$d,xvda,r\"]" "extra=\"(hd0,0)/boot/grub/$f.lst\""
  t0=$(up)
  console "$n" "$n.cfg" 'GUEST-UP|cannot boot|fatal|minios:|Kernel panic' 150 > "$n.res"
  t1=$(up)
  i=0; while ! gone "$n" && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done
  xl destroy "$n" >/dev/null 2>&1
  loaded=$(grep -a 'kernel, .* loaded in' "$n.log" | head -n 1 | sed 's/.*gopvgrub: //' | tr -d '\r')
  if grep -aq "GUEST-UP.*tbmark=fmt-$f" "$n.log"; then
    echo "format $f: ok $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0fs", b-a}') ($loaded)"
  else
    showlog "$n"
    echo "format $f: FAILED: $(grep -a 'cannot boot\|fatal\|minios:\|Kernel panic' "$n.log" | head -n 1 | tr -d '\r')"
    bad="$bad $f"
  fi
done
[ -z "$bad" ] || fail "did not boot:$bad"
