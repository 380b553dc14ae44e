# boot-debian12: a Debian 12 guest made by mmdebstrap (cloud kernel,
# initramfs-tools, systemd, root=UUID on an ext4 partition of an MBR disk,
# grub.cfg by the real grub-mkconfig) boots through gopvgrub to its
# systemd marker, gets a DHCP lease on its own netfront and writes its
# root disk (lib.sh debian_boot).
debian_boot deb12 bookworm boot-debian12-0
