// Package imgtest is shared by the fs tests: it builds reference trees on
// the host, runs the real tools (mke2fs, mkfs.fat, xorriso, ...) through
// internal/testassets so that missing tools skip locally and fail in CI,
// and compares what our readers see with what the host tree holds.
package imgtest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
)

// Run runs a host tool and returns its standard output; a failure fails
// the test with the tool's standard error.
func Run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	testassets.NeedTools(t, name)
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// Blkid returns what blkid -p says about an image (keys UUID, LABEL, TYPE...).
func Blkid(t testing.TB, image string) map[string]string {
	t.Helper()
	testassets.NeedTools(t, "blkid")
	out, _ := exec.Command("blkid", "-p", "-o", "export", image).Output()
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Open opens an image file for reading; it is closed with the test.
func Open(t testing.TB, name string) (*os.File, int64) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}

// Random returns n reproducible pseudo-random bytes for seed.
func Random(seed string, n int64) []byte {
	var key [32]byte
	copy(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// Tree options select what a format can represent.
type Tree struct {
	Big      bool // a ~100 MiB file and a 10,000-entry directory
	Sparse   bool // a 160 MiB sparse file
	Symlinks bool
	Deep     int // depth of the deep/ chain
}

// BigFileSize is the size of boot/vmlinuz in a Big tree: past the 64.3 MiB
// that 1 KiB-block ext2 maps without triple indirect blocks.
const BigFileSize = 100<<20 + 4321

// SparseSize is the apparent size of sparse.img.
const SparseSize = 160 << 20

// ManyEntries is the size of the many/ directory in a Big tree.
const ManyEntries = 10000

// MediumEntries is the size of the medium/ directory in every tree.
const MediumEntries = 1000

// Write builds the reference tree under dir.
func (o Tree) Write(dir string) error {
	// Keep the first error; later steps may fail because of it, harmlessly.
	var first error
	must := func(err error) {
		if first == nil {
			first = err
		}
	}
	file := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, 0o644))
	}
	file("boot/grub/grub.cfg", []byte("set default=0\nset timeout=5\nmenuentry 'Debian' {\n\tlinux /boot/vmlinuz root=/dev/xvda1\n\tinitrd /boot/initrd.img\n}\n"))
	file("boot/grub/menu.lst", []byte("default 0\ntimeout 5\ntitle Debian\n\troot (hd0,0)\n\tkernel /boot/vmlinuz root=/dev/xvda1\n\tinitrd /boot/initrd.img\n"))
	file("boot/initrd.img", Random("initrd", 1<<20+7))
	for _, n := range []int64{0, 1, 59, 60, 61, 1023, 1024, 1025, 4095, 4096, 4097, 65535, 65536, 65537, 300000} {
		file(fmt.Sprintf("sizes/s%d", n), Random(fmt.Sprint(n), n))
	}
	for _, n := range []string{"Long File Name With Spaces.txt", "MiXeD.CaSe", "ünïcödé-ñ.txt", "a.b.c.d", "UPPER.TXT", "lower.txt", strings.Repeat("x", 200)} {
		file("names/"+n, []byte(n+"\n"))
	}
	must(os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755))
	// A directory of several blocks: e2fsck -D turns it into an htree.
	for i := range MediumEntries {
		name := fmt.Sprintf("entry-%04d-with-a-longer-name", i)
		file("medium/"+name, []byte(name))
	}
	deep := "deep"
	for i := 1; i <= o.Deep; i++ {
		deep += fmt.Sprintf("/d%02d", i)
	}
	file(deep+"/leaf.txt", []byte("bottom\n"))
	if o.Symlinks {
		link := func(target, rel string) { must(os.Symlink(target, filepath.Join(dir, rel))) }
		must(os.MkdirAll(filepath.Join(dir, "links"), 0o755))
		link("../boot/grub/grub.cfg", "links/rel")
		link("/boot/grub/grub.cfg", "links/abs")
		link("chain2", "links/chain1")
		link("chain3", "links/chain2")
		link("rel", "links/chain3")
		link("../deep", "links/dirlink")
		link("../"+strings.Repeat("boot/../", 12)+"boot/grub/grub.cfg", "links/slow")
		link("loopB", "links/loopA")
		link("loopA", "links/loopB")
		link("nowhere", "links/dangling")
		link(".", "links/self")
	}
	if o.Big {
		file("boot/vmlinuz", Random("vmlinuz", BigFileSize))
		many := filepath.Join(dir, "many")
		must(os.MkdirAll(many, 0o755))
		for i := range ManyEntries {
			name := fmt.Sprintf("f%05d", i)
			must(os.WriteFile(filepath.Join(many, name), []byte(name+"\n"), 0o644))
		}
	} else {
		file("boot/vmlinuz", Random("vmlinuz", 3<<20+4321))
	}
	if o.Sparse {
		f, err := os.Create(filepath.Join(dir, "sparse.img"))
		if err != nil {
			return err
		}
		must(f.Truncate(SparseSize))
		for _, at := range []int64{0, 80 << 20, SparseSize - 1000} {
			_, err := f.WriteAt(Random(fmt.Sprint("sparse", at), min(64<<10, SparseSize-at)), at)
			must(err)
		}
		must(f.Close())
	}
	return first
}

// Entry is what a snapshot records of one path.
type Entry struct {
	Kind   byte // 'f' file, 'd' directory, 'l' symlink
	Size   int64
	Sum    [32]byte
	Target string
}

func (e Entry) String() string {
	switch e.Kind {
	case 'l':
		return "symlink -> " + e.Target
	case 'd':
		return "dir"
	}
	return fmt.Sprintf("file %d bytes sha256 %x", e.Size, e.Sum[:6])
}

// Snapshot records the host tree under root; skip filters relative paths
// (with their subtrees) the format cannot hold.
func Snapshot(t testing.TB, root string, skip func(rel string) bool) map[string]Entry {
	t.Helper()
	out := map[string]Entry{}
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = Entry{Kind: 'l', Target: target}
		case d.IsDir():
			out[rel] = Entry{Kind: 'd'}
		default:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			n, err := io.CopyBuffer(h, f, buf)
			if err != nil {
				return err
			}
			out[rel] = Entry{Kind: 'f', Size: n, Sum: [32]byte(h.Sum(nil))}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// FS is what our volumes offer.
type FS interface {
	fs.ReadDirFS
	fs.ReadLinkFS
}

// SnapshotFS records a volume through our reader: every listing, every
// file's bytes (read with 1 MiB reads, as the loader does) and every
// symlink target.
func SnapshotFS(t testing.TB, fsys FS) map[string]Entry {
	t.Helper()
	out := map[string]Entry{}
	buf := make([]byte, 1<<20)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := fsys.ReadLink(p)
			if err != nil {
				return err
			}
			out[p] = Entry{Kind: 'l', Target: target}
		case d.IsDir():
			out[p] = Entry{Kind: 'd'}
		default:
			f, err := fsys.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.CopyBuffer(h, f, buf)
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			if n != st.Size() {
				return fmt.Errorf("%s: read %d bytes, Stat says %d", p, n, st.Size())
			}
			out[p] = Entry{Kind: 'f', Size: n, Sum: [32]byte(h.Sum(nil))}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Diff lists the differences between two snapshots (at most 20).
func Diff(want, got map[string]Entry) []string {
	var d []string
	keys := make([]string, 0, len(want)+len(got))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			d = append(d, fmt.Sprintf("%s: missing (want %v)", k, w))
		case !wok:
			d = append(d, fmt.Sprintf("%s: unexpected %v", k, g))
		case w != g:
			d = append(d, fmt.Sprintf("%s: got %v, want %v", k, g, w))
		}
		if len(d) == 20 {
			d = append(d, "...")
			break
		}
	}
	return d
}

// Under reports whether rel is dir or inside it.
func Under(rel string, dirs ...string) bool {
	for _, d := range dirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// Clean joins and cleans an io/fs path.
func Clean(elem ...string) string { return path.Clean(path.Join(elem...)) }

// LinkTree mirrors src into dst without the paths skip selects:
// directories are made, files hard-linked (cheap, and sparse files stay
// sparse), symlinks copied.
func LinkTree(src, dst string, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		out := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, out)
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		}
		return os.Link(p, out)
	})
}

// WriteAt copies the file src into the file dst at byte offset off.
func WriteAt(t testing.TB, dst string, off int64, src string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}
