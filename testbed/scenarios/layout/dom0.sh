# layout: gopvgrub's image boots as a direct kernel (xl's own domain
# builder) with a ramdisk, in 128 MiB, 512 MiB and 2 GiB domains and with
# two ramdisk sizes; it prints the start_info, initial mapping and page
# tables it found, and loader/layout's plan for the same inputs must
# match them exactly (gopvgrub layout-check). The dumps are kept as
# golden files for loader/layout/xendump's unit tests.
head -c 1200000 /dev/urandom > rd-small   # not page-aligned on purpose
head -c 40000000 /dev/urandom > rd-large
mkdir -p golden
bad=
for mem in 128 512 2048; do
  for rd in rd-small rd-large; do
    n=layout-$mem-$rd
    MEM=$mem domcfg "$n" 'extra="gopvgrub.test=layout"' "ramdisk=\"$PWD/$rd\""
    console "$n" "$n.cfg" 'LAYOUT done|LAYOUT FAIL|fatal|minios:|panic' 120 >/dev/null
    sed 's/^\[ *[0-9.]*\] //' "$n.log" | tr -d '\r' | grep '^LAYOUT ' > "$n.dump"
    sed "s/^/DUMP $n /" "$n.dump"
    grep -q '^LAYOUT done' "$n.dump" || { showlog "$n" | tail -n 20; bad="$bad $n:no-dump"; continue; }
    size=$(stat -c %s "$rd")
    if ./gopvgrub layout-check -image /tb/gopvgrub.gz -initrd-size "$size" -golden "golden/$n.txt" "$n.dump" > "$n.check" 2>&1; then
      note "$n: $(tail -n 1 "$n.check")"
    else
      sed "s/^/[$n] /" "$n.check" | head -n 20
      bad="$bad $n"
    fi
    gone "$n" || xl destroy "$n"
  done
done
# The dumps (DUMP lines) and golden files (GOLDEN lines) go back to the
# host in the scenario log.
for f in golden/*.txt; do [ -f "$f" ] && sed "s|^|GOLDEN $(basename "$f") |" "$f"; done
[ -z "$bad" ] || fail "layout differs from the toolstack's:$bad"
