// Package iso9660 reads ISO 9660 file systems, read-only, with Rock Ridge
// (POSIX names, modes, symlinks, relocated deep directories) and Joliet
// (Unicode names), from an io.ReaderAt.
//
// It is our own code because go-diskfs's reader panics on corrupt images
// (slice bounds in its Joliet path-table parser) and allocates whatever a
// record claims (1.2 GB on a fuzzed image), found by fuzzing; inside the
// unikernel both are fatal. We read directories only, never path tables.
//
// Which tree: Rock Ridge on the primary descriptor if present (it carries
// symlinks and exact names), else Joliet, else plain ISO 9660 names, shown
// as Linux shows them (lower case, ";1" and a trailing dot removed) and
// matched without regard to case, as GRUB does.
package iso9660

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// ErrNotISO is returned when the volume has no ISO 9660 descriptor.
var ErrNotISO = errors.New("iso9660: no volume descriptor")

const (
	sector       = 2048
	firstVD      = 16
	maxVDs       = 64
	maxDirBytes  = 16 << 20 // a 10,000-entry Rock Ridge directory is ~2 MiB
	maxSUSPBytes = 64 << 10 // system use data of one record, CE areas included
	maxCE        = 32       // continuation areas followed per record
	flagDir      = 0x02
	flagMulti    = 0x80
)

type mode int

const (
	modePlain mode = iota
	modeJoliet
	modeRockRidge
)

// FS is an opened ISO 9660 volume.
type FS struct {
	*vfs.FS
	v *volume
}

// RockRidge reports whether names come from Rock Ridge entries.
func (f *FS) RockRidge() bool { return f.v.mode == modeRockRidge }

// Joliet reports whether names come from the Joliet tree.
func (f *FS) Joliet() bool { return f.v.mode == modeJoliet }

type volume struct {
	dev      io.ReaderAt
	size     int64
	block    int64 // logical block size
	mode     mode
	suspSkip int
	root     []byte // root directory record
}

// Probe reports whether r has an ISO 9660 volume descriptor at sector 16.
func Probe(r io.ReaderAt) bool {
	var b [6]byte
	return vfs.ReadFullAt(r, b[:], firstVD*sector) == nil && string(b[1:6]) == "CD001"
}

func le32(b []byte) int64 { return int64(binary.LittleEndian.Uint32(b)) }
func le16(b []byte) int64 { return int64(binary.LittleEndian.Uint16(b)) }

// Open reads the volume descriptors of the ISO 9660 volume in r (size
// bytes) and its root directory.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	v := &volume{dev: r, size: size}
	var pvd, joliet []byte
	b := make([]byte, sector)
	for i := int64(0); i < maxVDs; i++ {
		if err := vfs.ReadFullAt(r, b, (firstVD+i)*sector); err != nil {
			return nil, fmt.Errorf("iso9660: volume descriptor %d: %w", i, err)
		}
		if string(b[1:6]) != "CD001" {
			if i == 0 {
				return nil, ErrNotISO
			}
			return nil, vfs.Corruptf("iso9660: volume descriptor %d has no signature", i)
		}
		switch b[0] {
		case 1:
			if pvd == nil {
				pvd = bytes.Clone(b)
			}
		case 2:
			esc := b[88:91]
			if joliet == nil && esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E') {
				joliet = bytes.Clone(b)
			}
		}
		if b[0] == 255 {
			break
		}
	}
	if pvd == nil {
		return nil, vfs.Corruptf("iso9660: no primary volume descriptor")
	}
	v.block = le16(pvd[128:])
	if v.block < 512 || v.block > sector || v.block&(v.block-1) != 0 {
		return nil, vfs.Corruptf("iso9660: logical block size %d", v.block)
	}
	v.root = pvd[156 : 156+34]
	label := strings.TrimRight(string(pvd[40:72]), " \x00")
	if rr, skip, err := v.detectRockRidge(); err == nil && rr {
		v.mode, v.suspSkip = modeRockRidge, skip
	} else if joliet != nil && le16(joliet[128:]) == v.block {
		v.mode, v.root = modeJoliet, joliet[156:156+34]
	}
	if joliet != nil {
		// blkid prefers the Joliet label, which keeps case and length.
		if l := strings.TrimRight(ucs2(joliet[40:72]), " \x00"); l != "" {
			label = l
		}
	}
	opts := vfs.Options{Type: "iso9660", UUID: isoUUID(pvd), Label: label}
	if v.mode == modePlain {
		opts.Fold = strings.ToLower
	}
	fsys, err := vfs.New(v, opts)
	if err != nil {
		return nil, err
	}
	return &FS{FS: fsys, v: v}, nil
}

// isoUUID is what blkid calls the UUID of an ISO: the modification date,
// or the creation date when that is unset, as YYYY-MM-DD-HH-MM-SS-cc.
func isoUUID(pvd []byte) string {
	for _, d := range [][]byte{pvd[830:846], pvd[813:829]} {
		if strings.Trim(string(d), "0\x00 ") == "" {
			continue
		}
		s := string(d)
		for _, c := range s {
			if c < '0' || c > '9' {
				return ""
			}
		}
		return fmt.Sprintf("%s-%s-%s-%s-%s-%s-%s", s[0:4], s[4:6], s[6:8], s[8:10], s[10:12], s[12:14], s[14:16])
	}
	return ""
}

func ucs2(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.BigEndian.Uint16(b[i:]))
	}
	return string(utf16.Decode(u))
}

// record is a parsed directory record.
type record struct {
	name    []byte
	extent  int64 // first block of data (after any extended attribute record)
	size    int64
	flags   byte
	mtime   time.Time
	su      []byte // system use area
	recLen  int
	rawName string
}

func parseRecord(b []byte) (*record, error) {
	n := int(b[0])
	if n < 34 || n > len(b) {
		return nil, vfs.Corruptf("iso9660: directory record of %d bytes", n)
	}
	nameLen := int(b[32])
	if 33+nameLen > n {
		return nil, vfs.Corruptf("iso9660: name of %d bytes in a %d-byte record", nameLen, n)
	}
	r := &record{
		extent: le32(b[2:]) + int64(b[1]),
		size:   le32(b[10:]),
		flags:  b[25],
		name:   b[33 : 33+nameLen],
		recLen: n,
		mtime:  recordTime(b[18:25]),
	}
	su := 33 + nameLen
	if su%2 == 1 {
		su++
	}
	if su < n {
		r.su = b[su:n]
	}
	return r, nil
}

func recordTime(t []byte) time.Time {
	if t[1] == 0 {
		return time.Time{}
	}
	tz := time.FixedZone("", int(int8(t[6]))*15*60)
	return time.Date(1900+int(t[0]), time.Month(t[1]), int(t[2]), int(t[3]), int(t[4]), int(t[5]), 0, tz).UTC()
}

// detectRockRidge looks for the SUSP "SP" entry that starts the system
// use area of the root's "." record, and for Rock Ridge entries after it.
func (v *volume) detectRockRidge() (bool, int, error) {
	root, err := parseRecord(v.root)
	if err != nil {
		return false, 0, err
	}
	first := make([]byte, v.block)
	if err := v.readBlocks(first, root.extent); err != nil {
		return false, 0, err
	}
	if first[0] == 0 {
		return false, 0, nil
	}
	dot, err := parseRecord(first)
	if err != nil {
		return false, 0, err
	}
	su := dot.su
	if len(su) < 7 || string(su[0:2]) != "SP" || su[4] != 0xBE || su[5] != 0xEF {
		return false, 0, nil
	}
	skip := int(su[6])
	rr := false
	v.walkSUSP(su, func(sig string, e []byte) bool {
		switch sig {
		case "RR", "PX", "NM", "SL", "TF", "ER":
			rr = true
		}
		return !rr
	})
	return rr, skip, nil
}

func (v *volume) readBlocks(p []byte, block int64) error {
	if block < 0 || block > v.size/v.block {
		return vfs.Corruptf("iso9660: block %d beyond the volume", block)
	}
	return vfs.ReadFullAt(v.dev, p, block*v.block)
}

// walkSUSP calls fn for each SUSP entry of a system use area, following
// continuation ("CE") areas with a cap on their number and total size.
func (v *volume) walkSUSP(su []byte, fn func(sig string, e []byte) bool) error {
	total := len(su)
	for hops := 0; ; hops++ {
		var ce []byte
		for len(su) >= 4 {
			l := int(su[2])
			if l < 4 || l > len(su) {
				break
			}
			e := su[:l]
			su = su[l:]
			sig := string(e[0:2])
			if sig == "ST" {
				break
			}
			if sig == "CE" && l >= 28 {
				ce = e
				continue
			}
			if !fn(sig, e) {
				return nil
			}
		}
		if ce == nil {
			return nil
		}
		if hops >= maxCE {
			return vfs.Corruptf("iso9660: more than %d continuation areas", maxCE)
		}
		block, off, n := le32(ce[4:]), le32(ce[12:]), le32(ce[20:])
		total += int(n)
		if n == 0 || off >= v.block || n > v.block-off || total > maxSUSPBytes {
			return vfs.Corruptf("iso9660: continuation area of %d bytes at %d+%d", n, block, off)
		}
		buf := make([]byte, n)
		if block > v.size/v.block {
			return vfs.Corruptf("iso9660: continuation area at block %d beyond the volume", block)
		}
		if err := vfs.ReadFullAt(v.dev, buf, block*v.block+off); err != nil {
			return fmt.Errorf("iso9660: continuation area: %w", err)
		}
		su = buf
	}
}

// node is a file, directory or symlink.
type node struct {
	ext    []vfs.Extent // files
	dirAt  int64        // directories: where the records are
	size   int64
	mode   fs.FileMode
	mtime  time.Time
	target string // symlink
	id     uint64
}

func (n *node) ID() uint64         { return n.id }
func (n *node) Mode() fs.FileMode  { return n.mode }
func (n *node) Size() int64        { return n.size }
func (n *node) ModTime() time.Time { return n.mtime }

func (v *volume) Root() (vfs.Node, error) {
	r, err := parseRecord(v.root)
	if err != nil {
		return nil, err
	}
	if r.flags&flagDir == 0 {
		return nil, vfs.Corruptf("iso9660: root record is not a directory")
	}
	return v.dirNode(r.extent, r.size, fs.ModeDir|0o555, r.mtime)
}

func (v *volume) dirNode(extent, size int64, mode fs.FileMode, mtime time.Time) (*node, error) {
	if size > maxDirBytes {
		return nil, fmt.Errorf("iso9660: directory of %d bytes: %w", size, vfs.ErrTooLarge)
	}
	if extent < 0 || extent > v.size/v.block || size > v.size-extent*v.block {
		return nil, vfs.Corruptf("iso9660: directory of %d bytes at block %d beyond the volume", size, extent)
	}
	return &node{dirAt: extent * v.block, size: size, mode: mode, mtime: mtime, id: uint64(extent)}, nil
}

// rrInfo is what Rock Ridge says about a record.
type rrInfo struct {
	name      strings.Builder
	hasName   bool
	mode      int64
	hasMode   bool
	link      strings.Builder
	hasLink   bool
	linkCont  bool // the last SL component continues in the next one
	child     int64
	hasChild  bool
	relocated bool
	mtime     time.Time
}

func (v *volume) rockRidge(r *record) (*rrInfo, error) {
	info := &rrInfo{}
	su := r.su
	if v.suspSkip > 0 {
		if v.suspSkip > len(su) {
			return info, nil
		}
		su = su[v.suspSkip:]
	}
	var perr error
	err := v.walkSUSP(su, func(sig string, e []byte) bool {
		switch sig {
		case "NM":
			if len(e) >= 5 && e[4]&0x06 == 0 {
				info.name.Write(e[5:])
				info.hasName = true
			}
		case "PX":
			if len(e) >= 12 {
				info.mode, info.hasMode = le32(e[4:]), true
			}
		case "SL":
			if len(e) < 5 {
				break
			}
			if err := info.addSL(e[5:]); err != nil {
				perr = err
				return false
			}
		case "CL":
			if len(e) >= 12 {
				info.child, info.hasChild = le32(e[4:]), true
			}
		case "RE":
			info.relocated = true
		case "TF":
			info.mtime = tfModify(e)
		}
		return true
	})
	if perr != nil {
		return nil, perr
	}
	if info.link.Len() > vfs.MaxPath || info.name.Len() > 1024 {
		return nil, vfs.Corruptf("iso9660: Rock Ridge name or link too long")
	}
	return info, err
}

// addSL appends the components of one SL entry to the link target.
func (info *rrInfo) addSL(b []byte) error {
	for len(b) >= 2 {
		flags, n := b[0], int(b[1])
		if 2+n > len(b) {
			return vfs.Corruptf("iso9660: SL component of %d bytes overruns its entry", n)
		}
		comp := string(b[2 : 2+n])
		b = b[2+n:]
		switch {
		case flags&0x02 != 0:
			comp = "."
		case flags&0x04 != 0:
			comp = ".."
		case flags&0x08 != 0:
			comp = ""
		}
		if info.hasLink && !info.linkCont {
			if s := info.link.String(); s != "/" {
				info.link.WriteByte('/')
			}
		}
		if flags&0x08 != 0 && !info.hasLink {
			info.link.WriteByte('/')
		}
		info.link.WriteString(comp)
		info.hasLink = true
		info.linkCont = flags&0x01 != 0
		if info.link.Len() > vfs.MaxPath {
			return vfs.Corruptf("iso9660: symlink target too long")
		}
	}
	return nil
}

// tfModify takes the modification time from a TF entry.
func tfModify(e []byte) time.Time {
	if len(e) < 5 {
		return time.Time{}
	}
	flags := e[4]
	size := 7
	if flags&0x80 != 0 {
		size = 17
	}
	off := 5
	if flags&0x01 != 0 { // creation comes first
		off += size
	}
	if flags&0x02 == 0 || off+size > len(e) || size != 7 {
		return time.Time{}
	}
	return recordTime(e[off : off+7])
}

func (v *volume) ReadDir(dn vfs.Node) ([]vfs.Dirent, error) {
	d := dn.(*node)
	raw := make([]byte, d.size)
	if err := vfs.ReadFullAt(v.dev, raw, d.dirAt); err != nil {
		return nil, fmt.Errorf("iso9660: directory at block %d: %w", d.id, err)
	}
	var out []vfs.Dirent
	var multi *node // a multi-extent file being assembled
	var multiName string
	for off := 0; off < len(raw); {
		if raw[off] == 0 {
			// Records never straddle a block: skip to the next one.
			off = (off/int(v.block) + 1) * int(v.block)
			continue
		}
		blockEnd := (off/int(v.block) + 1) * int(v.block)
		r, err := parseRecord(raw[off:min(len(raw), blockEnd)])
		if err != nil {
			return nil, err
		}
		off += r.recLen
		if len(r.name) == 1 && r.name[0] <= 1 {
			continue // "." and ".."
		}
		name, n, hidden, err := v.entry(r)
		if err != nil {
			return nil, err
		}
		if multi != nil {
			// Continuation extents of a file bigger than 4 GiB.
			if name != multiName || r.flags&flagDir != 0 {
				return nil, vfs.Corruptf("iso9660: multi-extent file %q interrupted", multiName)
			}
			multi.ext = append(multi.ext, vfs.Extent{Logical: multi.size, Physical: r.extent * v.block, Length: r.size})
			multi.size += r.size
			if r.flags&flagMulti == 0 {
				out = append(out, vfs.Dirent{Name: multiName, Node: multi})
				multi = nil
			}
			continue
		}
		if hidden || name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			continue
		}
		if r.flags&flagMulti != 0 && r.flags&flagDir == 0 {
			multi, multiName = n, name
			continue
		}
		out = append(out, vfs.Dirent{Name: name, Type: n.mode & fs.ModeType, Node: n})
		if len(out) > vfs.MaxDirEntries {
			return nil, fmt.Errorf("iso9660: more than %d entries: %w", vfs.MaxDirEntries, vfs.ErrTooLarge)
		}
	}
	if multi != nil {
		return nil, vfs.Corruptf("iso9660: multi-extent file %q has no last extent", multiName)
	}
	return out, nil
}

// entry turns a record into a name and node; hidden is set for entries
// Rock Ridge relocated elsewhere.
func (v *volume) entry(r *record) (string, *node, bool, error) {
	dir := r.flags&flagDir != 0
	mode := fs.FileMode(0o444)
	if dir {
		mode = fs.ModeDir | 0o555
	}
	mtime := r.mtime
	var name string
	var target string
	child := int64(-1)
	switch v.mode {
	case modeRockRidge:
		info, err := v.rockRidge(r)
		if err != nil {
			return "", nil, false, err
		}
		if info.relocated {
			return "", nil, true, nil
		}
		if info.hasName {
			name = info.name.String()
		} else {
			name = plainName(r.name, dir)
		}
		if info.hasMode {
			mode = unixMode(info.mode)
		}
		if info.hasChild {
			child, dir = info.child, true
			mode = mode&^fs.ModeType | fs.ModeDir
		}
		if mode&fs.ModeSymlink != 0 {
			if !info.hasLink {
				return "", nil, false, vfs.Corruptf("iso9660: symlink %q without a target", name)
			}
			target = info.link.String()
		}
		if !info.mtime.IsZero() {
			mtime = info.mtime
		}
	case modeJoliet:
		name = strings.TrimSuffix(stripVersion(ucs2(r.name)), ".")
	default:
		name = plainName(r.name, dir)
	}
	if mode.IsDir() != dir {
		return "", nil, false, vfs.Corruptf("iso9660: %q: Rock Ridge mode %v disagrees with the directory flag", name, mode)
	}
	if dir {
		extent, size := r.extent, r.size
		if child >= 0 {
			// A relocated directory: its size is in its own "." record.
			var err error
			if extent, size, err = v.dotRecord(child); err != nil {
				return "", nil, false, err
			}
		}
		n, err := v.dirNode(extent, size, mode|fs.ModeDir, mtime)
		return name, n, false, err
	}
	n := &node{size: r.size, mode: mode, mtime: mtime, target: target, id: 1<<62 | uint64(r.extent)}
	if r.size > 0 && mode.IsRegular() {
		n.ext = []vfs.Extent{{Physical: r.extent * v.block, Length: r.size}}
	}
	if target != "" {
		n.size = int64(len(target))
	}
	return name, n, false, nil
}

func (v *volume) dotRecord(block int64) (int64, int64, error) {
	b := make([]byte, v.block)
	if err := v.readBlocks(b, block); err != nil {
		return 0, 0, err
	}
	r, err := parseRecord(b)
	if err != nil {
		return 0, 0, err
	}
	if r.flags&flagDir == 0 || r.extent != block {
		return 0, 0, vfs.Corruptf("iso9660: relocated directory at block %d has no \".\" record", block)
	}
	return r.extent, r.size, nil
}

func unixMode(m int64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	}
	return mode
}

func stripVersion(s string) string {
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		return s[:i]
	}
	return s
}

// plainName shows an ISO 9660 name as Linux does by default: version and
// trailing dot removed, lower case.
func plainName(b []byte, dir bool) string {
	s := string(b)
	if !dir {
		s = strings.TrimSuffix(stripVersion(s), ".")
	}
	return strings.ToLower(s)
}

func (v *volume) Load(uint64) (vfs.Node, error) { return nil, errors.ErrUnsupported }

func (v *volume) ReadLink(ln vfs.Node) (string, error) { return ln.(*node).target, nil }

func (v *volume) Open(fn vfs.Node) (io.ReaderAt, error) {
	n := fn.(*node)
	return vfs.NewExtentReader(v.dev, v.size, n.size, n.ext)
}
