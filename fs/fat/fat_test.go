package fat_test

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gopvgrub/gopvgrub/fs/fat"
	"github.com/gopvgrub/gopvgrub/fs/internal/imgtest"
	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// seedWant is what testdata/fs/mkseeds.sh copies into the FAT seeds.
var seedWant = map[string]string{
	"boot/grub/grub.cfg": "set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n",
	"boot/vmlinuz":       strings.Repeat("k", 3000),
	"a/b/c/leaf":         "deep\n",
	"Long File Name.txt": "long name\n",
}

func TestSeeds(t *testing.T) {
	for _, c := range []struct {
		seed, label string
		bits        int
	}{{"fat12.img", "SEED12", 12}, {"fat16.img", "SEED16", 16}, {"fat32.img", "SEED32", 32}} {
		t.Run(c.seed, func(t *testing.T) {
			r, size := imgtest.Reader(imgtest.Seed(t, c.seed))
			f, err := fat.Open(r, size)
			if err != nil {
				t.Fatal(err)
			}
			if f.Bits() != c.bits || f.Type() != "vfat" || f.UUID() != "1234-5678" || f.Label() != c.label {
				t.Errorf("Bits, Type, UUID, Label = %d, %q, %q, %q", f.Bits(), f.Type(), f.UUID(), f.Label())
			}
			var names []string
			for name, want := range seedWant {
				names = append(names, name)
				if b, err := fs.ReadFile(f, name); err != nil || string(b) != want {
					t.Errorf("ReadFile(%q) = %.40q, %v", name, b, err)
				}
			}
			// Case-insensitive lookup, and the 8.3 alias.
			for _, alias := range []string{"BOOT/GRUB/GRUB.CFG", "long file name.TXT", "LONGFI~1.TXT"} {
				if _, err := f.Stat(alias); err != nil {
					t.Errorf("Stat(%q): %v", alias, err)
				}
			}
			if err := fstest.TestFS(f, names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// smallTree is a tree FAT can hold, with names that exercise long names,
// 8.3 names in lower case (stored with the NT case bits, no long name)
// and non-ASCII names.
func smallTree(t *testing.T) string {
	dir := t.TempDir()
	files := map[string]string{
		"boot/grub/grub.cfg":                   "menuentry x {}\n",
		"lower.txt":                            "lower 8.3\n",
		"UPPER.TXT":                            "upper 8.3\n",
		"MiXeD.CaSe":                           "mixed\n",
		"ünïcödé-ñ.txt":                        "unicode\n",
		"a name with spaces and a long tail.x": "long\n",
		strings.Repeat("n", 200):               "longest\n",
		"d1/d2/d3/d4/d5/d6/d7/d8/d9/leaf":      "deep\n",
		"big.bin":                              string(imgtest.Random("fatbig", 300000)),
		"empty":                                "",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		os.WriteFile(filepath.Join(dir, "d1", "many-"+strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644)
	}
	os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755)
	return dir
}

var mtoolsEnv = []string{"MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8"}

func mkfat(t *testing.T, tree string, bits, kib int, extra ...string) string {
	img := filepath.Join(t.TempDir(), "fat.img")
	imgtest.Run(t, nil, "mkfs.fat", append(append([]string{"-F", strconv.Itoa(bits), "-n", "TESTFAT"}, extra...), "-C", img, strconv.Itoa(kib))...)
	if tree != "" {
		ents, _ := os.ReadDir(tree)
		args := []string{"-s", "-i", img}
		for _, e := range ents {
			args = append(args, filepath.Join(tree, e.Name()))
		}
		imgtest.Run(t, mtoolsEnv, "mcopy", append(args, "::/")...)
	}
	return img
}

func open(t *testing.T, img string) (*fat.FS, error) {
	f, size := imgtest.Open(t, img)
	return fat.Open(f, size)
}

// TestTools checks FAT12, FAT16 and FAT32 made by mkfs.fat and filled by
// mcopy against the host tree, and UUID and label against blkid.
func TestTools(t *testing.T) {
	tree := smallTree(t)
	want := imgtest.Snapshot(t, tree, nil)
	for _, c := range []struct {
		bits, kib int
		extra     []string
	}{{12, 4000, nil}, {16, 16384, nil}, {16, 65536, []string{"-S", "4096", "-s", "1"}}, {32, 40000, []string{"-s", "1"}}} {
		t.Run("FAT"+strconv.Itoa(c.bits)+strings.Join(c.extra, ""), func(t *testing.T) {
			img := mkfat(t, tree, c.bits, c.kib, c.extra...)
			f, err := open(t, img)
			if err != nil {
				t.Fatal(err)
			}
			if f.Bits() != c.bits {
				t.Errorf("Bits() = %d, want %d", f.Bits(), c.bits)
			}
			id := imgtest.Blkid(t, img)
			if f.UUID() != id["UUID"] || f.Label() != id["LABEL"] {
				t.Errorf("UUID, Label = %q, %q; blkid %q, %q", f.UUID(), f.Label(), id["UUID"], id["LABEL"])
			}
			for _, d := range imgtest.Diff(want, imgtest.SnapshotFS(t, f)) {
				t.Error(d)
			}
		})
	}
}

var showfatRE = regexp.MustCompile(`<(\d+)`)

// firstCluster asks mtools where a file starts.
func firstCluster(t *testing.T, img, path string) int64 {
	m := showfatRE.FindStringSubmatch(imgtest.Run(t, mtoolsEnv, "mshowfat", "-i", img, "::/"+path))
	if m == nil {
		t.Fatalf("mshowfat %s: no cluster", path)
	}
	c, _ := strconv.ParseInt(m[1], 10, 64)
	return c
}

// setFAT16 writes FAT entry c of a FAT16 image, in every FAT copy.
func setFAT16(t *testing.T, img string, c int64, v uint16) {
	fh, _ := imgtest.Open(t, img)
	bs := make([]byte, 512)
	fh.ReadAt(bs, 0)
	bps := int64(binary.LittleEndian.Uint16(bs[11:]))
	reserved := int64(binary.LittleEndian.Uint16(bs[14:]))
	fatSize := int64(binary.LittleEndian.Uint16(bs[22:])) * bps
	w, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range int64(bs[16]) {
		w.WriteAt(binary.LittleEndian.AppendUint16(nil, v), reserved*bps+i*fatSize+2*c)
	}
}

// TestCorrupt breaks cluster chains and directory entries; every case
// must end in an error, never a panic or an endless chain walk.
func TestCorrupt(t *testing.T) {
	tree := smallTree(t)
	cases := []struct {
		name   string
		damage func(t *testing.T, img string)
		access func(f *fat.FS) error
	}{
		{"chain loops onto itself", func(t *testing.T, img string) {
			c := firstCluster(t, img, "big.bin")
			setFAT16(t, img, c+3, uint16(c+1))
		}, func(f *fat.FS) error { _, err := fs.ReadFile(f, "big.bin"); return err }},
		{"chain runs into a free cluster", func(t *testing.T, img string) {
			setFAT16(t, img, firstCluster(t, img, "big.bin")+2, 0)
		}, func(f *fat.FS) error { _, err := fs.ReadFile(f, "big.bin"); return err }},
		{"chain ends early", func(t *testing.T, img string) {
			setFAT16(t, img, firstCluster(t, img, "big.bin")+2, 0xFFFF)
		}, func(f *fat.FS) error { _, err := fs.ReadFile(f, "big.bin"); return err }},
		{"chain points past the last cluster", func(t *testing.T, img string) {
			setFAT16(t, img, firstCluster(t, img, "big.bin"), 0xFFF0)
		}, func(f *fat.FS) error { _, err := fs.ReadFile(f, "big.bin"); return err }},
		{"directory chain loops", func(t *testing.T, img string) {
			c := firstCluster(t, img, "d1")
			setFAT16(t, img, c, uint16(c))
		}, func(f *fat.FS) error { _, err := f.ReadDir("d1"); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := mkfat(t, tree, 16, 16384)
			c.damage(t, img)
			f, err := open(t, img)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.access(f); !errors.Is(err, vfs.ErrCorrupt) {
				t.Errorf("got %v, want ErrCorrupt", err)
			}
		})
	}
	// A boot sector whose geometry leaves no room for data.
	img := mkfat(t, "", 16, 16384)
	w, _ := os.OpenFile(img, os.O_WRONLY, 0)
	w.WriteAt([]byte{0xff, 0xff}, 22) // sectors per FAT
	w.Close()
	if _, err := open(t, img); !errors.Is(err, vfs.ErrCorrupt) {
		t.Errorf("oversized FAT: %v, want ErrCorrupt", err)
	}
}

func TestTruncated(t *testing.T) {
	for _, seed := range []string{"fat12.img", "fat16.img", "fat32.img"} {
		for _, b := range imgtest.Truncations(imgtest.Seed(t, seed)) {
			r, size := imgtest.Reader(b)
			if f, err := fat.Open(r, size); err == nil {
				imgtest.Exercise(f)
			}
		}
	}
}

// FuzzFAT fuzzes edits of the real seed images (see imgtest.Patched).
func FuzzFAT(f *testing.F) {
	seeds := [][]byte{imgtest.Seed(f, "fat12.img"), imgtest.Seed(f, "fat16.img"), imgtest.Seed(f, "fat32.img")}
	for i := range seeds {
		f.Add([]byte{byte(i), 0})
	}
	f.Add(append([]byte{0, 0}, imgtest.Edit(13, 0)...))    // zero sectors per cluster
	f.Add(append([]byte{2, 0}, imgtest.Edit(44, 0xff)...)) // root cluster
	f.Add([]byte{1, 128})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, size := imgtest.Reader(imgtest.Patched(seeds, in))
		if v, err := fat.Open(r, size); err == nil {
			imgtest.Exercise(v)
		}
	})
}

// The label in the root directory wins over the boot sector's, as in
// blkid; here the two disagree.
func TestLabelPrecedence(t *testing.T) {
	img := mkfat(t, "", 16, 16384)
	w, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteAt([]byte("BOOTSECTOR "), 43)
	w.Close()
	f, err := open(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if id := imgtest.Blkid(t, img); f.Label() != id["LABEL"] || f.Label() != "TESTFAT" {
		t.Errorf("Label() = %q; blkid %q, want TESTFAT", f.Label(), id["LABEL"])
	}
}
