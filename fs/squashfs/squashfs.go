// Package squashfs reads squashfs 4.0 file systems, read-only, from an
// io.ReaderAt, with gzip, xz, lzma, lz4 and zstd compression.
//
// It is our own code because go-diskfs's squashfs reader panics on
// corrupt images (slice bounds out of range in readMetadata, found by
// mutating a real image), and inside the unikernel a panic is fatal.
// Decompression uses the standard library (zlib) and the modules the
// project already pins; every decompressed block is capped at its format
// limit (8 KiB metadata, the volume's block size for data), so a crafted
// block cannot inflate beyond it.
//
// LZO-compressed volumes are refused with errors.ErrUnsupported: no
// pinned module decodes LZO.
package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// ErrNotSquashfs is returned when the volume has no squashfs superblock.
var ErrNotSquashfs = errors.New("squashfs: no superblock")

const (
	magic         = 0x73717368
	superSize     = 96
	metaMax       = 8192
	maxDirBytes   = 32 << 20
	maxFileBlocks = 1 << 20
	noFragment    = 0xFFFFFFFF
	absent        = ^uint64(0)
	metaCacheLen  = 64
)

// FS is an opened squashfs volume.
type FS struct {
	*vfs.FS
	v *volume
}

// Compression names the volume's compressor ("gzip", "xz", ...).
func (f *FS) Compression() string { return f.v.dec.name }

type volume struct {
	dev        io.ReaderAt
	size       int64
	blockSize  int64
	fragCount  uint32
	rootRef    uint64
	inodeTable int64
	inodeEnd   int64
	dirTable   int64
	dirEnd     int64
	fragTable  int64
	mtime      time.Time
	dec        *decompressor

	mu   sync.Mutex
	meta map[int64]metaBlock // decompressed metadata blocks by disk offset
}

type metaBlock struct {
	data []byte
	next int64 // disk offset of the following block
}

func le16(b []byte) uint64 { return uint64(binary.LittleEndian.Uint16(b)) }
func le32(b []byte) uint64 { return uint64(binary.LittleEndian.Uint32(b)) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// Probe reports whether r starts with the squashfs magic.
func Probe(r io.ReaderAt) bool {
	var b [4]byte
	return vfs.ReadFullAt(r, b[:], 0) == nil && binary.LittleEndian.Uint32(b[:]) == magic
}

// Open reads the superblock of the squashfs volume in r (size bytes) and
// its root directory.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	v, err := openVolume(r, size)
	if err != nil {
		return nil, err
	}
	fsys, err := vfs.New(v, vfs.Options{Type: "squashfs"})
	if err != nil {
		return nil, err
	}
	return &FS{FS: fsys, v: v}, nil
}

func openVolume(r io.ReaderAt, size int64) (*volume, error) {
	sb := make([]byte, superSize)
	if err := vfs.ReadFullAt(r, sb, 0); err != nil {
		return nil, fmt.Errorf("squashfs: superblock: %w", err)
	}
	if le32(sb) != magic {
		return nil, ErrNotSquashfs
	}
	if major, minor := le16(sb[28:]), le16(sb[30:]); major != 4 || minor != 0 {
		return nil, fmt.Errorf("squashfs: version %d.%d: %w", major, minor, errors.ErrUnsupported)
	}
	v := &volume{dev: r, size: size, meta: map[int64]metaBlock{}}
	v.blockSize = int64(le32(sb[12:]))
	if v.blockSize < 4096 || v.blockSize > 1<<20 || v.blockSize&(v.blockSize-1) != 0 || int64(1)<<le16(sb[22:]) != v.blockSize {
		return nil, vfs.Corruptf("squashfs: block size %d (log %d)", v.blockSize, le16(sb[22:]))
	}
	v.fragCount = uint32(le32(sb[16:]))
	v.mtime = time.Unix(int64(le32(sb[8:])), 0).UTC()
	v.rootRef = le64(sb[32:])
	used := le64(sb[40:])
	if used > uint64(size) || used < superSize {
		return nil, vfs.Corruptf("squashfs: %d bytes used on a %d-byte volume", used, size)
	}
	inodes, dirs, frags := le64(sb[64:]), le64(sb[72:]), le64(sb[80:])
	if inodes < superSize || inodes >= dirs || dirs >= used {
		return nil, vfs.Corruptf("squashfs: inode table at %d, directory table at %d, %d bytes used", inodes, dirs, used)
	}
	// The directory table ends where the next table starts.
	dirEnd := used
	for _, t := range []uint64{frags, le64(sb[88:]), le64(sb[48:]), le64(sb[56:])} {
		if t != absent && t > dirs && t < dirEnd {
			dirEnd = t
		}
	}
	v.inodeTable, v.inodeEnd = int64(inodes), int64(dirs)
	v.dirTable, v.dirEnd = int64(dirs), int64(dirEnd)
	if v.fragCount > 0 {
		if frags == absent || frags < dirs || frags >= used {
			return nil, vfs.Corruptf("squashfs: fragment table at %d", frags)
		}
		v.fragTable = int64(frags)
	}
	dec, err := newDecompressor(uint16(le16(sb[20:])), v.blockSize)
	if err != nil {
		return nil, err
	}
	// Compressor options (superblock flag 0x400) only tune compression;
	// xz filters travel in each stream, so decoding ignores them.
	v.dec = dec
	return v, nil
}

// metaBlockAt reads (and caches) the metadata block at disk offset pos,
// which must lie in [lo, hi).
func (v *volume) metaBlockAt(pos, lo, hi int64) (metaBlock, error) {
	if pos < lo || pos+2 > hi {
		return metaBlock{}, vfs.Corruptf("squashfs: metadata block at %d outside %d..%d", pos, lo, hi)
	}
	v.mu.Lock()
	mb, ok := v.meta[pos]
	v.mu.Unlock()
	if ok {
		return mb, nil
	}
	var h [2]byte
	if err := vfs.ReadFullAt(v.dev, h[:], pos); err != nil {
		return metaBlock{}, fmt.Errorf("squashfs: metadata block at %d: %w", pos, err)
	}
	hdr := le16(h[:])
	n := int64(hdr & 0x7FFF)
	if n == 0 || n > metaMax || pos+2+n > hi {
		return metaBlock{}, vfs.Corruptf("squashfs: metadata block of %d bytes at %d", n, pos)
	}
	raw := make([]byte, n)
	if err := vfs.ReadFullAt(v.dev, raw, pos+2); err != nil {
		return metaBlock{}, fmt.Errorf("squashfs: metadata block at %d: %w", pos, err)
	}
	data := raw
	if hdr&0x8000 == 0 {
		buf := make([]byte, metaMax)
		m, err := v.dec.decode(buf, raw)
		if err != nil {
			return metaBlock{}, fmt.Errorf("squashfs: metadata block at %d: %w", pos, err)
		}
		data = buf[:m]
	}
	mb = metaBlock{data: data, next: pos + 2 + n}
	v.mu.Lock()
	if len(v.meta) >= metaCacheLen {
		clear(v.meta)
	}
	v.meta[pos] = mb
	v.mu.Unlock()
	return mb, nil
}

// stream reads metadata sequentially across blocks of one table.
type stream struct {
	v      *volume
	lo, hi int64
	cur    metaBlock
	off    int
}

func (v *volume) stream(lo, hi, block int64, off int) (*stream, error) {
	mb, err := v.metaBlockAt(lo+block, lo, hi)
	if err != nil {
		return nil, err
	}
	if off > len(mb.data) {
		return nil, vfs.Corruptf("squashfs: offset %d in a %d-byte metadata block", off, len(mb.data))
	}
	return &stream{v: v, lo: lo, hi: hi, cur: mb, off: off}, nil
}

func (s *stream) read(p []byte) error {
	for len(p) > 0 {
		if s.off == len(s.cur.data) {
			mb, err := s.v.metaBlockAt(s.cur.next, s.lo, s.hi)
			if err != nil {
				return err
			}
			s.cur, s.off = mb, 0
		}
		n := copy(p, s.cur.data[s.off:])
		s.off += n
		p = p[n:]
	}
	return nil
}

func (s *stream) bytes(n int) ([]byte, error) {
	b := make([]byte, n)
	return b, s.read(b)
}

// inode is a parsed inode; it is this driver's vfs.Node.
type inode struct {
	ref   uint64
	typ   int
	mode  fs.FileMode
	mtime time.Time
	size  int64

	// directories
	dirBlock int64
	dirOff   int

	// regular files
	blocksStart int64
	blockSizes  []uint32
	frag        uint32
	fragOff     int64

	target string // symlinks
}

func (in *inode) ID() uint64         { return in.ref }
func (in *inode) Mode() fs.FileMode  { return in.mode }
func (in *inode) Size() int64        { return in.size }
func (in *inode) ModTime() time.Time { return in.mtime }

var typeBits = map[int]fs.FileMode{
	1: fs.ModeDir, 2: 0, 3: fs.ModeSymlink, 4: fs.ModeDevice, 5: fs.ModeDevice | fs.ModeCharDevice,
	6: fs.ModeNamedPipe, 7: fs.ModeSocket,
}

func (v *volume) readInode(ref uint64) (*inode, error) {
	block, off := int64(ref>>16), int(ref&0xFFFF)
	if block > v.inodeEnd-v.inodeTable || off >= metaMax {
		return nil, vfs.Corruptf("squashfs: inode reference %#x", ref)
	}
	s, err := v.stream(v.inodeTable, v.inodeEnd, block, off)
	if err != nil {
		return nil, err
	}
	in, err := v.parseInode(s, ref)
	if err != nil {
		return nil, fmt.Errorf("squashfs: inode %#x: %w", ref, err)
	}
	return in, nil
}

func (v *volume) parseInode(s *stream, ref uint64) (*inode, error) {
	h, err := s.bytes(16)
	if err != nil {
		return nil, err
	}
	in := &inode{ref: ref, typ: int(le16(h)), mtime: time.Unix(int64(le32(h[8:])), 0).UTC()}
	basic := in.typ
	if basic > 7 {
		basic -= 7
	}
	tb, ok := typeBits[basic]
	if !ok || in.typ < 1 || in.typ > 14 {
		return nil, vfs.Corruptf("inode type %d", in.typ)
	}
	perm := le16(h[2:])
	in.mode = tb | fs.FileMode(perm&0o777)
	if perm&0o4000 != 0 {
		in.mode |= fs.ModeSetuid
	}
	if perm&0o2000 != 0 {
		in.mode |= fs.ModeSetgid
	}
	if perm&0o1000 != 0 {
		in.mode |= fs.ModeSticky
	}
	switch in.typ {
	case 1: // basic directory
		b, err := s.bytes(16)
		if err != nil {
			return nil, err
		}
		in.dirBlock, in.size, in.dirOff = int64(le32(b)), int64(le16(b[8:])), int(le16(b[10:]))
	case 8: // extended directory
		b, err := s.bytes(24)
		if err != nil {
			return nil, err
		}
		in.size, in.dirBlock, in.dirOff = int64(le32(b[4:])), int64(le32(b[8:])), int(le16(b[18:]))
	case 2, 9: // files
		var size uint64
		if in.typ == 2 {
			b, err := s.bytes(16)
			if err != nil {
				return nil, err
			}
			in.blocksStart, in.frag, in.fragOff, size = int64(le32(b)), uint32(le32(b[4:])), int64(le32(b[8:])), le32(b[12:])
		} else {
			b, err := s.bytes(40)
			if err != nil {
				return nil, err
			}
			in.blocksStart, size, in.frag, in.fragOff = int64(le64(b)), le64(b[8:]), uint32(le32(b[28:])), int64(le32(b[32:]))
			if in.blocksStart < 0 {
				return nil, vfs.Corruptf("blocks at %d", le64(b))
			}
		}
		if size > uint64(maxFileBlocks)*uint64(v.blockSize) {
			return nil, fmt.Errorf("file of %d bytes: %w", size, vfs.ErrTooLarge)
		}
		in.size = int64(size)
		n := in.size / v.blockSize
		if in.frag == noFragment && in.size%v.blockSize != 0 {
			n++
		}
		if in.frag != noFragment && (in.frag >= v.fragCount || in.fragOff >= v.blockSize || in.size%v.blockSize == 0) {
			return nil, vfs.Corruptf("fragment %d at %d of a %d-byte file", in.frag, in.fragOff, in.size)
		}
		raw, err := s.bytes(int(4 * n))
		if err != nil {
			return nil, err
		}
		in.blockSizes = make([]uint32, n)
		for i := range in.blockSizes {
			in.blockSizes[i] = uint32(le32(raw[4*i:]))
		}
	case 3, 10: // symlinks
		b, err := s.bytes(8)
		if err != nil {
			return nil, err
		}
		n := le32(b[4:])
		if n == 0 || n > vfs.MaxPath {
			return nil, vfs.Corruptf("symlink of %d bytes", n)
		}
		t, err := s.bytes(int(n))
		if err != nil {
			return nil, err
		}
		in.target = string(t)
		in.size = int64(n)
	}
	return in, nil
}

func (v *volume) Root() (vfs.Node, error) { return v.readInode(v.rootRef) }

func (v *volume) Load(ref uint64) (vfs.Node, error) { return v.readInode(ref) }

func (v *volume) ReadLink(n vfs.Node) (string, error) { return n.(*inode).target, nil }

func (v *volume) ReadDir(dn vfs.Node) ([]vfs.Dirent, error) {
	d := dn.(*inode)
	// The stored size counts three bytes for "." and ".." entries that
	// are not on disk.
	if d.size <= 3 {
		return nil, nil
	}
	left := d.size - 3
	if left > maxDirBytes {
		return nil, fmt.Errorf("squashfs: directory of %d bytes: %w", left, vfs.ErrTooLarge)
	}
	if d.dirBlock > v.dirEnd-v.dirTable || d.dirOff >= metaMax {
		return nil, vfs.Corruptf("squashfs: directory at %d+%d", d.dirBlock, d.dirOff)
	}
	s, err := v.stream(v.dirTable, v.dirEnd, d.dirBlock, d.dirOff)
	if err != nil {
		return nil, err
	}
	var out []vfs.Dirent
	for left > 0 {
		if left < 12 {
			return nil, vfs.Corruptf("squashfs: directory header in %d bytes", left)
		}
		h, err := s.bytes(12)
		if err != nil {
			return nil, err
		}
		left -= 12
		count, start := le32(h)+1, le32(h[4:])
		if count > 256 {
			return nil, vfs.Corruptf("squashfs: directory run of %d entries", count)
		}
		for range count {
			if left < 8 {
				return nil, vfs.Corruptf("squashfs: directory entry in %d bytes", left)
			}
			e, err := s.bytes(8)
			if err != nil {
				return nil, err
			}
			nameLen := int64(le16(e[6:])) + 1
			if nameLen > 256 || 8+nameLen > left {
				return nil, vfs.Corruptf("squashfs: directory entry name of %d bytes", nameLen)
			}
			name, err := s.bytes(int(nameLen))
			if err != nil {
				return nil, err
			}
			left -= 8 + nameLen
			typ, ok := typeBits[int(le16(e[4:]))]
			if !ok {
				return nil, vfs.Corruptf("squashfs: directory entry type %d", le16(e[4:]))
			}
			n := string(name)
			if n == "." || n == ".." || n == "" {
				continue
			}
			out = append(out, vfs.Dirent{Name: n, Type: typ, Ref: uint64(start)<<16 | le16(e)})
			if len(out) > vfs.MaxDirEntries {
				return nil, fmt.Errorf("squashfs: more than %d entries: %w", vfs.MaxDirEntries, vfs.ErrTooLarge)
			}
		}
	}
	return out, nil
}

// fragment returns where fragment block i is and its size word.
func (v *volume) fragment(i uint32) (int64, uint32, error) {
	if i >= v.fragCount {
		return 0, 0, vfs.Corruptf("squashfs: fragment %d of %d", i, v.fragCount)
	}
	var p [8]byte
	if err := vfs.ReadFullAt(v.dev, p[:], v.fragTable+int64(i/512)*8); err != nil {
		return 0, 0, fmt.Errorf("squashfs: fragment index: %w", err)
	}
	ptr := int64(le64(p[:]))
	if ptr < v.dirTable || ptr >= v.fragTable {
		return 0, 0, vfs.Corruptf("squashfs: fragment table block at %d", ptr)
	}
	s, err := v.stream(ptr, v.fragTable, 0, int(i%512)*16)
	if err != nil {
		return 0, 0, err
	}
	e, err := s.bytes(16)
	if err != nil {
		return 0, 0, err
	}
	return int64(le64(e)), uint32(le32(e[8:])), nil
}

func (v *volume) Open(fn vfs.Node) (io.ReaderAt, error) {
	in := fn.(*inode)
	f := &file{v: v, in: in, offsets: make([]int64, len(in.blockSizes)+1)}
	pos := in.blocksStart
	for i, sz := range in.blockSizes {
		f.offsets[i] = pos
		n := int64(sz & 0xFFFFFF)
		if n > v.blockSize || sz&^0x1FFFFFF != 0 {
			return nil, vfs.Corruptf("squashfs: data block of %d bytes", n)
		}
		pos += n
		if pos > v.size {
			return nil, vfs.Corruptf("squashfs: data block at %d beyond the volume", pos-n)
		}
	}
	f.offsets[len(in.blockSizes)] = pos
	if in.frag != noFragment {
		start, sz, err := v.fragment(in.frag)
		if err != nil {
			return nil, err
		}
		n := int64(sz & 0xFFFFFF)
		if n == 0 || n > v.blockSize || start < 0 || start > v.size-n {
			return nil, vfs.Corruptf("squashfs: fragment block of %d bytes at %d", n, start)
		}
		f.fragStart, f.fragSize = start, sz
	}
	return f, nil
}

// file reads a regular file block by block, keeping the last block it
// decompressed.
type file struct {
	v         *volume
	in        *inode
	offsets   []int64 // disk offset of each block, plus the end
	fragStart int64
	fragSize  uint32

	mu      sync.Mutex
	cacheID int64 // block index cached (-1 none, -2 fragment)
	cache   []byte
}

// block returns the decompressed content of block i (the fragment block
// for i == len(blockSizes)). Caller holds f.mu.
func (f *file) block(i int) ([]byte, error) {
	id := int64(i)
	var pos int64
	var sz uint32
	if i == len(f.in.blockSizes) {
		id, pos, sz = -2, f.fragStart, f.fragSize
	} else {
		pos, sz = f.offsets[i], f.in.blockSizes[i]
	}
	if f.cache != nil && f.cacheID == id {
		return f.cache, nil
	}
	n := int64(sz & 0xFFFFFF)
	if f.cache == nil {
		f.cache = make([]byte, f.v.blockSize)
	}
	buf := f.cache[:f.v.blockSize]
	f.cacheID = -1
	if n == 0 { // a sparse block
		clear(buf)
		f.cacheID = id
		f.cache = buf
		return buf, nil
	}
	raw := make([]byte, n)
	if err := vfs.ReadFullAt(f.v.dev, raw, pos); err != nil {
		return nil, fmt.Errorf("squashfs: data block at %d: %w", pos, err)
	}
	var m int
	if sz&(1<<24) != 0 {
		m = copy(buf, raw)
	} else {
		var err error
		if m, err = f.v.dec.decode(buf, raw); err != nil {
			return nil, fmt.Errorf("squashfs: data block at %d: %w", pos, err)
		}
	}
	f.cache, f.cacheID = buf[:m], id
	return f.cache, nil
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	size := f.in.size
	if off >= size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(len(p)) > size-off {
		p = p[:size-off]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	bs := f.v.blockSize
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i := int(pos / bs)
		inBlock := pos % bs
		var data []byte
		var err error
		if i >= len(f.in.blockSizes) {
			// The tail lives in a fragment block.
			data, err = f.block(len(f.in.blockSizes))
			if err == nil {
				start := f.in.fragOff + inBlock
				if start > int64(len(data)) {
					err = vfs.Corruptf("squashfs: fragment offset %d beyond %d bytes", start, len(data))
				} else {
					data = data[start:]
				}
			}
		} else if sz := f.in.blockSizes[i]; sz&(1<<24) != 0 && inBlock == 0 && int64(len(p)-n) >= bs {
			// An uncompressed whole block: read it straight into p.
			m := int(min(int64(sz&0xFFFFFF), bs))
			if err := vfs.ReadFullAt(f.v.dev, p[n:n+m], f.offsets[i]); err != nil {
				return n, err
			}
			if int64(m) < bs && pos+int64(m) < size {
				return n, vfs.Corruptf("squashfs: short uncompressed block %d", i)
			}
			n += m
			continue
		} else {
			data, err = f.block(i)
			if err == nil {
				if inBlock > int64(len(data)) {
					err = vfs.Corruptf("squashfs: block %d holds %d bytes", i, len(data))
				} else {
					data = data[inBlock:]
				}
			}
		}
		if err != nil {
			return n, err
		}
		end := min(int64(len(p)-n), bs-inBlock)
		if int64(len(data)) < end {
			if pos+int64(len(data)) < size {
				return n, vfs.Corruptf("squashfs: block %d is short", i)
			}
			end = int64(len(data))
		}
		if end == 0 {
			return n, vfs.Corruptf("squashfs: no data at %d", pos)
		}
		n += copy(p[n:], data[:end])
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}
