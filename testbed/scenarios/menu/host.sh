# boot-menulst's menu.lst disk, on ext4.
FSTYPE=ext4
. "$REPO/testbed/scenarios/boot-menulst/host.sh"
