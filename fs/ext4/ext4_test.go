package ext4_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gopvgrub/gopvgrub/fs/ext4"
	"github.com/gopvgrub/gopvgrub/fs/internal/imgtest"
	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// seedWant is what testdata/fs/mkseeds.sh puts in every ext seed image.
var seedWant = map[string]string{
	"boot/grub/grub.cfg": "set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n",
	"boot/vmlinuz":       strings.Repeat("k", 3000),
	"a/b/c/leaf":         "deep\n",
	"dir/file-2":         "2\n",
	"dir/e42":            "",
	"dir/fast":           "set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n",
	"dir/slow":           "set default=0\nmenuentry x {\n linux /boot/vmlinuz\n}\n",
}

func openBytes(t *testing.T, b []byte) *ext4.FS {
	t.Helper()
	r, size := imgtest.Reader(b)
	f, err := ext4.Open(r, size)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return f
}

func TestSeeds(t *testing.T) {
	for _, c := range []struct{ seed, typ string }{{"ext4.img", "ext4"}, {"ext4-inline.img", "ext4"}, {"ext2.img", "ext2"}} {
		t.Run(c.seed, func(t *testing.T) {
			f := openBytes(t, imgtest.Seed(t, c.seed))
			if f.Type() != c.typ || f.UUID() != "0f0e0d0c-0b0a-4908-8706-050403020100" {
				t.Errorf("Type, UUID = %q, %q", f.Type(), f.UUID())
			}
			for name, want := range seedWant {
				if b, err := fs.ReadFile(f, name); err != nil || string(b) != want {
					t.Errorf("ReadFile(%q) = %.40q, %v", name, b, err)
				}
			}
			ents, err := f.ReadDir("dir")
			if err != nil || len(ents) != 95 {
				t.Errorf("ReadDir(dir): %d entries, %v; want 95", len(ents), err)
			}
			var names []string
			for name := range seedWant {
				names = append(names, name)
			}
			if err := fstest.TestFS(f, names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// mkimg builds a small ext image from a tree made by mktree.
func mkimg(t *testing.T, mktree func(dir string), args ...string) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	mktree(tree)
	img := filepath.Join(dir, "ext.img")
	imgtest.Run(t, nil, "mke2fs", append(append([]string{"-q", "-F", "-b", "1024", "-d", tree}, args...), img, "4M")...)
	return img
}

func basicTree(dir string) {
	os.MkdirAll(filepath.Join(dir, "a/b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a/b/file"), bytes.Repeat([]byte("0123456789"), 3000), 0o644)
	os.WriteFile(filepath.Join(dir, "small"), []byte("small\n"), 0o644)
	// A file of 12 separate runs: its extent tree needs a leaf block.
	f, _ := os.Create(filepath.Join(dir, "frag"))
	for i := range int64(12) {
		f.WriteAt(bytes.Repeat([]byte{byte('a' + i)}, 1024), i*8192)
	}
	f.Close()
}

func debugfs(t *testing.T, img string, cmds ...string) string {
	t.Helper()
	var out strings.Builder
	for _, c := range cmds {
		out.WriteString(imgtest.Run(t, nil, "debugfs", "-w", "-R", c, img))
	}
	return out.String()
}

func openFile(t *testing.T, img string) (*ext4.FS, error) {
	t.Helper()
	f, size := imgtest.Open(t, img)
	return ext4.Open(f, size)
}

func patch(t *testing.T, img string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

var imapRE = regexp.MustCompile(`located at block (\d+), offset (0x[0-9a-f]+)`)

// inodeOffset asks debugfs where a file's inode is.
func inodeOffset(t *testing.T, img, path string) int64 {
	t.Helper()
	m := imapRE.FindStringSubmatch(debugfs(t, img, "imap "+path))
	if m == nil {
		t.Fatalf("debugfs imap %s: no location", path)
	}
	blk, _ := strconv.ParseInt(m[1], 10, 64)
	off, _ := strconv.ParseInt(m[2], 0, 64)
	return blk*1024 + off
}

// firstBlock asks debugfs for a directory's or file's first data block.
func firstBlock(t *testing.T, img, path string) int64 {
	t.Helper()
	fields := strings.Fields(debugfs(t, img, "blocks "+path))
	if len(fields) == 0 {
		t.Fatalf("debugfs blocks %s: none", path)
	}
	b, _ := strconv.ParseInt(fields[0], 10, 64)
	return b
}

func TestFeatures(t *testing.T) {
	t.Run("needs_recovery warns", func(t *testing.T) {
		img := mkimg(t, basicTree, "-t", "ext4")
		debugfs(t, img, "feature needs_recovery")
		f, err := openFile(t, img)
		if err != nil {
			t.Fatal(err)
		}
		if w := f.Warnings(); len(w) != 1 || !strings.Contains(w[0], "recovery") {
			t.Errorf("Warnings() = %q", w)
		}
		if b, err := fs.ReadFile(f, "small"); err != nil || string(b) != "small\n" {
			t.Errorf("ReadFile: %q, %v", b, err)
		}
	})
	for _, c := range []struct {
		bits uint32
		name string
	}{{0x1, "compression"}, {0x8, "journal_dev"}, {0x1000, "dirdata"}, {0x80000000, "unknown(0x80000000)"}} {
		t.Run("incompat "+c.name, func(t *testing.T) {
			img := mkimg(t, basicTree, "-t", "ext4", "-O", "^has_journal")
			f, _ := openFile(t, img)
			_ = f
			sb := make([]byte, 4)
			fh, _ := imgtest.Open(t, img)
			fh.ReadAt(sb, 1024+0x60)
			debugfs(t, img, fmt.Sprintf("ssv feature_incompat %#x", binary.LittleEndian.Uint32(sb)|c.bits))
			_, err := openFile(t, img)
			if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(fmt.Sprint(err), c.name) {
				t.Errorf("Open = %v; want ErrUnsupported naming %s", err, c.name)
			}
		})
	}
	t.Run("unknown ro_compat tolerated", func(t *testing.T) {
		img := mkimg(t, basicTree, "-t", "ext4")
		debugfs(t, img, "ssv feature_ro_compat 0x80000000")
		if f, err := openFile(t, img); err != nil {
			t.Errorf("Open: %v", err)
		} else if _, err := fs.ReadFile(f, "a/b/file"); err != nil {
			t.Error(err)
		}
	})
	t.Run("encrypted inode refused", func(t *testing.T) {
		img := mkimg(t, basicTree, "-t", "ext4")
		debugfs(t, img, "sif /small flags 0x80800")
		f, err := openFile(t, img)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.ReadFile(f, "small"); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("ReadFile(encrypted) = %v, want ErrUnsupported", err)
		}
	})
}

// TestChecksums flips one byte in each kind of checksummed metadata and
// expects ErrChecksum (and ErrCorrupt) from the read that needs it.
func TestChecksums(t *testing.T) {
	etbRE := regexp.MustCompile(`\(ETB0\):(\d+)`)
	cases := []struct {
		name string
		// where returns the byte to flip; read is the access that must fail.
		where func(t *testing.T, img string) int64
		read  func(f *ext4.FS) error
		open  bool // the error comes from Open itself
	}{
		{"superblock", func(t *testing.T, img string) int64 { return 1024 + 0x78 }, nil, true},
		{"group descriptor", func(t *testing.T, img string) int64 { return 2048 + 0 }, nil, true},
		{"inode", func(t *testing.T, img string) int64 { return inodeOffset(t, img, "/small") + 0x10 },
			func(f *ext4.FS) error { _, err := fs.ReadFile(f, "small"); return err }, false},
		{"directory block", func(t *testing.T, img string) int64 { return firstBlock(t, img, "/a/b")*1024 + 12 + 8 },
			func(f *ext4.FS) error { _, err := f.ReadDir("a/b"); return err }, false},
		{"extent block", func(t *testing.T, img string) int64 {
			m := etbRE.FindStringSubmatch(debugfs(t, img, "stat /frag"))
			if m == nil {
				t.Fatal("frag has no extent tree block")
			}
			b, _ := strconv.ParseInt(m[1], 10, 64)
			return b*1024 + 12 + 4
		}, func(f *ext4.FS) error { _, err := fs.ReadFile(f, "frag"); return err }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := mkimg(t, basicTree, "-t", "ext4", "-O", "^has_journal")
			if _, err := openFile(t, img); err != nil {
				t.Fatalf("intact image: %v", err)
			}
			off := c.where(t, img)
			fh, _ := imgtest.Open(t, img)
			b := make([]byte, 1)
			fh.ReadAt(b, off)
			patch(t, img, off, []byte{b[0] ^ 0x5A})
			f, err := openFile(t, img)
			if !c.open {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				err = c.read(f)
			}
			if !errors.Is(err, vfs.ErrChecksum) || !errors.Is(err, vfs.ErrCorrupt) {
				t.Errorf("got %v, want a checksum error", err)
			}
		})
	}
}

// TestCorrupt damages structures in ways checksums do not catch (debugfs
// rewrites the checksums, or the volume has none) and expects errors,
// never a panic or a hang.
func TestCorrupt(t *testing.T) {
	cases := []struct {
		name    string
		args    []string // mke2fs options
		damage  func(t *testing.T, img string)
		access  func(f *ext4.FS) error
		wantErr error
	}{
		{"absurd file size", []string{"-t", "ext4"},
			func(t *testing.T, img string) { debugfs(t, img, "sif /small size 0xffffffffffff") },
			func(f *ext4.FS) error { _, err := f.Open("small"); return err }, vfs.ErrCorrupt},
		{"huge sparse size is refused by ReadFile", []string{"-t", "ext4"},
			func(t *testing.T, img string) { debugfs(t, img, "sif /small size 0x10000000000") },
			func(f *ext4.FS) error { _, err := fs.ReadFile(f, "small"); return err }, vfs.ErrTooLarge},
		{"block pointer beyond the volume", []string{"-t", "ext2"},
			func(t *testing.T, img string) { debugfs(t, img, "sif /a/b/file block[2] 0x7fffffff") },
			func(f *ext4.FS) error { _, err := fs.ReadFile(f, "a/b/file"); return err }, vfs.ErrCorrupt},
		{"indirect pointer beyond the volume", []string{"-t", "ext2"},
			func(t *testing.T, img string) { debugfs(t, img, "sif /a/b/file block[IND] 0x7fffffff") },
			func(f *ext4.FS) error { _, err := fs.ReadFile(f, "a/b/file"); return err }, vfs.ErrCorrupt},
		{"inode number beyond the table", []string{"-t", "ext2"},
			func(t *testing.T, img string) {
				// Point the "small" entry of the root at a huge inode number.
				off := firstBlock(t, img, "/") * 1024
				fh, _ := imgtest.Open(t, img)
				blk := make([]byte, 1024)
				fh.ReadAt(blk, off)
				i := bytes.Index(blk, []byte("small"))
				patch(t, img, off+int64(i)-8, []byte{0xff, 0xff, 0xff, 0x7f})
			},
			func(f *ext4.FS) error { _, err := f.ReadDir("."); return err }, vfs.ErrCorrupt},
		{"directory entry with rec_len 0", []string{"-t", "ext2"},
			func(t *testing.T, img string) { patch(t, img, firstBlock(t, img, "/a/b")*1024+4, []byte{0, 0}) },
			func(f *ext4.FS) error { _, err := f.ReadDir("a/b"); return err }, vfs.ErrCorrupt},
		{"bad extra_isize", []string{"-t", "ext4"},
			func(t *testing.T, img string) { debugfs(t, img, "sif /small extra_isize 1000") },
			func(f *ext4.FS) error { _, err := f.Stat("small"); return err }, vfs.ErrCorrupt},
		{"inodes count beyond the groups", []string{"-t", "ext4"},
			func(t *testing.T, img string) { debugfs(t, img, "ssv inodes_count 0xffffffff") },
			nil, vfs.ErrCorrupt},
		{"zero blocks per group", []string{"-t", "ext2"},
			func(t *testing.T, img string) { debugfs(t, img, "ssv blocks_per_group 0") },
			nil, vfs.ErrCorrupt},
		{"extent tree pointing at itself", []string{"-t", "ext4", "-O", "^metadata_csum"},
			func(t *testing.T, img string) {
				// Make /frag's root an index (depth 2) whose child is a
				// block claiming depth 1 that points at itself.
				loop := firstBlock(t, img, "/small")
				node := make([]byte, 24)
				binary.LittleEndian.PutUint16(node[0:], 0xF30A)
				binary.LittleEndian.PutUint16(node[2:], 1)
				binary.LittleEndian.PutUint16(node[4:], 4)
				binary.LittleEndian.PutUint16(node[6:], 1)
				binary.LittleEndian.PutUint32(node[16:], uint32(loop))
				patch(t, img, loop*1024, node)
				binary.LittleEndian.PutUint16(node[6:], 2)
				patch(t, img, inodeOffset(t, img, "/frag")+0x28, node)
			},
			func(f *ext4.FS) error { _, err := f.Open("frag"); return err }, vfs.ErrCorrupt},
		{"extents out of order", []string{"-t", "ext4", "-O", "^metadata_csum"},
			func(t *testing.T, img string) {
				// Swap the first two extents of /a/b/file's root.
				off := inodeOffset(t, img, "/a/b/file") + 0x28
				fh, _ := imgtest.Open(t, img)
				ib := make([]byte, 60)
				fh.ReadAt(ib, off)
				if binary.LittleEndian.Uint16(ib[2:]) < 1 {
					t.Skip("no extents")
				}
				binary.LittleEndian.PutUint16(ib[2:], 2)
				copy(ib[24:36], ib[12:24])
				patch(t, img, off, ib)
			},
			func(f *ext4.FS) error { _, err := f.Open("a/b/file"); return err }, vfs.ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := mkimg(t, basicTree, c.args...)
			c.damage(t, img)
			f, err := openFile(t, img)
			if c.access != nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				err = c.access(f)
			}
			if !errors.Is(err, c.wantErr) {
				t.Errorf("got %v, want %v", err, c.wantErr)
			}
		})
	}
}

// A directory linked into itself makes an endless tree; walking it must
// end with an error once the path gets too long, not loop forever.
func TestDirectoryLoop(t *testing.T) {
	img := mkimg(t, basicTree, "-t", "ext4")
	debugfs(t, img, "link /a /a/b/loop")
	f, err := openFile(t, img)
	if err != nil {
		t.Fatal(err)
	}
	var last error
	visited := 0
	fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
		visited++
		if err != nil {
			last = err
		}
		return nil
	})
	if !errors.Is(last, vfs.ErrNameTooLong) {
		t.Errorf("walk of a looping tree ended with %v after %d entries; want ErrNameTooLong", last, visited)
	}
}

// Truncated images must give errors (or a partial tree), never a panic.
func TestTruncated(t *testing.T) {
	for _, seed := range []string{"ext4.img", "ext4-inline.img", "ext2.img"} {
		img := imgtest.Seed(t, seed)
		for _, b := range imgtest.Truncations(img) {
			r, size := imgtest.Reader(b)
			if f, err := ext4.Open(r, size); err == nil {
				imgtest.Exercise(f)
			}
		}
	}
}

// FuzzExt4 fuzzes edits of the real seed images (see imgtest.Patched).
func FuzzExt4(f *testing.F) {
	seeds := [][]byte{imgtest.Seed(f, "ext4.img"), imgtest.Seed(f, "ext4-inline.img"), imgtest.Seed(f, "ext2.img")}
	for i := range seeds {
		f.Add([]byte{byte(i), 0})
	}
	// A few edits that matter: block size, inode size, the root inode's
	// mode, a truncation.
	f.Add(append([]byte{0, 0}, imgtest.Edit(1024+0x18, 7)...))
	f.Add(append([]byte{2, 0}, imgtest.Edit(1024+0x58, 0xff)...))
	f.Add([]byte{1, 100})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, size := imgtest.Reader(imgtest.Patched(seeds, in))
		if v, err := ext4.Open(r, size); err == nil {
			imgtest.Exercise(v)
		}
	})
}

// Volumes are used from several goroutines (menu, loader); under -race
// this checks the caches are guarded.
func TestConcurrent(t *testing.T) {
	f := openBytes(t, imgtest.Seed(t, "ext4.img"))
	done := make(chan error)
	for i := range 8 {
		go func() {
			for j := range 20 {
				name := fmt.Sprintf("dir/e%02d", (i*20+j)%90)
				if _, err := fs.ReadFile(f, name); err != nil {
					done <- err
					return
				}
				if _, err := fs.ReadFile(f, "boot/vmlinuz"); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
