# The same menu.lst disk as boot-menulst (its default entry's kernel is corrupt).
. "$REPO/testbed/scenarios/boot-menulst/host.sh"
