#!/bin/busybox sh
# /init of the tiny test guest initrd: print a marker with the kernel command
# line, and with tbnet=1 also prove the guest's own netfront works (DHCP from
# dom0, then a TFTP fetch). Then power off.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev 2>/dev/null
echo "GUEST-UP uptime=$($B cut -d' ' -f1 /proc/uptime) kernel=$($B uname -r) mem_kb=$($B awk '/MemTotal/{print $2}' /proc/meminfo) cmdline=$($B cat /proc/cmdline)"
if $B grep -q tbnet=1 /proc/cmdline; then
  $B insmod /lib/xen-netfront.ko
  $B ip link set eth0 up
  if $B udhcpc -i eth0 -n -q -t 5 -T 2 -s /bin/dhcp.sh; then :; else echo "DHCP-FAIL"; fi
fi
$B sync
$B poweroff -f
