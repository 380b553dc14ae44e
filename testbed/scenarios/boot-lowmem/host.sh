# bench-boot's guest disk: Debian 12's generic (xz) kernel and the tiny
# guest initrd, grub.cfg with timeout 0.
. "$REPO/testbed/scenarios/bench-boot/host.sh"
