#!/bin/sh
# /init of the test bed's dom0 (shipped in the per-run overlay by e2e.sh).
# Brings up the Xen toolstack without systemd, runs every scenario under
# /tb/s in the order of /tb/order, and powers the machine off.
# Lines for the host start with "TB:" or "TB-".
export PATH=/usr/lib/xen-4.17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=vt100 LANG=C.UTF-8
up() { cut -d' ' -f1 /proc/uptime; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /run /tmp
# devtmpfs lacks these; the block hotplug script's claim_lock loops
# forever on `stat /dev/stdin` without them
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /var/log/xen/console /var/lib/xen /var/lib/xenstored /run/lock
echo "TB: dom0-init uptime=$(up)"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback loop bridge tun virtio_pci virtio_blk; do
  modprobe "$m" 2>/dev/null || echo "TB: modprobe-failed $m"
done
mount -t xenfs xenfs /proc/xen
hostname dom0
ip link set lo up
/usr/lib/xen-4.17/bin/xenstored --pid-file=/run/xenstored.pid || echo "TB: xenstored-failed"
i=0; while ! xenstore-read / >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
xen-init-dom0 >/dev/null 2>&1 || echo "TB: xen-init-dom0-failed"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console --timestamp=guest \
  || echo "TB: xenconsoled-failed"
# The guests' network: bridge xenbr0 at 10.0.0.1/24, reachable only inside dom0.
ip link add xenbr0 type bridge && ip addr add 10.0.0.1/24 dev xenbr0 && ip link set xenbr0 up
echo "TB: dom0-ready uptime=$(up) xen=$(xl info 2>/dev/null | awk '/^xen_version/{print $3}') free_mb=$(xl info 2>/dev/null | awk '/^free_memory/{print $3}')"
. /tb/lib.sh
for s in $(cat /tb/order); do run_scenario "$s"; done
echo "TB: dom0-done uptime=$(up)"
sync
echo o > /proc/sysrq-trigger
sleep 30
