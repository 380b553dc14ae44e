#!/bin/sh
# tb-debian-up - run by tb-debian-up.service once the network is online (or
# systemd-networkd-wait-online gave up): report on the Xen console, leave a
# proof on the root filesystem, power off. Installed by testbed/mkguest.sh.
#   TB-DEBIAN-UP suite=<codename> kernel=<uname -r> ip=<IPv4 of the first NIC|none> cmdline=<...>
#   TB-DEBIAN-PROOF written <tbproof= token|none>
con=/dev/hvc0
[ -w "$con" ] || con=/dev/console
. /etc/os-release
nic=$(ip -o link show 2>/dev/null | awk -F': ' '$2 != "lo" {sub(/@.*/, "", $2); print $2; exit}')
ip=
[ -n "$nic" ] && ip=$(ip -o -4 addr show dev "$nic" scope global 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4; exit}')
cmdline=$(cat /proc/cmdline)
printf 'TB-DEBIAN-UP suite=%s kernel=%s ip=%s cmdline=%s\n' \
  "${VERSION_CODENAME:-unknown}" "$(uname -r)" "${ip:-none}" "$cmdline" >> "$con"
token=none
for w in $cmdline; do
  case $w in tbproof=?*) token=${w#tbproof=} ;; esac
done
mkdir -p /var/lib
printf '%s\n' "$token" > /var/lib/tb-proof
sync
printf 'TB-DEBIAN-PROOF written %s\n' "$token" >> "$con"
systemctl --no-block poweroff
