# atftpd (windowsize, RFC 7440; tftpd-hpa has none) unpacked from Debian's
# package, and the test guest's initrd with a /init that fetches over
# TFTP and HTTP with busybox after its own DHCP.
set -euo pipefail
D=$CACHE/debs; mkdir -p "$D"
deb=$(ls "$D"/atftpd_*_amd64.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then (cd "$D" && apt-get download -q atftpd >/dev/null); deb=$(ls "$D"/atftpd_*_amd64.deb | head -n 1); fi
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
dpkg-deb -x "$deb" "$T/atftpd"
install -m 755 "$T/atftpd/usr/sbin/atftpd" "$SDIR/atftpd"
mkdir -p "$T/ov"
cat > "$T/ov/init" <<'INIT'
#!/bin/busybox sh
# bench-netboot's guest: DHCP on its own netfront, then time busybox's
# tftp (blksize 1468) and wget fetching tbfetch=FILE from the server.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev 2>/dev/null
f=$($B sed -n 's/.*tbfetch=\([^ ]*\).*/\1/p' /proc/cmdline)
$B insmod /lib/xen-netfront.ko
$B ip link set eth0 up
$B udhcpc -i eth0 -n -q -t 5 -T 2 -s /bin/dhcp.sh >/dev/null 2>&1 || echo "FETCH FAIL no lease"
now() { $B cut -d' ' -f1 /proc/uptime; }
t0=$(now); $B tftp -g -b 1468 -r "$f" -l /dev/null 10.0.0.1 && echo "FETCH busybox-tftp s $($B awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')"
t0=$(now); $B wget -q -O /dev/null "http://10.0.0.1/$f" && echo "FETCH busybox-wget s $($B awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')"
echo "FETCH done"
$B poweroff -f
INIT
chmod 755 "$T/ov/init"
(cd "$T/ov" && echo init | cpio -o -H newc --quiet | gzip -9) > "$T/ov.cpio.gz"
cat "$TB_OUT/guest-initrd.gz" "$T/ov.cpio.gz" > "$SDIR/fetch-initrd.gz"
