package squashfs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gopvgrub/gopvgrub/fs/internal/imgtest"
	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
	"github.com/gopvgrub/gopvgrub/fs/squashfs"
)

var seedWant = map[string]string{
	"boot/grub/grub.cfg": "set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n",
	"boot/vmlinuz":       strings.Repeat("k", 3000),
	"a/b/c/leaf":         "deep\n",
	"dir/file-1":         "1\n",
	"dir/e17":            "",
	"dir/slow":           "set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n",
}

var compressors = []string{"gzip", "xz", "lz4", "zstd"}

func TestSeeds(t *testing.T) {
	for _, c := range compressors {
		t.Run(c, func(t *testing.T) {
			r, size := imgtest.Reader(imgtest.Seed(t, "squashfs-"+c+".img"))
			f, err := squashfs.Open(r, size)
			if err != nil {
				t.Fatal(err)
			}
			if f.Compression() != c || f.Type() != "squashfs" {
				t.Errorf("Compression, Type = %q, %q", f.Compression(), f.Type())
			}
			var names []string
			for name, want := range seedWant {
				names = append(names, name)
				if b, err := fs.ReadFile(f, name); err != nil || string(b) != want {
					t.Errorf("ReadFile(%q) = %.40q, %v", name, b, err)
				}
			}
			if ents, err := f.ReadDir("dir"); err != nil || len(ents) != 95 {
				t.Errorf("ReadDir(dir): %d entries, %v", len(ents), err)
			}
			if err := fstest.TestFS(f, names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// tree holds what squashfs layouts differ on: files that end in a
// fragment, files of whole blocks, sparse files (extended inodes), a
// directory big enough for an extended directory inode, symlinks.
func tree(t *testing.T) string {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("boot/grub/grub.cfg", []byte("menuentry x {}\n"))
	write("text", bytes.Repeat([]byte("compressible text "), 20000))
	write("random", imgtest.Random("sq", 300001))
	write("whole", imgtest.Random("whole", 256<<10))
	write("empty", nil)
	for i := range 700 {
		write(fmt.Sprintf("big-dir/entry-%04d", i), []byte(fmt.Sprint(i)))
	}
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(5 << 20)
	f.WriteAt([]byte("island"), 3<<20)
	f.Close()
	os.Symlink("boot/grub/grub.cfg", filepath.Join(dir, "link"))
	os.Symlink("/"+strings.Repeat("long/../", 100)+"text", filepath.Join(dir, "longlink"))
	os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755)
	return dir
}

func mksquash(t *testing.T, src string, args ...string) string {
	img := filepath.Join(t.TempDir(), "sq.img")
	imgtest.Run(t, nil, "mksquashfs", append([]string{src, img, "-quiet", "-noappend", "-no-progress"}, args...)...)
	return img
}

func TestTools(t *testing.T) {
	src := tree(t)
	want := imgtest.Snapshot(t, src, nil)
	cases := [][]string{
		{"-comp", "gzip"},
		{"-comp", "xz"},
		{"-comp", "xz", "-Xbcj", "x86"},
		{"-comp", "lz4", "-Xhc"},
		{"-comp", "zstd"},
		{"-comp", "lzma"},
		{"-comp", "gzip", "-b", "4K"},
		{"-comp", "gzip", "-b", "1M"},
		{"-comp", "gzip", "-no-fragments"},
		{"-comp", "gzip", "-always-use-fragments"},
		{"-noI", "-noD", "-noF"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, ""), func(t *testing.T) {
			img := mksquash(t, src, args...)
			fh, size := imgtest.Open(t, img)
			f, err := squashfs.Open(fh, size)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range imgtest.Diff(want, imgtest.SnapshotFS(t, f)) {
				t.Error(d)
			}
		})
	}
	t.Run("lzo is refused", func(t *testing.T) {
		img := mksquash(t, src, "-comp", "lzo")
		fh, size := imgtest.Open(t, img)
		if _, err := squashfs.Open(fh, size); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("Open(lzo) = %v, want ErrUnsupported", err)
		}
	})
}

// TestCorrupt edits superblock fields of the gzip seed.
func TestCorrupt(t *testing.T) {
	seed := imgtest.Seed(t, "squashfs-gzip.img")
	put32 := func(off int, v uint32) func(b []byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	put64 := func(off int, v uint64) func(b []byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) }
	}
	cases := []struct {
		name   string
		damage func(b []byte)
	}{
		{"block size not a power of two", put32(12, 5000)},
		{"bytes used beyond the volume", put64(40, 1<<40)},
		{"inode table after the directory table", func(b []byte) { copy(b[64:72], b[72:80]) }},
		{"root inode beyond its table", put64(32, 0xffff_0000)},
		{"fragment count without a table", func(b []byte) {
			put32(16, 1000)(b)
			put64(80, ^uint64(0))(b)
		}},
		{"version 3", func(b []byte) { b[28] = 3 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(seed)
			c.damage(b)
			r, size := imgtest.Reader(b)
			f, err := squashfs.Open(r, size)
			if err == nil {
				imgtest.Exercise(f)
				t.Fatal("Open succeeded on a damaged superblock")
			}
			if !errors.Is(err, vfs.ErrCorrupt) && !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("got %v, want ErrCorrupt or ErrUnsupported", err)
			}
		})
	}
	// A zeroed inode table: every lookup must fail cleanly.
	b := bytes.Clone(seed)
	it := binary.LittleEndian.Uint64(b[64:])
	dt := binary.LittleEndian.Uint64(b[72:])
	clear(b[it:dt])
	r, size := imgtest.Reader(b)
	if _, err := squashfs.Open(r, size); !errors.Is(err, vfs.ErrCorrupt) {
		t.Errorf("zeroed inode table: %v, want ErrCorrupt", err)
	}
}

func TestTruncated(t *testing.T) {
	for _, c := range compressors {
		img := imgtest.Seed(t, "squashfs-"+c+".img")
		for n := 0; n < len(img); n += 97 {
			r, size := imgtest.Reader(img[:n])
			if f, err := squashfs.Open(r, size); err == nil {
				imgtest.Exercise(f)
			}
		}
	}
}

// FuzzSquashfs fuzzes edits of the real seed images (see imgtest.Patched).
func FuzzSquashfs(f *testing.F) {
	var seeds [][]byte
	for i, c := range compressors {
		seeds = append(seeds, imgtest.Seed(f, "squashfs-"+c+".img"))
		f.Add([]byte{byte(i), 0})
	}
	f.Add(append([]byte{0, 0}, imgtest.Edit(12, 0)...))
	f.Add(append([]byte{1, 0}, imgtest.Edit(100, 0xff)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, size := imgtest.Reader(imgtest.Patched(seeds, in))
		if v, err := squashfs.Open(r, size); err == nil {
			imgtest.Exercise(v)
		}
	})
}
