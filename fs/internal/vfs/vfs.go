// Package vfs turns a small per-format driver (ext4, FAT, ISO 9660,
// squashfs) into an io/fs file system, so that path resolution is written
// once and behaves the same on every format: GRUB-style walking with `.`
// and `..`, symbolic links followed at most 40 times, optional case
// folding (FAT), a bounded cache of directory listings, and io/fs errors.
//
// Drivers parse hostile on-disk data; this package only trusts what a
// driver has already validated, and itself caps what a hostile tree can
// make it do (path length, symlink hops, directory sizes, file reads).
package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors shared by every driver (re-exported by package fs).
var (
	// ErrCorrupt marks on-disk structures that are inconsistent: offsets
	// outside the volume, broken chains, loops, bad checksums.
	ErrCorrupt = errors.New("corrupt filesystem")
	// ErrChecksum marks a metadata checksum mismatch; it always comes
	// together with ErrCorrupt.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrTooLarge marks a size or count beyond what we agree to allocate.
	ErrTooLarge = errors.New("too large")
	// ErrSymlinkLoop is returned after MaxSymlinks symbolic link hops.
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
	// ErrNotDir is returned when a path walks through a non-directory.
	ErrNotDir = errors.New("not a directory")
	// ErrIsDir is returned when reading a directory as a file.
	ErrIsDir = errors.New("is a directory")
	// ErrNameTooLong is returned for paths beyond MaxPath bytes.
	ErrNameTooLong = errors.New("path too long")
)

// Corruptf returns an error wrapping ErrCorrupt.
func Corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

const (
	// MaxSymlinks is how many symbolic links one lookup may follow
	// (Linux's and GRUB's limit).
	MaxSymlinks = 40
	// MaxPath caps a path or symlink target, as PATH_MAX does.
	MaxPath = 4096
	// MaxDirEntries caps one directory listing: bigger directories are
	// refused rather than held in a 64 MiB domain.
	MaxDirEntries = 1 << 18
)

// MaxReadFile caps ReadFile: a sparse or lying file cannot make it
// allocate more than this. The default suits a 64-128 MiB domain.
var MaxReadFile atomic.Int64

func init() { MaxReadFile.Store(256 << 20) }

// Node is one file, directory or symlink as a driver knows it.
type Node interface {
	// ID identifies the node within its file system (the cache key for
	// directory listings).
	ID() uint64
	Mode() fs.FileMode
	Size() int64
	ModTime() time.Time
}

// Dirent is one directory entry as a driver lists it.
type Dirent struct {
	Name  string
	Alias string      // a second name lookups accept (FAT 8.3 names); not listed
	Type  fs.FileMode // the fs.ModeType bits of the entry
	Node  Node        // the entry's node, when the directory holds it already
	Ref   uint64      // otherwise what Driver.Load takes
}

// Driver is what a format implements. Calls are serialised by the FS;
// the io.ReaderAt returned by Open must be safe for concurrent use.
type Driver interface {
	Root() (Node, error)
	ReadDir(dir Node) ([]Dirent, error)
	Load(ref uint64) (Node, error)
	ReadLink(link Node) (string, error)
	Open(file Node) (io.ReaderAt, error)
}

// Options describes the volume around a driver.
type Options struct {
	Type, UUID, Label string
	// Fold maps a name to its lookup key; nil means exact matching.
	Fold     func(string) string
	Warnings []string
}

// FS is an io/fs view of a driver. It implements fs.FS, fs.ReadDirFS,
// fs.ReadFileFS, fs.StatFS and fs.ReadLinkFS.
type FS struct {
	d    Driver
	opts Options
	root Node

	mu    sync.Mutex
	cache map[uint64]*listing
	order []uint64 // cache keys, oldest first
	held  int      // entries held by the cache
}

type listing struct {
	ents  []Dirent // sorted by name
	index map[string]int
}

const (
	cacheDirs    = 64
	cacheEntries = 1 << 18
)

// New wraps d; it loads the root directory to fail early on a bad volume.
func New(d Driver, o Options) (*FS, error) {
	root, err := d.Root()
	if err != nil {
		return nil, err
	}
	if !root.Mode().IsDir() {
		return nil, Corruptf("root is not a directory")
	}
	return &FS{d: d, opts: o, root: root, cache: map[uint64]*listing{}}, nil
}

func (f *FS) Type() string  { return f.opts.Type }
func (f *FS) UUID() string  { return f.opts.UUID }
func (f *FS) Label() string { return f.opts.Label }

// Warnings lists conditions worth telling the user that did not stop the
// volume from opening (for example an ext4 journal that needs recovery).
func (f *FS) Warnings() []string { return append([]string(nil), f.opts.Warnings...) }

func (f *FS) key(name string) string {
	if f.opts.Fold != nil {
		return f.opts.Fold(name)
	}
	return name
}

// dir returns the (cached) listing of a directory node. Caller holds f.mu.
func (f *FS) dir(n Node) (*listing, error) {
	if l, ok := f.cache[n.ID()]; ok {
		return l, nil
	}
	ents, err := f.d.ReadDir(n)
	if err != nil {
		return nil, err
	}
	if len(ents) > MaxDirEntries {
		return nil, fmt.Errorf("directory with %d entries: %w", len(ents), ErrTooLarge)
	}
	sort.SliceStable(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	l := &listing{ents: ents, index: make(map[string]int, len(ents))}
	for i, e := range ents {
		// The first of duplicate names wins, as a linear scan would.
		if _, dup := l.index[f.key(e.Name)]; !dup {
			l.index[f.key(e.Name)] = i
		}
	}
	for i, e := range ents {
		if e.Alias == "" {
			continue
		}
		if _, dup := l.index[f.key(e.Alias)]; !dup {
			l.index[f.key(e.Alias)] = i
		}
	}
	for len(f.order) > 0 && (len(f.order) >= cacheDirs || f.held+len(ents) > cacheEntries) {
		old := f.order[0]
		f.order = f.order[1:]
		f.held -= len(f.cache[old].ents)
		delete(f.cache, old)
	}
	f.cache[n.ID()] = l
	f.order = append(f.order, n.ID())
	f.held += len(ents)
	return l, nil
}

func (f *FS) node(e *Dirent) (Node, error) {
	if e.Node != nil {
		return e.Node, nil
	}
	return f.d.Load(e.Ref)
}

// lookup finds name in directory dir. Caller holds f.mu.
func (f *FS) lookup(dir Node, name string) (Node, error) {
	l, err := f.dir(dir)
	if err != nil {
		return nil, err
	}
	i, ok := l.index[f.key(name)]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return f.node(&l.ents[i])
}

// readLink reads and checks a symlink target. Caller holds f.mu.
func (f *FS) readLink(n Node) (string, error) {
	t, err := f.d.ReadLink(n)
	if err != nil {
		return "", err
	}
	if t == "" {
		return "", Corruptf("empty symlink")
	}
	if len(t) > MaxPath {
		return "", fmt.Errorf("symlink target of %d bytes: %w", len(t), ErrNameTooLong)
	}
	return t, nil
}

func split(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}

// walk resolves an io/fs path the way GRUB and Linux do: ".." is the
// parent on the path walked so far (never above the root), symlinks in
// the middle of a path are always followed, the last one only if follow.
// Caller holds f.mu.
func (f *FS) walk(name string, follow bool) (Node, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrInvalid
	}
	if len(name) > MaxPath {
		return nil, ErrNameTooLong
	}
	stack := []Node{f.root}
	comps := split(name)
	links := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		dir := stack[len(stack)-1]
		if !dir.Mode().IsDir() {
			return nil, ErrNotDir
		}
		n, err := f.lookup(dir, c)
		if err != nil {
			return nil, err
		}
		if n.Mode()&fs.ModeSymlink != 0 && (len(comps) > 0 || follow) {
			links++
			if links > MaxSymlinks {
				return nil, ErrSymlinkLoop
			}
			t, err := f.readLink(n)
			if err != nil {
				return nil, err
			}
			if t[0] == '/' {
				stack = stack[:1]
			}
			comps = append(split(t), comps...)
			continue
		}
		stack = append(stack, n)
		if len(stack) > MaxPath/2 {
			return nil, ErrNameTooLong
		}
	}
	return stack[len(stack)-1], nil
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// Open implements fs.FS; symlinks are followed.
func (f *FS) Open(name string) (fs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.walk(name, true)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return f.open(name, n)
}

// open makes a File for a node. Caller holds f.mu.
func (f *FS) open(name string, n Node) (*File, error) {
	file := &File{fsys: f, info: fileInfo{name: path.Base(name), n: n}}
	if n.Mode().IsDir() {
		l, err := f.dir(n)
		if err != nil {
			return nil, pathErr("open", name, err)
		}
		file.ents = l.ents
		return file, nil
	}
	if n.Mode().IsRegular() {
		r, err := f.d.Open(n)
		if err != nil {
			return nil, pathErr("open", name, err)
		}
		file.r = r
	}
	return file, nil
}

// Stat implements fs.StatFS; symlinks are followed.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.walk(name, true)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return fileInfo{name: path.Base(name), n: n}, nil
}

// Lstat implements fs.ReadLinkFS: a final symlink is not followed.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.walk(name, false)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return fileInfo{name: path.Base(name), n: n}, nil
}

// ReadLink implements fs.ReadLinkFS.
func (f *FS) ReadLink(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.walk(name, false)
	if err != nil {
		return "", pathErr("readlink", name, err)
	}
	if n.Mode()&fs.ModeSymlink == 0 {
		return "", pathErr("readlink", name, fs.ErrInvalid)
	}
	t, err := f.readLink(n)
	if err != nil {
		return "", pathErr("readlink", name, err)
	}
	return t, nil
}

// ReadDir implements fs.ReadDirFS: entries sorted by name, without . and ..
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.walk(name, true)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	if !n.Mode().IsDir() {
		return nil, pathErr("readdir", name, ErrNotDir)
	}
	l, err := f.dir(n)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	out := make([]fs.DirEntry, len(l.ents))
	for i := range l.ents {
		out[i] = dirEntry{f, &l.ents[i]}
	}
	return out, nil
}

// ReadFile implements fs.ReadFileFS. It refuses files over
// MaxReadFile before allocating, so a lying size cannot exhaust memory
// (fs.ReadFile's generic path would trust Stat's size without a cap).
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	fl := file.(*File)
	if fl.r == nil {
		if fl.info.n.Mode().IsDir() {
			return nil, pathErr("read", name, ErrIsDir)
		}
		return nil, pathErr("read", name, fs.ErrInvalid)
	}
	size := fl.info.n.Size()
	if limit := MaxReadFile.Load(); size > limit {
		return nil, pathErr("read", name, fmt.Errorf("file of %d bytes (limit %d): %w", size, limit, ErrTooLarge))
	}
	buf := make([]byte, size)
	n, err := fl.r.ReadAt(buf, 0)
	if n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, pathErr("read", name, err)
	}
	return buf, nil
}

type fileInfo struct {
	name string
	n    Node
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.n.Size() }
func (i fileInfo) Mode() fs.FileMode  { return i.n.Mode() }
func (i fileInfo) ModTime() time.Time { return i.n.ModTime() }
func (i fileInfo) IsDir() bool        { return i.n.Mode().IsDir() }
func (i fileInfo) Sys() any           { return nil }

type dirEntry struct {
	f *FS
	e *Dirent
}

func (d dirEntry) Name() string      { return d.e.Name }
func (d dirEntry) IsDir() bool       { return d.e.Type.IsDir() }
func (d dirEntry) Type() fs.FileMode { return d.e.Type & fs.ModeType }
func (d dirEntry) Info() (fs.FileInfo, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	n, err := d.f.node(d.e)
	if err != nil {
		return nil, pathErr("stat", d.e.Name, err)
	}
	return fileInfo{name: d.e.Name, n: n}, nil
}
func (d dirEntry) String() string { return fs.FormatDirEntry(d) }

// File is an open file or directory. Regular files also implement
// io.ReaderAt and io.Seeker, which the kernel loader uses.
type File struct {
	fsys *FS
	info fileInfo
	r    io.ReaderAt // regular files
	off  int64
	ents []Dirent // directories
	pos  int      // next ReadDir entry
}

func (fl *File) Stat() (fs.FileInfo, error) { return fl.info, nil }
func (fl *File) Close() error               { return nil }

func (fl *File) Read(p []byte) (int, error) {
	if fl.r == nil {
		return 0, pathErr("read", fl.info.name, ErrIsDir)
	}
	size := fl.info.n.Size()
	if fl.off >= size {
		return 0, io.EOF
	}
	if int64(len(p)) > size-fl.off {
		p = p[:size-fl.off]
	}
	n, err := fl.r.ReadAt(p, fl.off)
	fl.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads at an absolute offset; reads past the end return io.EOF.
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	if fl.r == nil {
		return 0, pathErr("read", fl.info.name, ErrIsDir)
	}
	if off < 0 {
		return 0, pathErr("read", fl.info.name, fs.ErrInvalid)
	}
	size := fl.info.n.Size()
	if off >= size {
		return 0, io.EOF
	}
	short := false
	if int64(len(p)) > size-off {
		p, short = p[:size-off], true
	}
	n, err := fl.r.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

func (fl *File) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += fl.off
	case io.SeekEnd:
		offset += fl.info.n.Size()
	default:
		return 0, pathErr("seek", fl.info.name, fs.ErrInvalid)
	}
	if offset < 0 {
		return 0, pathErr("seek", fl.info.name, fs.ErrInvalid)
	}
	fl.off = offset
	return offset, nil
}

// ReadDir implements fs.ReadDirFile.
func (fl *File) ReadDir(n int) ([]fs.DirEntry, error) {
	if !fl.info.n.Mode().IsDir() {
		return nil, pathErr("readdir", fl.info.name, ErrNotDir)
	}
	rest := fl.ents[fl.pos:]
	if n > 0 && len(rest) > n {
		rest = rest[:n]
	}
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	out := make([]fs.DirEntry, len(rest))
	for i := range rest {
		out[i] = dirEntry{fl.fsys, &rest[i]}
	}
	fl.pos += len(rest)
	return out, nil
}
