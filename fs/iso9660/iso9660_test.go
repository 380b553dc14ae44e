package iso9660_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gopvgrub/gopvgrub/fs/internal/imgtest"
	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
	"github.com/gopvgrub/gopvgrub/fs/iso9660"
)

// seedWant is what testdata/fs/mkseeds.sh puts in the ISO seed.
var seedWant = map[string]string{
	"boot/grub/grub.cfg": "set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n",
	"boot/vmlinuz":       strings.Repeat("k", 3000),
	"a/b/c/leaf":         "deep\n",
	"dir/file-3":         "3\n",
	"dir/fast":           "set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n",
	"dir/slow":           "set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n",
}

func TestSeed(t *testing.T) {
	r, size := imgtest.Reader(imgtest.Seed(t, "iso9660.iso"))
	f, err := iso9660.Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	if !f.RockRidge() || f.Label() != "SEED" || f.Type() != "iso9660" {
		t.Errorf("RockRidge, Label, Type = %v, %q, %q", f.RockRidge(), f.Label(), f.Type())
	}
	var names []string
	for name, want := range seedWant {
		names = append(names, name)
		if b, err := fs.ReadFile(f, name); err != nil || string(b) != want {
			t.Errorf("ReadFile(%q) = %.40q, %v", name, b, err)
		}
	}
	if target, err := f.ReadLink("dir/fast"); err != nil || target != "../boot/grub/grub.cfg" {
		t.Errorf("ReadLink(dir/fast) = %q, %v", target, err)
	}
	if err := fstest.TestFS(f, names...); err != nil {
		t.Error(err)
	}
}

func writeTree(t *testing.T, files map[string]string, links map[string]string) string {
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mkiso(t *testing.T, tool string, tree string, args ...string) string {
	img := filepath.Join(t.TempDir(), "test.iso")
	if tool == "xorriso" {
		args = append([]string{"-as", "mkisofs"}, args...)
	}
	imgtest.Run(t, nil, tool, append(append(args, "-quiet", "-o", img), tree)...)
	return img
}

func open(t *testing.T, img string) *iso9660.FS {
	fh, size := imgtest.Open(t, img)
	f, err := iso9660.Open(fh, size)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTools builds ISOs in each naming mode with both tools and compares
// them with the host tree (what each mode can represent).
func TestTools(t *testing.T) {
	deep := "d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/leaf.txt"
	rich := map[string]string{
		"boot/grub/grub.cfg":                    "menuentry x {}\n",
		"MiXeD.CaSe":                            "mixed\n",
		"ünïcödé-ñ.txt":                         "unicode\n",
		"a name with spaces.and.dots":           "spaces\n",
		strings.Repeat("n", 100):                "long\n",
		deep:                                    "deep\n",
		"big.bin":                               string(imgtest.Random("isobig", 3<<20+5)),
		"empty":                                 "",
		"emptydir/.keep-out-of-the-listing-not": "",
	}
	delete(rich, "emptydir/.keep-out-of-the-listing-not")
	links := map[string]string{"abs": "/boot/grub/grub.cfg", "rel": "boot/grub", "dotdot": "../x/./y/../..", "d1/up": "../../boot"}
	plain := map[string]string{"boot/grub/grub.cfg": "cfg\n", "boot/vmlinuz": "kernel\n", "readme.txt": "r\n", "a/b/c/leaf": "x\n"}

	cases := []struct {
		name      string
		tool      string
		args      []string
		files     map[string]string
		links     map[string]string
		rr, jol   bool
		caseless  bool
		skipLongs bool
	}{
		{"xorriso-rr", "xorriso", []string{"-R"}, rich, links, true, false, false, false},
		{"genisoimage-rr-relocated", "genisoimage", []string{"-R"}, rich, links, true, false, false, false},
		// xorriso always writes Rock Ridge: Joliet-only and plain ISOs
		// come from genisoimage (-D keeps the deep directories in place).
		{"genisoimage-joliet-long", "genisoimage", []string{"-J", "-joliet-long", "-D"}, rich, nil, false, true, false, false},
		{"genisoimage-joliet", "genisoimage", []string{"-J", "-D"}, rich, nil, false, true, false, true},
		{"genisoimage-plain", "genisoimage", nil, plain, nil, false, false, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := c.files
			if c.skipLongs { // Joliet without -joliet-long allows 64 characters
				files = map[string]string{}
				for k, v := range c.files {
					if len(filepath.Base(k)) <= 64 {
						files[k] = v
					}
				}
			}
			tree := writeTree(t, files, c.links)
			img := mkiso(t, c.tool, tree, append(c.args, "-V", "ISO_LABEL")...)
			f := open(t, img)
			if f.RockRidge() != c.rr || f.Joliet() != c.jol {
				t.Errorf("RockRidge, Joliet = %v, %v; want %v, %v", f.RockRidge(), f.Joliet(), c.rr, c.jol)
			}
			id := imgtest.Blkid(t, img)
			if f.UUID() != id["UUID"] || f.Label() != id["LABEL"] {
				t.Errorf("UUID, Label = %q, %q; blkid %q, %q", f.UUID(), f.Label(), id["UUID"], id["LABEL"])
			}
			got := imgtest.SnapshotFS(t, f)
			for k := range got {
				if imgtest.Under(k, "rr_moved", ".rr_moved") {
					delete(got, k)
				}
			}
			for _, d := range imgtest.Diff(imgtest.Snapshot(t, tree, nil), got) {
				t.Error(d)
			}
			if c.caseless {
				if b, err := fs.ReadFile(f, "BOOT/GRUB/GRUB.CFG"); err != nil || string(b) != "cfg\n" {
					t.Errorf("case-insensitive plain name: %q, %v", b, err)
				}
			}
		})
	}
}

// locate returns the offset of the first occurrence of s in img.
func locate(t *testing.T, img []byte, s string) int {
	i := bytes.Index(img, []byte(s))
	if i < 0 {
		t.Fatalf("%q not in the image", s)
	}
	return i
}

// TestMultiExtent joins two directory records into one file of two
// extents, the way files over 4 GiB are stored, on a plain ISO.
func TestMultiExtent(t *testing.T) {
	tree := writeTree(t, map[string]string{"aaaa.txt": "first half-", "aaab.txt": "second half\n"}, nil)
	b, err := os.ReadFile(mkiso(t, "genisoimage", tree))
	if err != nil {
		t.Fatal(err)
	}
	// Records: length byte at name-33, flags at name-33+25.
	first := locate(t, b, "AAAA.TXT;1")
	second := locate(t, b, "AAAB.TXT;1")
	b[first-33+25] |= 0x80
	copy(b[second:], "AAAA.TXT;1")
	r, size := imgtest.Reader(b)
	f, err := iso9660.Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs.ReadFile(f, "aaaa.txt")
	if err != nil || string(got) != "first half-second half\n" {
		t.Errorf("multi-extent file = %q, %v", got, err)
	}
	// A multi-extent file whose last record never comes is corrupt.
	b[second-33+25] |= 0x80
	r, size = imgtest.Reader(b)
	if f, err = iso9660.Open(r, size); err == nil {
		_, err = f.ReadDir(".")
	}
	if !errors.Is(err, vfs.ErrCorrupt) {
		t.Errorf("unterminated multi-extent file: %v, want ErrCorrupt", err)
	}
}

// TestCorrupt damages the seed in ways that must give errors.
func TestCorrupt(t *testing.T) {
	seed := imgtest.Seed(t, "iso9660.iso")
	cases := []struct {
		name   string
		damage func(b []byte)
		access func(f *iso9660.FS) error
		want   error
	}{
		{"both roots beyond the volume", func(b []byte) {
			for _, vd := range []int{16, 17} { // primary and Joliet descriptors
				copy(b[vd*2048+156+2:], []byte{0xff, 0xff, 0xff, 0x7f})
			}
		}, nil, vfs.ErrCorrupt},
		{"logical block size 3", func(b []byte) { b[16*2048+128], b[16*2048+129] = 3, 0 }, nil, vfs.ErrCorrupt},
		{"directory size absurd", func(b []byte) {
			i := locate(t, b, "BOOT") // the boot directory's record
			copy(b[i-33+10:], []byte{0xff, 0xff, 0xff, 0x7f})
		}, func(f *iso9660.FS) error { _, err := f.ReadDir("boot"); return err }, vfs.ErrTooLarge},
		{"name longer than its record", func(b []byte) {
			b[locate(t, b, "GRUB.CFG;1")-1] = 0xff
		}, func(f *iso9660.FS) error { _, err := f.ReadDir("boot/grub"); return err }, vfs.ErrCorrupt},
		{"continuation area loops", func(b []byte) {
			// Overwrite the PX entry of grub.cfg's record with a CE entry
			// naming its own position: the reader must give up.
			i := locate(t, b, "GRUB.CFG;1")
			i += bytes.Index(b[i:], []byte("PX"))
			ce := []byte{'C', 'E', 28, 1}
			for _, v := range []uint32{uint32(i / 2048), uint32(i % 2048), 28} {
				le := []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
				ce = append(append(ce, le...), le[3], le[2], le[1], le[0])
			}
			copy(b[i:], ce)
		}, func(f *iso9660.FS) error { _, err := f.ReadDir("boot/grub"); return err }, vfs.ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(seed)
			c.damage(b)
			r, size := imgtest.Reader(b)
			f, err := iso9660.Open(r, size)
			if c.access != nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				err = c.access(f)
			}
			if !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	for _, b := range imgtest.Truncations(imgtest.Seed(t, "iso9660.iso")) {
		r, size := imgtest.Reader(b)
		if f, err := iso9660.Open(r, size); err == nil {
			imgtest.Exercise(f)
		}
	}
}

// FuzzISO9660 fuzzes edits of the real seed image (see imgtest.Patched).
func FuzzISO9660(f *testing.F) {
	seeds := [][]byte{imgtest.Seed(f, "iso9660.iso")}
	f.Add([]byte{0, 0})
	f.Add(append([]byte{0, 0}, imgtest.Edit(16*2048+128, 0)...))
	f.Add(append([]byte{0, 0}, imgtest.Edit(17*2048, 1)...))
	f.Add([]byte{0, 200})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, size := imgtest.Reader(imgtest.Patched(seeds, in))
		if v, err := iso9660.Open(r, size); err == nil {
			imgtest.Exercise(v)
		}
	})
}
