# boot-memory: what gopvgrub hands the next kernel is what direct boot
# gives it, and real guests boot across domain sizes.
#  1. In 128 MiB, 512 MiB and 2 GiB domains gopvgrub chainloads its own
#     image (as a compressed ELF, with a ramdisk) in layout mode; the
#     start_info, initial mapping and page tables the chained image finds
#     must equal loader/layout's plan, which the e2e `layout` test proves
#     equal to what xl's builder gives a direct boot: field by field, apart
#     from the frame numbers (page tables are compared by PFN).
#  2. The Debian 12 guest boots through gopvgrub to its systemd marker in
#     a 128 MiB and a 2 GiB domain (512 MiB is boot-debian12).
head -c 1200000 /dev/urandom > rd
mkdir -p k; cp /tb/gopvgrub.gz k/vmlinuz; cp rd k/initrd; echo "gopvgrub.test=layout" > k/cmdline
tar --format=ustar -C k -cf chain.tar vmlinuz initrd cmdline
bad=
for mem in 128 512 2048; do
  n=chainlay-$mem
  MEM=$mem domcfg "$n" 'extra="gopvgrub.test=chain"' 'ramdisk="chain.tar"'
  console "$n" "$n.cfg" 'LAYOUT done|LAYOUT FAIL|CHAIN FAIL|fatal|minios:|panic' 180 >/dev/null
  sed 's/^\[ *[0-9.]*\] //' "$n.log" | tr -d '\r' > "$n.dump"
  if ./gopvgrub layout-check -image /tb/gopvgrub.gz -initrd-size 1200000 "$n.dump" > "$n.check" 2>&1; then
    note "$n: chained image: $(tail -n 1 "$n.check")"
  else
    showlog "$n" | grep -v '\] LAYOUT pt ' | tail -n 20
    sed "s/^/[$n] /" "$n.check" | head -n 20
    bad="$bad $n"
  fi
  gone "$n" || xl destroy "$n"
done
[ -z "$bad" ] || fail "the chained layout differs from direct boot's:$bad"
MEM=128 debian_boot deb12-128 bookworm boot-memory-0
MEM=2048 debian_boot deb12-2048 bookworm boot-memory-1
