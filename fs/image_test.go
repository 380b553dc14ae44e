package fs_test

import (
	"bytes"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gopvgrub/gopvgrub/fs"
	"github.com/gopvgrub/gopvgrub/fs/internal/imgtest"
)

// Variants of the reference trees, hard-linked so they cost little.
var (
	variantsMu sync.Mutex
	variants   = map[string]string{}
)

// variant returns base without the top-level entries in skip.
func variant(t *testing.T, base string, skip ...string) string {
	t.Helper()
	variantsMu.Lock()
	defer variantsMu.Unlock()
	key := filepath.Base(base) + "-" + strings.Join(skip, "-")
	if v, ok := variants[key]; ok {
		return v
	}
	dst := filepath.Join(tmpRoot, "variant-"+key)
	if err := imgtest.LinkTree(base, dst, func(rel string) bool { return imgtest.Under(rel, skip...) }); err != nil {
		t.Fatal(err)
	}
	variants[key] = dst
	return dst
}

type imageCase struct {
	name  string
	tree  func(t *testing.T) string
	build func(t *testing.T, tree, img string)
	typ   string
	// extra reports paths a format adds (lost+found, rr_moved).
	extra func(rel string) bool
}

func mkext(args ...string) func(t *testing.T, tree, img string) {
	return func(t *testing.T, tree, img string) {
		a := append([]string{"-q", "-F", "-L", "gopvgrub-test", "-d", tree}, args...)
		size := "640M"
		for _, x := range args {
			if x == "65536" {
				size = "1G"
			}
		}
		imgtest.Run(t, nil, "mke2fs", append(a, img, size)...)
	}
}

// then runs more commands on the image after building it.
func then(build func(t *testing.T, tree, img string), cmds ...[]string) func(t *testing.T, tree, img string) {
	return func(t *testing.T, tree, img string) {
		build(t, tree, img)
		for _, c := range cmds {
			imgtest.Run(t, nil, c[0], append(c[1:], img)...)
		}
	}
}

func full(t *testing.T) string              { return bigTree }
func noMany(t *testing.T) string            { return variant(t, bigTree, "many") }
func noSparse(t *testing.T) string          { return variant(t, bigTree, "sparse.img") }
func fatTree(t *testing.T) string           { return variant(t, bigTree, "links", "sparse.img") }
func lostFound(rel string) bool             { return imgtest.Under(rel, "lost+found") }
func rrMoved(rel string) bool               { return imgtest.Under(rel, "rr_moved", ".rr_moved") }
func fsckD() []string                       { return []string{"e2fsck", "-fyD"} }
func cmd(name string, a ...string) []string { return append([]string{name}, a...) }

var imageCases = []imageCase{
	// ext2/3/4 with Debian 12's mke2fs.conf defaults and variants. The
	// 10,000-entry directory is in two of them (mke2fs takes seconds to
	// populate it once checksums are on); e2fsck -D turns the big
	// directories into htrees, with checksums in ext4-htree-csum.
	{name: "ext2", tree: full, build: mkext("-t", "ext2"), typ: "ext2", extra: lostFound},
	{name: "ext3-htree", tree: full, build: then(mkext("-t", "ext3"), fsckD()), typ: "ext3", extra: lostFound},
	{name: "ext4-htree-csum", tree: noMany, build: then(mkext("-t", "ext4"), fsckD()), typ: "ext4", extra: lostFound},
	{name: "ext4-inline-nojournal", tree: noMany, build: mkext("-t", "ext4", "-O", "64bit,metadata_csum,inline_data,^has_journal"), typ: "ext4", extra: lostFound},
	{name: "ext4-1k", tree: noMany, build: mkext("-t", "ext4", "-b", "1024"), typ: "ext4", extra: lostFound},
	{name: "ext4-4k-gdtcsum-32bit", tree: noMany, build: mkext("-t", "ext4", "-b", "4096", "-O", "^metadata_csum,^64bit,uninit_bg"), typ: "ext4", extra: lostFound},
	{name: "ext4-64k", tree: noMany, build: mkext("-t", "ext4", "-b", "65536"), typ: "ext4", extra: lostFound},
	{name: "ext4-blockmap-1k", tree: noMany, build: mkext("-t", "ext4", "-b", "1024", "-O", "^extents,^64bit"), typ: "ext4", extra: lostFound},
	{name: "ext4-metabg-1k", tree: noMany, build: mkext("-t", "ext4", "-b", "1024", "-O", "meta_bg,^resize_inode"), typ: "ext4", extra: lostFound},
	{name: "ext4-csumseed", tree: noMany, build: then(mkext("-t", "ext4", "-O", "metadata_csum_seed"), cmd("tune2fs", "-U", "0b8e5a1c-44fe-4a3b-9f0e-5f1b2c3d4e5f")), typ: "ext4", extra: lostFound},
	{name: "ext2-rev0", tree: noMany, build: mkext("-t", "ext2", "-r", "0", "-b", "1024"), typ: "ext2", extra: lostFound},
	// FAT32 holds what FAT can: no symlinks, no sparse files.
	{name: "fat32", tree: fatTree, build: func(t *testing.T, tree, img string) {
		imgtest.Run(t, nil, "mkfs.fat", "-F", "32", "-n", "GOPVGRUB", "-C", img, "786432")
		mcopyTree(t, tree, img)
	}, typ: "vfat"},
	// ISO 9660 with Rock Ridge and Joliet, by both tools; genisoimage
	// relocates the deep directories (Rock Ridge CL/RE/PL).
	{name: "iso-xorriso-rr-joliet", tree: noSparse, build: func(t *testing.T, tree, img string) {
		imgtest.Run(t, nil, "xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-joliet-long", "-V", "GOPVGRUB_ISO", "-o", img, tree)
	}, typ: "iso9660", extra: rrMoved},
	{name: "iso-genisoimage-rr-joliet", tree: noSparse, build: func(t *testing.T, tree, img string) {
		imgtest.Run(t, nil, "genisoimage", "-quiet", "-R", "-J", "-joliet-long", "-V", "GOPVGRUB_ISO", "-o", img, tree)
	}, typ: "iso9660", extra: rrMoved},
	// squashfs holds everything; lz4 keeps the 100 MiB file quick (the
	// squashfs package tests every compressor on a smaller tree).
	{name: "squashfs-lz4", tree: full, build: func(t *testing.T, tree, img string) {
		imgtest.Run(t, nil, "mksquashfs", tree, img, "-quiet", "-noappend", "-no-progress", "-comp", "lz4")
	}, typ: "squashfs"},
}

// mcopyTree copies a tree into a FAT image with mtools (no mounting).
func mcopyTree(t *testing.T, tree, img string) {
	t.Helper()
	ents, err := os.ReadDir(tree)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-s", "-i", img}
	for _, e := range ents {
		args = append(args, filepath.Join(tree, e.Name()))
	}
	imgtest.Run(t, []string{"MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8"}, "mcopy", append(args, "::/")...)
}

// TestImages builds every image with the real tools from the reference
// tree and checks that our reader sees exactly the tree: every listing,
// every file's bytes, every symlink target; plus type, UUID and label
// against blkid, and GRUB-style path resolution.
func TestImages(t *testing.T) {
	for _, c := range imageCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tree := c.tree(t)
			img := filepath.Join(t.TempDir(), c.name+".img")
			c.build(t, tree, img)
			f, size := imgtest.Open(t, img)
			v, err := fs.Open(f, size)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if v.Type() != c.typ {
				t.Errorf("Type() = %q, want %q", v.Type(), c.typ)
			}
			id := imgtest.Blkid(t, img)
			if v.UUID() != id["UUID"] || v.Label() != id["LABEL"] {
				t.Errorf("UUID, Label = %q, %q; blkid says %q, %q", v.UUID(), v.Label(), id["UUID"], id["LABEL"])
			}
			if w := fs.Warnings(v); len(w) > 0 {
				t.Errorf("unexpected warnings %q", w)
			}
			want := imgtest.Snapshot(t, tree, nil)
			got := imgtest.SnapshotFS(t, v)
			for k := range got {
				if c.extra != nil && c.extra(k) {
					delete(got, k)
				}
			}
			for _, d := range imgtest.Diff(want, got) {
				t.Error(d)
			}
			checkPaths(t, v, c.typ, want)
		})
	}
}

// checkPaths exercises path resolution on a volume holding the tree.
func checkPaths(t *testing.T, v fs.Volume, typ string, tree map[string]imgtest.Entry) {
	cfg := tree["boot/grub/grub.cfg"]
	read := func(name string) ([]byte, error) { return iofs.ReadFile(v, name) }
	mustRead := func(name string) {
		t.Helper()
		b, err := read(name)
		if err != nil {
			t.Errorf("ReadFile(%q): %v", name, err)
		} else if int64(len(b)) != cfg.Size {
			t.Errorf("ReadFile(%q): %d bytes, want grub.cfg's %d", name, len(b), cfg.Size)
		}
	}
	p, err := fs.CleanPath("/boot/../boot//grub/./grub.cfg")
	if err != nil {
		t.Fatal(err)
	}
	mustRead(p)
	errCases := []struct {
		name string
		want error
	}{
		{"boot/grub/grub.cfg/x", fs.ErrNotDir},
		{"/boot/grub/grub.cfg", iofs.ErrInvalid},
		{"boot/../boot", iofs.ErrInvalid},
		{"boot/nonexistent", iofs.ErrNotExist},
	}
	if _, ok := tree["links/rel"]; ok {
		for _, l := range []string{"links/rel", "links/abs", "links/chain1", "links/slow", "links/self/self/rel"} {
			mustRead(l)
		}
		if fi, err := v.Stat("links/dirlink/d01/d02"); err != nil || !fi.IsDir() {
			t.Errorf("Stat through a directory symlink: %v", err)
		}
		if fi, err := v.Lstat("links/chain1"); err != nil || fi.Mode()&iofs.ModeSymlink == 0 {
			t.Errorf("Lstat(links/chain1) = %v, %v; want a symlink", fi, err)
		}
		if ents, err := v.ReadDir("links/dirlink"); err != nil || len(ents) != 1 || ents[0].Name() != "d01" {
			t.Errorf("ReadDir(links/dirlink) = %v, %v", ents, err)
		}
		errCases = append(errCases,
			struct {
				name string
				want error
			}{"links/loopA", fs.ErrSymlinkLoop},
			struct {
				name string
				want error
			}{"links/dangling", iofs.ErrNotExist})
	}
	for _, c := range errCases {
		if _, err := v.Open(c.name); !errors.Is(err, c.want) {
			t.Errorf("Open(%q) = %v, want %v", c.name, err, c.want)
		}
	}
	// FAT (and only FAT here) matches names without regard to case, and
	// by their 8.3 alias.
	upper := []string{"BOOT/GRUB/GRUB.CFG", "Boot/Grub/Grub.Cfg"}
	for _, name := range upper {
		_, err := read(name)
		if typ == "vfat" && err != nil {
			t.Errorf("FAT: ReadFile(%q): %v", name, err)
		}
		if typ != "vfat" && !errors.Is(err, iofs.ErrNotExist) {
			t.Errorf("%s: ReadFile(%q) = %v, want not found", typ, name, err)
		}
	}
	if typ == "vfat" {
		b, err := read("NAMES/LONGFI~1.TXT")
		if err != nil || string(b) != "Long File Name With Spaces.txt\n" {
			t.Errorf("FAT: read by 8.3 alias: %q, %v", b, err)
		}
	}
	// fs.Sub and fs.ReadFile work through the generic io/fs helpers.
	sub, err := iofs.Sub(v, "boot/grub")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := iofs.ReadFile(sub, "grub.cfg"); err != nil || !bytes.HasPrefix(b, []byte("set default=0")) {
		t.Errorf("Sub(boot/grub) ReadFile: %q, %v", b, err)
	}
}
