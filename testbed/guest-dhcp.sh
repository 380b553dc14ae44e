#!/bin/busybox sh
# udhcpc hook of the test guest: configure the lease and print a marker.
[ "$1" = bound ] || exit 0
/bin/busybox ip addr add "$ip/${mask:-24}" dev "$interface"
echo "DHCP-OK ip=$ip siaddr=$siaddr serverid=$serverid boot_file=$boot_file"
