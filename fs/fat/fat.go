// Package fat reads FAT12, FAT16 and FAT32 file systems, read-only, with
// long (VFAT) names, from an io.ReaderAt.
//
// It is our own code because go-diskfs's FAT reader panics on corrupt
// images (an index out of range in File.Read, found by fuzzing), and
// inside the unikernel a panic is fatal. Names are looked up without
// regard to case, as GRUB and Windows do, and a file can also be found by
// its 8.3 alias.
//
// The FAT is read in small cached windows rather than whole (a FAT32
// table can be tens of MiB); cluster chains are checked for range, early
// ends and cycles, and files are read as runs of contiguous clusters.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// ErrNotFAT is returned when the volume has no FAT boot sector.
var ErrNotFAT = errors.New("fat: no FAT boot sector")

const (
	dirEntrySize = 32
	// maxDirBytes caps a directory: FAT allows 65536 entries (2 MiB).
	maxDirBytes = 2 << 20
	// maxRuns caps the runs of one cluster chain (about 8 MiB of them):
	// a file fragmented into more pieces is refused, not mapped.
	maxRuns    = 1 << 18
	fatWindow  = 64 << 10
	fatWindows = 32
	attrDir    = 0x10
	attrVolume = 0x08
	attrLFN    = 0x0F
)

// FS is an opened FAT volume: an io/fs file system plus its facts.
type FS struct {
	*vfs.FS
	v *volume
}

// Bits is 12, 16 or 32.
func (f *FS) Bits() int { return f.v.bits }

type volume struct {
	dev         io.ReaderAt
	size        int64
	bits        int
	sectorSize  int64
	clusterSize int64
	clusters    uint32 // data clusters, numbered 2..clusters+1
	fatOffset   int64
	fatBytes    int64
	dataOffset  int64
	rootOffset  int64 // FAT12/16 fixed root directory
	rootBytes   int64
	rootCluster uint32 // FAT32
	uuid, label string

	mu  sync.Mutex
	win map[int64][]byte // FAT windows by index
}

func le16(b []byte) uint32 { return uint32(binary.LittleEndian.Uint16(b)) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func pow2(v int64) bool { return v > 0 && v&(v-1) == 0 }

// Probe reports whether r starts with a plausible FAT boot sector.
func Probe(r io.ReaderAt) bool {
	b := make([]byte, 512)
	if vfs.ReadFullAt(r, b, 0) != nil {
		return false
	}
	return plausible(b)
}

func plausible(b []byte) bool {
	if b[0] != 0xEB && b[0] != 0xE9 {
		return false
	}
	bps := int64(le16(b[11:]))
	return bps >= 512 && bps <= 4096 && pow2(bps) && pow2(int64(b[13])) &&
		le16(b[14:]) != 0 && b[16] != 0 && (b[21] == 0xF0 || b[21] >= 0xF8)
}

// Open reads the boot sector of the FAT volume in r (size bytes) and its
// root directory.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	v, err := openVolume(r, size)
	if err != nil {
		return nil, err
	}
	fsys, err := vfs.New(v, vfs.Options{Type: "vfat", UUID: v.uuid, Label: v.label, Fold: strings.ToUpper})
	if err != nil {
		return nil, err
	}
	return &FS{FS: fsys, v: v}, nil
}

func openVolume(r io.ReaderAt, size int64) (*volume, error) {
	b := make([]byte, 512)
	if err := vfs.ReadFullAt(r, b, 0); err != nil {
		return nil, fmt.Errorf("fat: boot sector: %w", err)
	}
	if !plausible(b) {
		return nil, ErrNotFAT
	}
	v := &volume{dev: r, size: size, win: map[int64][]byte{}}
	v.sectorSize = int64(le16(b[11:]))
	v.clusterSize = v.sectorSize * int64(b[13])
	reserved := int64(le16(b[14:]))
	nfats := int64(b[16])
	rootEntries := int64(le16(b[17:]))
	total := int64(le16(b[19:]))
	if total == 0 {
		total = int64(le32(b[32:]))
	}
	fatSectors := int64(le16(b[22:]))
	fat32 := fatSectors == 0
	if fat32 {
		fatSectors = int64(le32(b[36:]))
	}
	rootSectors := (rootEntries*dirEntrySize + v.sectorSize - 1) / v.sectorSize
	meta := reserved + nfats*fatSectors + rootSectors
	if fatSectors == 0 || total <= meta {
		return nil, vfs.Corruptf("fat: %d sectors, %d of them metadata", total, meta)
	}
	count := (total - meta) / int64(b[13])
	switch {
	case count < 4085:
		v.bits = 12
	case count < 65525:
		v.bits = 16
	default:
		v.bits = 32
	}
	if count > 0x0FFFFFF5 || (v.bits == 32) != fat32 {
		return nil, vfs.Corruptf("fat: %d clusters with a FAT%d boot sector", count, map[bool]int{true: 32, false: 16}[fat32])
	}
	v.clusters = uint32(count)
	v.fatOffset = reserved * v.sectorSize
	v.fatBytes = fatSectors * v.sectorSize
	if (int64(v.clusters)+2)*int64(v.bits)/8 > v.fatBytes {
		return nil, vfs.Corruptf("fat: a %d-byte FAT cannot map %d clusters", v.fatBytes, v.clusters)
	}
	v.rootOffset = (reserved + nfats*fatSectors) * v.sectorSize
	v.rootBytes = rootEntries * dirEntrySize
	v.dataOffset = meta * v.sectorSize
	serial := b[39:43]
	labelAt := 43
	sigAt := 38
	if fat32 {
		v.rootCluster = le32(b[44:])
		if !v.valid(v.rootCluster) {
			return nil, vfs.Corruptf("fat: root cluster %d", v.rootCluster)
		}
		serial, labelAt, sigAt = b[67:71], 71, 66
	}
	if b[sigAt] == 0x29 || b[sigAt] == 0x28 {
		v.uuid = fmt.Sprintf("%04X-%04X", le16(serial[2:]), le16(serial))
	}
	if b[sigAt] == 0x29 {
		if l := strings.TrimRight(string(b[labelAt:labelAt+11]), " "); l != "NO NAME" {
			v.label = l
		}
	}
	// Read the root directory now: a volume whose root cannot be listed
	// is not usable, and its label entry is the label blkid reports.
	raw, err := v.dirBytes(v.root())
	if err != nil {
		return nil, err
	}
	if l, ok := volumeLabel(raw); ok {
		v.label = l
	}
	return v, nil
}

func (v *volume) valid(c uint32) bool { return c >= 2 && c-2 < v.clusters }

func (v *volume) clusterOffset(c uint32) int64 {
	return v.dataOffset + int64(c-2)*v.clusterSize
}

// fatByte reads one byte of the first FAT through the window cache.
func (v *volume) fatByte(off int64) (byte, error) {
	if off < 0 || off >= v.fatBytes {
		return 0, vfs.Corruptf("fat: FAT offset %d beyond %d", off, v.fatBytes)
	}
	idx := off / fatWindow
	w, ok := v.win[idx]
	if !ok {
		n := min(fatWindow, v.fatBytes-idx*fatWindow)
		w = make([]byte, n)
		if err := vfs.ReadFullAt(v.dev, w, v.fatOffset+idx*fatWindow); err != nil {
			return 0, fmt.Errorf("fat: reading the FAT: %w", err)
		}
		if len(v.win) >= fatWindows {
			clear(v.win)
		}
		v.win[idx] = w
	}
	return w[off-idx*fatWindow], nil
}

// next returns the FAT entry of cluster c, normalised: 0 free, 1 end of
// chain, 0xFFFFFFFF bad cluster, else the next cluster.
func (v *volume) next(c uint32) (uint32, error) {
	var raw, eoc, bad uint32
	switch v.bits {
	case 12:
		off := int64(c) + int64(c)/2
		lo, err := v.fatByte(off)
		if err != nil {
			return 0, err
		}
		hi, err := v.fatByte(off + 1)
		if err != nil {
			return 0, err
		}
		raw = uint32(lo) | uint32(hi)<<8
		if c&1 != 0 {
			raw >>= 4
		}
		raw &= 0xFFF
		eoc, bad = 0xFF8, 0xFF7
	default:
		n := int64(v.bits / 8)
		for i := n - 1; i >= 0; i-- {
			b, err := v.fatByte(int64(c)*n + i)
			if err != nil {
				return 0, err
			}
			raw = raw<<8 | uint32(b)
		}
		if v.bits == 16 {
			eoc, bad = 0xFFF8, 0xFFF7
		} else {
			raw &= 0x0FFFFFFF
			eoc, bad = 0x0FFFFFF8, 0x0FFFFFF7
		}
	}
	switch {
	case raw >= eoc:
		return 1, nil
	case raw == bad:
		return 0xFFFFFFFF, nil
	}
	return raw, nil
}

// chain maps the cluster chain from first as extents, following at most
// limit bytes of it. It fails on free or bad clusters, out-of-range
// links, a chain shorter than need bytes, and on cycles (two runs that
// overlap on disk).
func (v *volume) chain(first uint32, need, limit int64) ([]vfs.Extent, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var ext []vfs.Extent
	var have int64
	for c := first; have < limit; {
		if !v.valid(c) {
			return nil, vfs.Corruptf("fat: cluster %d outside 2..%d", c, v.clusters+1)
		}
		off := v.clusterOffset(c)
		if k := len(ext); k > 0 && ext[k-1].Physical+ext[k-1].Length == off {
			ext[k-1].Length += v.clusterSize
		} else {
			if len(ext) >= maxRuns {
				return nil, fmt.Errorf("fat: cluster chain from %d in more than %d pieces: %w", first, maxRuns, vfs.ErrTooLarge)
			}
			ext = append(ext, vfs.Extent{Logical: have, Physical: off, Length: v.clusterSize})
		}
		have += v.clusterSize
		if have > int64(v.clusters)*v.clusterSize {
			return nil, vfs.Corruptf("fat: cluster chain from %d loops", first)
		}
		n, err := v.next(c)
		if err != nil {
			return nil, err
		}
		if n == 1 {
			break
		}
		if n == 0 || n == 0xFFFFFFFF {
			return nil, vfs.Corruptf("fat: cluster chain from %d runs into a free or bad cluster after %d", first, c)
		}
		c = n
	}
	if have < need {
		return nil, vfs.Corruptf("fat: cluster chain from %d holds %d bytes, need %d", first, have, need)
	}
	// A cycle shows up as two runs covering the same clusters.
	byPhys := append([]vfs.Extent(nil), ext...)
	sort.Slice(byPhys, func(i, j int) bool { return byPhys[i].Physical < byPhys[j].Physical })
	for i := 1; i < len(byPhys); i++ {
		if byPhys[i-1].Physical+byPhys[i-1].Length > byPhys[i].Physical {
			return nil, vfs.Corruptf("fat: cluster chain from %d loops", first)
		}
	}
	return ext, nil
}

// node is a file or directory as its directory entry describes it.
type node struct {
	id      uint64
	cluster uint32
	size    int64
	dir     bool
	mtime   time.Time
}

func (n *node) ID() uint64 { return n.id }
func (n *node) Size() int64 {
	return n.size
}
func (n *node) ModTime() time.Time { return n.mtime }
func (n *node) Mode() fs.FileMode {
	if n.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

func (v *volume) root() *node {
	if v.bits == 32 {
		return &node{dir: true, cluster: v.rootCluster, id: uint64(v.rootCluster)}
	}
	return &node{dir: true}
}

func (v *volume) Root() (vfs.Node, error) { return v.root(), nil }

func (v *volume) dirBytes(n *node) ([]byte, error) {
	if n.cluster == 0 {
		if v.bits == 32 {
			return nil, vfs.Corruptf("fat: directory without a cluster")
		}
		b := make([]byte, v.rootBytes)
		if err := vfs.ReadFullAt(v.dev, b, v.rootOffset); err != nil {
			return nil, fmt.Errorf("fat: root directory: %w", err)
		}
		return b, nil
	}
	ext, err := v.chain(n.cluster, 0, maxDirBytes)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, e := range ext {
		total += e.Length
	}
	total = min(total, maxDirBytes)
	r, err := vfs.NewExtentReader(v.dev, v.size, total, ext)
	if err != nil {
		return nil, err
	}
	b := make([]byte, total)
	if err := vfs.ReadFullAt(r, b, 0); err != nil {
		return nil, fmt.Errorf("fat: directory at cluster %d: %w", n.cluster, err)
	}
	return b, nil
}

func volumeLabel(raw []byte) (string, bool) {
	for off := 0; off+dirEntrySize <= len(raw); off += dirEntrySize {
		e := raw[off : off+dirEntrySize]
		if e[0] == 0 {
			break
		}
		if e[0] != 0xE5 && e[11]&0x3F != attrLFN && e[11]&attrVolume != 0 {
			return strings.TrimRight(string(e[:11]), " "), true
		}
	}
	return "", false
}

func (v *volume) ReadDir(dn vfs.Node) ([]vfs.Dirent, error) {
	d := dn.(*node)
	raw, err := v.dirBytes(d)
	if err != nil {
		return nil, err
	}
	base := v.rootOffset
	if d.cluster != 0 {
		base = v.clusterOffset(d.cluster)
	}
	var out []vfs.Dirent
	var lfn lfnState
	for off := 0; off+dirEntrySize <= len(raw); off += dirEntrySize {
		e := raw[off : off+dirEntrySize]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xE5 {
			lfn.reset()
			continue
		}
		if e[11]&0x3F == attrLFN {
			lfn.add(e)
			continue
		}
		if e[11]&attrVolume != 0 {
			lfn.reset()
			continue
		}
		short := shortName(e)
		name := lfn.name(e)
		lfn.reset()
		if short == "." || short == ".." {
			continue
		}
		alias := short
		if name == "" {
			name, alias = short, ""
		}
		if name == "" || strings.ContainsAny(name, "/\x00") {
			continue
		}
		n := &node{
			id:      1<<62 | uint64(base) + uint64(off),
			cluster: le16(e[26:]) | le16(e[20:])<<16,
			size:    int64(le32(e[28:])),
			dir:     e[11]&attrDir != 0,
			mtime:   dosTime(le16(e[24:]), le16(e[22:])),
		}
		if v.bits != 32 {
			n.cluster &= 0xFFFF
		}
		typ := fs.FileMode(0)
		if n.dir {
			typ = fs.ModeDir
			n.size = 0
			if n.cluster == 0 {
				return nil, vfs.Corruptf("fat: directory %q has no cluster", name)
			}
			n.id = uint64(n.cluster)
		} else if n.size > 0 && n.cluster == 0 {
			return nil, vfs.Corruptf("fat: file %q of %d bytes has no cluster", name, n.size)
		}
		out = append(out, vfs.Dirent{Name: name, Alias: alias, Type: typ, Node: n})
	}
	return out, nil
}

func (v *volume) Load(uint64) (vfs.Node, error) { return nil, errors.ErrUnsupported }

func (v *volume) ReadLink(vfs.Node) (string, error) { return "", fs.ErrInvalid }

func (v *volume) Open(fn vfs.Node) (io.ReaderAt, error) {
	n := fn.(*node)
	if n.size == 0 {
		return vfs.NewExtentReader(v.dev, v.size, 0, nil)
	}
	need := n.size
	limit := (need + v.clusterSize - 1) / v.clusterSize * v.clusterSize
	ext, err := v.chain(n.cluster, need, limit)
	if err != nil {
		return nil, err
	}
	// The last cluster's tail past the end of the file is never read,
	// so a volume cut short just after the file still serves it.
	last := &ext[len(ext)-1]
	last.Length -= last.Logical + last.Length - n.size
	return vfs.NewExtentReader(v.dev, v.size, n.size, ext)
}

// shortName decodes an 8.3 name, honouring the lower-case flags that
// Windows NT and mtools set instead of writing a long name.
func shortName(e []byte) string {
	raw := append([]byte(nil), e[:11]...)
	if raw[0] == 0x05 {
		raw[0] = 0xE5
	}
	conv := func(b []byte, lower bool) string {
		var sb strings.Builder
		for _, c := range b {
			r := rune(c) // bytes >= 0x80 are OEM code page; keep them as Latin-1
			if lower && r >= 'A' && r <= 'Z' {
				r += 'a' - 'A'
			}
			sb.WriteRune(r)
		}
		return strings.TrimRight(sb.String(), " ")
	}
	base := conv(raw[:8], e[12]&0x08 != 0)
	ext := conv(raw[8:11], e[12]&0x10 != 0)
	if ext == "" {
		return base
	}
	return base + "." + ext
}

func shortChecksum(e []byte) byte {
	var s byte
	for _, c := range e[:11] {
		s = (s>>1 | s<<7) + c
	}
	return s
}

// lfnState collects the long-name entries that precede a short entry;
// they come last part first, numbered down to 1, all with the checksum of
// the short name they belong to.
type lfnState struct {
	parts [20][13]uint16
	count int  // parts announced by the first entry
	next  int  // the part number expected next (0 = complete)
	sum   byte // checksum they carry
	ok    bool
}

func (l *lfnState) reset() { l.ok, l.count = false, 0 }

func (l *lfnState) add(e []byte) {
	seq := int(e[0] & 0x1F)
	if e[0]&0x40 != 0 {
		if seq < 1 || seq > 20 {
			l.reset()
			return
		}
		l.ok, l.count, l.next, l.sum = true, seq, seq, e[13]
	}
	if !l.ok || seq != l.next || e[13] != l.sum {
		l.reset()
		return
	}
	p := &l.parts[seq-1]
	for i, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
		p[i] = uint16(le16(e[o:]))
	}
	l.next--
}

// name returns the long name if a complete set precedes short entry e.
func (l *lfnState) name(e []byte) string {
	if !l.ok || l.next != 0 || l.sum != shortChecksum(e) {
		return ""
	}
	var u []uint16
	for i := range l.count {
		for _, c := range l.parts[i] {
			if c == 0 {
				return string(utf16.Decode(u))
			}
			u = append(u, c)
		}
	}
	return string(utf16.Decode(u))
}

func dosTime(date, tm uint32) time.Time {
	if date == 0 {
		return time.Time{}
	}
	return time.Date(int(date>>9)+1980, time.Month(date>>5&15), int(date&31),
		int(tm>>11), int(tm>>5&63), int(tm&31)*2, 0, time.UTC)
}
