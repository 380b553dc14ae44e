# lib.sh - helpers for the dom0 side of e2e scenarios (sourced in dom0).
# A scenario is testbed/scenarios/NAME/dom0.sh, run in /tb/s/NAME with a
# time limit; it exits 0 to pass, and says why it failed with fail().
up() { cut -d' ' -f1 /proc/uptime; }

# fail REASON: stop the scenario with a one-line reason.
fail() { echo "FAIL: $*"; exit 1; }

# note TEXT: a line the host copies into the scenario's log.
note() { echo "NOTE: $*"; }

# domcfg NAME [LINE...]: write NAME.cfg for a gopvgrub domU. Defaults:
# KERNEL=/tb/gopvgrub.gz MEM=128, no disks; LINEs are appended verbatim.
domcfg() {
  n=$1; shift
  {
    echo "name=\"$n\""
    echo "memory=${MEM:-128}"
    echo "maxmem=${MEM:-128}"
    echo "vcpus=1"
    echo "cpus=\"${CPUS:-1}\""  # dom0 is pinned to pCPU 0: guests never wait for it
    echo "kernel=\"${KERNEL:-/tb/gopvgrub.gz}\""
    echo "on_poweroff=\"destroy\""
    echo "on_reboot=\"destroy\""
    echo "on_crash=\"${ONCRASH:-destroy}\""
    for l in "$@"; do echo "$l"; done
  } > "$n.cfg"
}

# console NAME CFG MARKER SECONDS [KEYS]: `xl create -c CFG` under the
# console driver until MARKER (a regex) shows; the log is NAME.log.
console() {
  console-driver.py --name "$1" --timeout "$4" --marker "$3" --log "$1.log" \
    ${5:+--keys "$5"} -- xl create -c "$2"
}

# showlog NAME: copy the console log into the scenario output (the host
# keeps it), without the ANSI escapes.
showlog() { [ -f "$1.log" ] && sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$1.log" | sed "s/^/[$1] /"; }

# xlog NAME: the tail of xl's log for domain NAME.
xlog() { [ -f "/var/log/xen/xl-$1.log" ] && tail -n 30 "/var/log/xen/xl-$1.log" | sed "s/^/[xl-$1] /"; }

# virtio_disk SERIAL: the dom0 device of a QEMU virtio disk.
virtio_disk() {
  for b in /sys/block/vd*; do
    [ "$(cat "$b/serial" 2>/dev/null)" = "$1" ] && { echo "/dev/${b##*/}"; return 0; }
  done
  return 1
}

# waitlog LOG REGEX SECONDS: wait until console log LOG (written by a
# console driver running in the background) shows REGEX; false if it
# does not within SECONDS or the guest failed first (FAIL, minios:, panic).
waitlog() {
  _i=0
  while ! grep -aq -- "$2" "$1" 2>/dev/null; do
    grep -aq ' FAIL\|minios:\|panic' "$1" 2>/dev/null && break
    [ $_i -ge $(($3 * 10)) ] && break
    sleep 0.1; _i=$((_i+1))
  done
  grep -aq -- "$2" "$1" 2>/dev/null
}

# gone NAME: true when no domain NAME exists.
gone() { ! xl list "$1" >/dev/null 2>&1; }

run_scenario() {
  name=$1; dir=/tb/s/$name
  limit=$(cat "$dir/timeout" 2>/dev/null || echo 300)
  t0=$(up)
  echo "TB-E2E-BEGIN $name uptime=$t0"
  (cd "$dir" && timeout -k 5 "$limit" sh -c '. /tb/lib.sh; . ./dom0.sh') > "$dir/out.log" 2>&1
  rc=$?
  t1=$(up)
  sed "s/^/|$name| /" "$dir/out.log"
  reason=$(grep '^FAIL: ' "$dir/out.log" | tail -n 1 | cut -c7-)
  [ "$rc" = 124 ] && reason="timed out after ${limit}s${reason:+ ($reason)}"
  [ "$rc" != 0 ] && [ -z "$reason" ] && reason="exit status $rc"
  st=PASS; [ "$rc" = 0 ] || st=FAIL
  for d in $(xl list 2>/dev/null | awk 'NR>1 && $1!="Domain-0"{print $1}'); do xl destroy "$d" >/dev/null 2>&1; done
  echo "TB-E2E-RESULT $name $st $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%d", b-a+0.5}') $reason"
}

# netservers DIR [BOOTFILE]: the network-boot servers on xenbr0, as a
# provider would run them: tftpd-hpa serving DIR (secure mode: paths are
# relative to DIR) and busybox udhcpd handing out 10.0.0.100-150 with
# router and next-server 10.0.0.1 and, if given, BOOTFILE as the BOOTP boot
# file. Any servers of an earlier scenario are stopped first.
netservers() {
  netservers_stop
  chmod -R a+rX "$1"
  /usr/sbin/in.tftpd --listen --secure --address 10.0.0.1:69 --user tftp --pidfile /run/tb-tftpd.pid "$1" ||
    fail "in.tftpd did not start"
  cat > /run/tb-udhcpd.conf <<CFG
start 10.0.0.100
end 10.0.0.150
interface xenbr0
lease_file /run/tb-udhcpd.leases
pidfile /run/tb-udhcpd.pid
siaddr 10.0.0.1
opt subnet 255.255.255.0
opt router 10.0.0.1
opt lease 600
${2:+boot_file $2}
CFG
  : > /run/tb-udhcpd.leases
  busybox udhcpd /run/tb-udhcpd.conf || fail "udhcpd did not start"
}

# httpserver DIR: busybox httpd serving DIR on 10.0.0.1:80, its request log
# in httpd.log; netservers_stop stops it.
httpserver() {
  busybox httpd -f -vv -p 10.0.0.1:80 -h "$1" 2>>httpd.log &
  echo $! > /run/tb-httpd.pid
  i=0; while ! busybox wget -q -s http://10.0.0.1/ 2>/dev/null && [ $i -lt 20 ]; do sleep 0.2; i=$((i+1)); done
  kill -0 "$(cat /run/tb-httpd.pid)" 2>/dev/null || fail "busybox httpd did not start"
}

netservers_stop() {
  for p in /run/tb-tftpd.pid /run/tb-udhcpd.pid /run/tb-httpd.pid; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
    rm -f "$p"
  done
  return 0
}

# debian_boot NAME SUITE SERIAL: boot the real Debian guest disk (mkguest.sh;
# virtio disk SERIAL, KVER and UUID beside dom0.sh) through gopvgrub with
# no extra=: gopvgrub finds grub.cfg, boots its default entry; the guest's
# systemd unit prints TB-DEBIAN-UP once its own netfront has a DHCP
# lease, writes /var/lib/tb-proof to its root disk and powers off. dom0
# then finds the proof on the disk: blkback and netback both served the
# chainloaded kernel after gopvgrub's teardown.
debian_boot() {
  n=$1 suite=$2
  d=$(virtio_disk "$3") || fail "no guest disk in dom0"
  kver=$(cat KVER) uuid=$(cat UUID)
  mkdir -p srv; netservers "$PWD/srv"  # DHCP for the guest's own netfront
  MEM=${MEM:-512} domcfg "$n" "disk=[\"phy:$d,xvda,w\"]" 'vif=["bridge=xenbr0"]'
  console "$n" "$n.cfg" 'TB-DEBIAN-PROOF written|cannot boot|fatal|minios:|Kernel panic' 900
  i=0; while ! gone "$n" && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done
  showlog "$n" | grep -a 'gopvgrub\|TB-DEBIAN\|Linux version\|systemd\[1\]: \(Reached\|Started\)\|error\|Failed\|panic' | head -n 80
  netservers_stop
  gone "$n" || fail "the guest did not power off"
  log=$(sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$n.log" | tr -d '\r')
  echo "$log" | grep -q 'using (hd0,msdos1)/boot/grub/grub.cfg' || fail "gopvgrub did not use the disk's grub.cfg"
  up=$(echo "$log" | grep -a 'TB-DEBIAN-UP' | head -n 1)
  [ -n "$up" ] || fail "the guest did not come up: $(echo "$log" | grep -a 'cannot boot\|fatal\|minios:\|Kernel panic' | head -n 1)"
  note "$(echo "$up" | sed 's/^\[ *[0-9.]*\] //')"
  for want in "suite=$suite " "kernel=$kver " 'ip=10\.0\.0\.1[0-9][0-9] ' "root=UUID=$uuid "; do
    echo "$up" | grep -q -- "$want" || fail "the guest's marker lacks '$want'"
  done
  mkdir -p "/mnt/$n"
  mount -o ro "${d}1" "/mnt/$n" || fail "cannot mount the guest's root (${d}1) in dom0"
  proof=$(cat "/mnt/$n/var/lib/tb-proof" 2>/dev/null)
  umount "/mnt/$n"
  [ -n "$proof" ] || fail "the proof the guest wrote is not on its disk"
  return 0
}
