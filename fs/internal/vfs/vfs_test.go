package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// memFS is an in-memory driver: a tree described by paths.
type memFS struct {
	nodes map[uint64]*memNode
	reads int // ReadDir calls, to observe the cache
}

type memNode struct {
	id     uint64
	mode   fs.FileMode
	data   []byte
	target string
	kids   []Dirent
}

func (n *memNode) ID() uint64         { return n.id }
func (n *memNode) Mode() fs.FileMode  { return n.mode }
func (n *memNode) Size() int64        { return int64(len(n.data)) }
func (n *memNode) ModTime() time.Time { return time.Time{} }

func (m *memFS) Root() (Node, error) { return m.nodes[1], nil }
func (m *memFS) ReadDir(d Node) ([]Dirent, error) {
	m.reads++
	return append([]Dirent(nil), d.(*memNode).kids...), nil
}
func (m *memFS) Load(ref uint64) (Node, error) {
	if n, ok := m.nodes[ref]; ok {
		return n, nil
	}
	return nil, Corruptf("no node %d", ref)
}
func (m *memFS) ReadLink(n Node) (string, error)  { return n.(*memNode).target, nil }
func (m *memFS) Open(n Node) (io.ReaderAt, error) { return bytes.NewReader(n.(*memNode).data), nil }

// build makes a memFS from entries: "dir/", "file=content", "link->target".
func build(entries ...string) *memFS {
	m := &memFS{nodes: map[uint64]*memNode{1: {id: 1, mode: fs.ModeDir | 0o755}}}
	byPath := map[string]*memNode{"": m.nodes[1]}
	next := uint64(2)
	var mk func(p string, n *memNode)
	mk = func(p string, n *memNode) {
		dir, base := "", p
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			dir, base = p[:i], p[i+1:]
		}
		parent, ok := byPath[dir]
		if !ok {
			parent = &memNode{id: next, mode: fs.ModeDir | 0o755}
			next++
			m.nodes[parent.id] = parent
			mk(dir, parent)
		}
		n.id = next
		next++
		m.nodes[n.id] = n
		byPath[p] = n
		parent.kids = append(parent.kids, Dirent{Name: base, Type: n.mode & fs.ModeType, Ref: n.id})
	}
	for _, e := range entries {
		switch {
		case strings.Contains(e, "->"):
			p, t, _ := strings.Cut(e, "->")
			mk(p, &memNode{mode: fs.ModeSymlink | 0o777, target: t})
		case strings.HasSuffix(e, "/"):
			mk(strings.TrimSuffix(e, "/"), &memNode{mode: fs.ModeDir | 0o755})
		default:
			p, data, _ := strings.Cut(e, "=")
			mk(p, &memNode{mode: 0o644, data: []byte(data)})
		}
	}
	return m
}

func newFS(t *testing.T, m *memFS, fold func(string) string) *FS {
	f, err := New(m, Options{Type: "mem", Fold: fold})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// chain returns n symlinks l1 -> l2 -> ... -> ln -> file.
func chain(n int) []string {
	out := []string{"file=end"}
	for i := 1; i <= n; i++ {
		t := fmt.Sprintf("l%d", i+1)
		if i == n {
			t = "file"
		}
		out = append(out, fmt.Sprintf("l%d->%s", i, t))
	}
	return out
}

func TestWalk(t *testing.T) {
	m := build(append(chain(MaxSymlinks+1),
		"a/b/c=abc", "a/up->..", "a/root->/", "a/abs->/a/b/c", "a/rel->b/c",
		"a/dotdot->../a/./b/../b/c", "a/file->c", "self->self", "empty->")...)
	f := newFS(t, m, nil)
	cases := []struct {
		name string
		want string
		err  error
	}{
		{"a/b/c", "abc", nil},
		{"a/abs", "abc", nil},
		{"a/rel", "abc", nil},
		{"a/dotdot", "abc", nil},
		{"a/up/a/b/c", "abc", nil},
		{"a/root/a/root/a/b/c", "abc", nil},
		{"l2", "end", nil}, // 40 hops: allowed
		{"l1", "", ErrSymlinkLoop},
		{"self", "", ErrSymlinkLoop},
		{"empty", "", ErrCorrupt},
		{"a/file", "", fs.ErrNotExist}, // "c" relative to a/
		{"a/b/c/d", "", ErrNotDir},
		{"a/missing", "", fs.ErrNotExist},
		{"/a/b/c", "", fs.ErrInvalid},
		{"a/../a/b/c", "", fs.ErrInvalid},
		{strings.Repeat("a/up/", 1000) + "a/b/c", "", ErrNameTooLong},
	}
	for _, c := range cases {
		b, err := f.ReadFile(c.name)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("ReadFile(%.40q) = %q, %v; want %v", c.name, b, err, c.err)
			}
			continue
		}
		if err != nil || string(b) != c.want {
			t.Errorf("ReadFile(%q) = %q, %v; want %q", c.name, b, err, c.want)
		}
	}
	// Lstat and ReadLink do not follow the last link; Stat does.
	if fi, err := f.Lstat("a/abs"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(a/abs) = %v, %v", fi, err)
	}
	if fi, err := f.Stat("a/up"); err != nil || !fi.IsDir() || fi.Name() != "up" {
		t.Errorf("Stat(a/up) = %v, %v", fi, err)
	}
	if l, err := f.ReadLink("a/dotdot"); err != nil || l != "../a/./b/../b/c" {
		t.Errorf("ReadLink = %q, %v", l, err)
	}
	if _, err := f.ReadLink("a/b/c"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink(file) = %v, want ErrInvalid", err)
	}
	if _, err := f.ReadFile("a"); !errors.Is(err, ErrIsDir) {
		t.Errorf("ReadFile(dir) = %v, want ErrIsDir", err)
	}
}

func TestFold(t *testing.T) {
	m := build("Boot/Grub.CFG=x", "Boot/other=y")
	m.nodes[1].kids[0].Alias = "BOOT~1"
	f := newFS(t, m, strings.ToUpper)
	for _, name := range []string{"boot/grub.cfg", "BOOT/GRUB.CFG", "boot~1/Grub.CFG"} {
		if b, err := f.ReadFile(name); err != nil || string(b) != "x" {
			t.Errorf("ReadFile(%q) = %q, %v", name, b, err)
		}
	}
	ents, _ := f.ReadDir(".")
	if len(ents) != 1 || ents[0].Name() != "Boot" {
		t.Errorf("aliases must not be listed: %v", ents)
	}
	exact := newFS(t, build("Boot/Grub.CFG=x"), nil)
	if _, err := exact.ReadFile("boot/grub.cfg"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("exact matching: %v", err)
	}
}

func TestListingAndCache(t *testing.T) {
	var entries []string
	for i := range 100 {
		entries = append(entries, fmt.Sprintf("d%03d/f=%d", 99-i, i))
	}
	m := build(entries...)
	f := newFS(t, m, nil)
	ents, err := f.ReadDir(".")
	if err != nil || len(ents) != 100 || ents[0].Name() != "d000" || ents[99].Name() != "d099" {
		t.Fatalf("ReadDir(.) unsorted or short: %v", err)
	}
	m.reads = 0
	f.ReadFile("d050/f")
	f.ReadFile("d050/f")
	if m.reads != 1 {
		t.Errorf("second lookup read the directory again (%d reads)", m.reads)
	}
	// Touch more directories than the cache holds: it must stay bounded.
	for i := range 100 {
		f.ReadFile(fmt.Sprintf("d%03d/f", i))
	}
	if len(f.cache) > cacheDirs || len(f.order) != len(f.cache) {
		t.Errorf("cache holds %d directories (order %d), limit %d", len(f.cache), len(f.order), cacheDirs)
	}
	// The io/fs conformance checks.
	if err := fstest.TestFS(f, "d000/f", "d099/f"); err != nil {
		t.Error(err)
	}
}

func TestFileAccess(t *testing.T) {
	f := newFS(t, build("f=0123456789"), nil)
	file, err := f.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	fl := file.(*File)
	b := make([]byte, 4)
	if n, err := fl.ReadAt(b, 8); n != 2 || err != io.EOF || string(b[:2]) != "89" {
		t.Errorf("ReadAt past the end = %d, %v", n, err)
	}
	if _, err := fl.Seek(-3, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if n, err := fl.Read(b); n != 3 || string(b[:3]) != "789" || err != nil {
		t.Errorf("Read after Seek = %d %q %v", n, b[:n], err)
	}
	if _, err := fl.Read(b); err != io.EOF {
		t.Errorf("Read at the end = %v", err)
	}
	if _, err := fl.Seek(-1, io.SeekStart); err == nil {
		t.Error("negative Seek accepted")
	}
	if _, err := fl.ReadDir(-1); !errors.Is(err, ErrNotDir) {
		t.Errorf("ReadDir on a file = %v", err)
	}
	old := MaxReadFile.Load()
	defer MaxReadFile.Store(old)
	MaxReadFile.Store(5)
	if _, err := f.ReadFile("f"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFile over the limit = %v, want ErrTooLarge", err)
	}
}

type countingReader struct {
	data  []byte
	calls int
}

func (r *countingReader) ReadAt(p []byte, off int64) (int, error) {
	r.calls++
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestExtentReader(t *testing.T) {
	dev := &countingReader{data: bytes.Repeat([]byte("0123456789abcdef"), 1<<17)} // 2 MiB
	ext := []Extent{
		{Logical: 0, Physical: 16, Length: 4},
		{Logical: 10, Physical: 0, Length: 6, Zero: true},
		{Logical: 20, Physical: 32, Length: 3 << 20 / 2}, // 1.5 MiB
	}
	r, err := NewExtentReader(dev, int64(len(dev.data)), 20+3<<20/2+5, ext)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 24)
	if n, err := r.ReadAt(b, 0); n != 24 || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if want := "0123\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x000123"; string(b) != want {
		t.Errorf("holes and zero extents: %q", b)
	}
	// One big read of the long extent takes two device reads (MaxIO).
	dev.calls = 0
	big := make([]byte, 3<<20/2)
	if n, err := r.ReadAt(big, 20); n != len(big) || err != nil {
		t.Fatalf("big ReadAt = %d, %v", n, err)
	}
	if dev.calls != 2 {
		t.Errorf("1.5 MiB extent read in %d device reads, want 2", dev.calls)
	}
	// The tail past the last extent is a hole up to the size, then EOF.
	if n, err := r.ReadAt(b, 20+3<<20/2); n != 5 || err != io.EOF || !bytes.Equal(b[:5], make([]byte, 5)) {
		t.Errorf("tail: %d, %v, %q", n, err, b[:n])
	}
	bad := [][]Extent{
		{{Logical: 0, Physical: 0, Length: 10}, {Logical: 5, Physical: 0, Length: 10}}, // overlap
		{{Logical: 0, Physical: int64(len(dev.data)) - 5, Length: 10}},                 // past the device
		{{Logical: 0, Physical: 0, Length: 0}},                                         // empty
		{{Logical: 1 << 62, Physical: 0, Length: 1 << 62}},                             // overflow
	}
	for i, e := range bad {
		if _, err := NewExtentReader(dev, int64(len(dev.data)), 100, e); !errors.Is(err, ErrCorrupt) {
			t.Errorf("bad extents %d: %v", i, err)
		}
	}
}
