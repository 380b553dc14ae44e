// Package ext4 reads ext2, ext3 and ext4 file systems, read-only, from an
// io.ReaderAt.
//
// It is our own code rather than go-diskfs's ext4 because that one refuses
// ext2, ext3 and ext4 made without metadata_csum, panics on inline_data
// directories and cannot read block-mapped files (see the design notes,
// anchors.md §4), and a bootloader must read whatever mke2fs made.
//
// Covered: 32- and 64-bit group descriptors, meta_bg, flex_bg, extent trees
// of any depth, block maps up to triple indirect, htree directories (read
// by a linear scan of their leaves, which the on-disk format permits),
// inline_data files and directories, fast and slow symlinks, sparse files,
// huge_file, 1 KiB to 64 KiB blocks. Checksums are verified where the
// volume has them (crc32c with metadata_csum: superblock, group
// descriptors, inodes, extent blocks, directory blocks; crc16 with
// gdt_csum). The journal is ignored; a volume that needs recovery opens
// with a warning, since what it holds may be slightly stale. Unknown
// INCOMPAT features are refused by name; RO_COMPAT features are
// tolerated, as a read-only reader may.
//
// Every offset, size and count read from disk is checked before use,
// allocations are capped, and trees are walked with depth and ordering
// checks so that loops end in an error.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// ErrNotExt is returned when the volume has no ext2/3/4 superblock.
var ErrNotExt = errors.New("ext4: no ext2/3/4 superblock")

const (
	sbOffset = 1024
	sbSize   = 1024
	magic    = 0xEF53
	rootIno  = 2
)

// Feature bits (Linux fs/ext4/ext4.h).
const (
	compatHasJournal = 0x4

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBG      = 0x200
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargeDir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000

	roCompatSparseSuper  = 0x1
	roCompatLargeFile    = 0x2
	roCompatBtreeDir     = 0x4
	roCompatGdtCsum      = 0x10
	roCompatMetadataCsum = 0x400
)

// incompatSupported are the INCOMPAT features this reader understands.
// recover (needs_recovery) is accepted with a warning; mmp only matters
// to writers; encrypt and casefold only matter per inode/directory.
const incompatSupported = incompatFiletype | incompatRecover | incompatMetaBG |
	incompatExtents | incompat64bit | incompatMMP | incompatFlexBG |
	incompatEAInode | incompatCsumSeed | incompatLargeDir |
	incompatInlineData | incompatEncrypt | incompatCasefold

var incompatNames = []struct {
	bit  uint32
	name string
}{
	{incompatCompression, "compression"}, {incompatFiletype, "filetype"},
	{incompatRecover, "needs_recovery"}, {incompatJournalDev, "journal_dev"},
	{incompatMetaBG, "meta_bg"}, {incompatExtents, "extent"},
	{incompat64bit, "64bit"}, {incompatMMP, "mmp"}, {incompatFlexBG, "flex_bg"},
	{incompatEAInode, "ea_inode"}, {incompatDirData, "dirdata"},
	{incompatCsumSeed, "metadata_csum_seed"}, {incompatLargeDir, "large_dir"},
	{incompatInlineData, "inline_data"}, {incompatEncrypt, "encrypt"},
	{incompatCasefold, "casefold"},
}

func featureNames(bits uint32) string {
	var names []string
	for _, f := range incompatNames {
		if bits&f.bit != 0 {
			names = append(names, f.name)
			bits &^= f.bit
		}
	}
	for b := uint32(1); b != 0; b <<= 1 {
		if bits&b != 0 {
			names = append(names, fmt.Sprintf("unknown(%#x)", b))
		}
	}
	return strings.Join(names, ",")
}

// volume is the driver behind FS: superblock facts and caches.
type volume struct {
	dev  io.ReaderAt
	size int64 // bytes of the volume we may read

	blockSize      int64
	blocksCount    uint64
	firstDataBlock uint64
	blocksPerGroup uint64
	inodesPerGroup uint64
	inodesCount    uint64
	inodeSize      int64
	descSize       int64
	groups         uint64
	firstMetaBG    uint64
	compat         uint32
	incompat       uint32
	roCompat       uint32
	fsUUID         [16]byte
	label          string
	csumSeed       uint32 // crc32c seed for metadata_csum
	metadataCsum   bool
	gdtCsum        bool
	warnings       []string

	mu     sync.Mutex
	itable map[uint64]uint64 // group -> inode table block (validated)
}

func le16(b []byte) uint64 { return uint64(binary.LittleEndian.Uint16(b)) }
func le32(b []byte) uint64 { return uint64(binary.LittleEndian.Uint32(b)) }

// Probe reports whether r looks like ext2/3/4 (superblock magic only).
func Probe(r io.ReaderAt) bool {
	var b [2]byte
	return vfs.ReadFullAt(r, b[:], sbOffset+0x38) == nil && binary.LittleEndian.Uint16(b[:]) == magic
}

// FS is an opened ext2/3/4 volume: an io/fs file system (see package vfs
// for the path rules) plus what the superblock says.
type FS struct {
	*vfs.FS
	v *volume
}

// Open reads and checks the superblock of the volume in r (size bytes)
// and its root directory.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	v, err := openVolume(r, size)
	if err != nil {
		return nil, err
	}
	fsys, err := vfs.New(v, vfs.Options{Type: v.typ(), UUID: v.uuid(), Label: v.label, Warnings: v.warnings})
	if err != nil {
		return nil, err
	}
	return &FS{FS: fsys, v: v}, nil
}

// BlockSize is the file system block size in bytes.
func (f *FS) BlockSize() int64 { return f.v.blockSize }

func openVolume(r io.ReaderAt, size int64) (*volume, error) {
	sb := make([]byte, sbSize)
	if size < sbOffset+sbSize {
		return nil, ErrNotExt
	}
	if err := vfs.ReadFullAt(r, sb, sbOffset); err != nil {
		return nil, fmt.Errorf("ext4: superblock: %w", err)
	}
	if le16(sb[0x38:]) != magic {
		return nil, ErrNotExt
	}
	f := &volume{dev: r, size: size, itable: map[uint64]uint64{}}
	if err := f.parseSuper(sb); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *volume) parseSuper(sb []byte) error {
	f.compat = uint32(le32(sb[0x5C:]))
	f.incompat = uint32(le32(sb[0x60:]))
	f.roCompat = uint32(le32(sb[0x64:]))
	if unk := f.incompat &^ incompatSupported; unk != 0 {
		return fmt.Errorf("ext4: unsupported incompatible features %s: %w", featureNames(unk), errUnsupported)
	}
	f.metadataCsum = f.roCompat&roCompatMetadataCsum != 0
	f.gdtCsum = !f.metadataCsum && f.roCompat&roCompatGdtCsum != 0
	if f.metadataCsum {
		if sb[0x175] != 1 {
			return vfs.Corruptf("ext4: unknown checksum type %d", sb[0x175])
		}
		if want, got := uint32(le32(sb[0x3FC:])), crc32c(^uint32(0), sb[:0x3FC]); want != got {
			return fmt.Errorf("ext4: superblock checksum %#08x, computed %#08x: %w: %w", want, got, vfs.ErrCorrupt, vfs.ErrChecksum)
		}
	}
	logBlock := le32(sb[0x18:])
	if logBlock > 6 {
		return vfs.Corruptf("ext4: block size 1024<<%d", logBlock)
	}
	f.blockSize = 1024 << logBlock
	f.blocksCount = le32(sb[0x4:])
	if f.incompat&incompat64bit != 0 {
		f.blocksCount |= le32(sb[0x150:]) << 32
	}
	f.firstDataBlock = le32(sb[0x14:])
	f.blocksPerGroup = le32(sb[0x20:])
	f.inodesPerGroup = le32(sb[0x28:])
	f.inodesCount = le32(sb[0x0:])
	if f.blocksCount == 0 || f.firstDataBlock >= f.blocksCount {
		return vfs.Corruptf("ext4: %d blocks, first data block %d", f.blocksCount, f.firstDataBlock)
	}
	if f.blocksCount > uint64(f.size/f.blockSize) {
		// A volume bigger than its device is truncated or lying; reads
		// past the device fail on their own, so only refuse absurd sizes.
		if f.blocksCount > 1<<48 {
			return vfs.Corruptf("ext4: %d blocks", f.blocksCount)
		}
	}
	if f.blocksPerGroup == 0 || f.blocksPerGroup > uint64(f.blockSize)*8*16 {
		return vfs.Corruptf("ext4: %d blocks per group", f.blocksPerGroup)
	}
	if f.inodesPerGroup == 0 || f.inodesPerGroup > uint64(f.blockSize)*8 {
		return vfs.Corruptf("ext4: %d inodes per group", f.inodesPerGroup)
	}
	f.groups = (f.blocksCount - f.firstDataBlock + f.blocksPerGroup - 1) / f.blocksPerGroup
	if f.inodesCount == 0 || f.inodesCount > f.groups*f.inodesPerGroup {
		return vfs.Corruptf("ext4: %d inodes in %d groups of %d", f.inodesCount, f.groups, f.inodesPerGroup)
	}
	f.inodeSize = 128
	if le32(sb[0x4C:]) >= 1 { // dynamic revision: sizes are in the superblock
		f.inodeSize = int64(le16(sb[0x58:]))
		if f.inodeSize < 128 || f.inodeSize > f.blockSize || f.inodeSize&(f.inodeSize-1) != 0 {
			return vfs.Corruptf("ext4: inode size %d", f.inodeSize)
		}
	}
	f.descSize = 32
	if f.incompat&incompat64bit != 0 {
		f.descSize = int64(le16(sb[0xFE:]))
		if f.descSize < 64 || f.descSize > 1024 || f.descSize&(f.descSize-1) != 0 {
			return vfs.Corruptf("ext4: group descriptor size %d", f.descSize)
		}
	}
	if f.incompat&incompatMetaBG != 0 {
		f.firstMetaBG = le32(sb[0x104:])
	}
	copy(f.fsUUID[:], sb[0x68:0x78])
	f.label = cstring(sb[0x78:0x88])
	if f.metadataCsum {
		if f.incompat&incompatCsumSeed != 0 {
			f.csumSeed = uint32(le32(sb[0x270:]))
		} else {
			f.csumSeed = crc32c(^uint32(0), f.fsUUID[:])
		}
	}
	if f.incompat&incompatRecover != 0 {
		f.warnings = append(f.warnings, "ext4: the journal needs recovery (unclean shutdown); reading without replaying it, recent changes may be missing")
	}
	return nil
}

func cstring(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// typ is "ext4", "ext3" or "ext2", decided the way blkid does: ext4 if a
// feature ext3 lacks is on, else ext3 if there is a journal.
func (f *volume) typ() string {
	const ext3Incompat = incompatFiletype | incompatRecover | incompatMetaBG
	const ext3RoCompat = roCompatSparseSuper | roCompatLargeFile | roCompatBtreeDir
	switch {
	case f.incompat&^ext3Incompat != 0 || f.roCompat&^ext3RoCompat != 0:
		return "ext4"
	case f.compat&compatHasJournal != 0:
		return "ext3"
	}
	return "ext2"
}

// uuid is the volume UUID as blkid prints it.
func (f *volume) uuid() string {
	u := f.fsUUID
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// hasSuper reports whether group g holds a superblock backup (and so its
// meta_bg descriptor block comes after it).
func (f *volume) hasSuper(g uint64) bool {
	if g == 0 || f.roCompat&roCompatSparseSuper == 0 {
		return true
	}
	if g == 1 {
		return true
	}
	for _, p := range []uint64{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return true
		}
	}
	return false
}

// descLocation returns the byte offset of group g's descriptor.
func (f *volume) descLocation(g uint64) (int64, error) {
	perBlock := uint64(f.blockSize / f.descSize)
	var block uint64
	if f.incompat&incompatMetaBG != 0 && g/perBlock >= f.firstMetaBG {
		// meta_bg: each run of perBlock groups keeps its descriptors in the
		// first block of its first group (after a superblock backup).
		first := g / perBlock * perBlock
		block = f.firstDataBlock + first*f.blocksPerGroup
		if f.hasSuper(first) {
			block++
		}
	} else {
		block = f.firstDataBlock + 1 + g/perBlock
	}
	if block >= f.blocksCount {
		return 0, vfs.Corruptf("ext4: descriptor of group %d in block %d beyond %d blocks", g, block, f.blocksCount)
	}
	return int64(block)*f.blockSize + int64(g%perBlock)*f.descSize, nil
}

// inodeTable returns the first block of group g's inode table, reading
// and checking its descriptor once.
func (f *volume) inodeTable(g uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.itable[g]; ok {
		return b, nil
	}
	off, err := f.descLocation(g)
	if err != nil {
		return 0, err
	}
	d := make([]byte, f.descSize)
	if err := vfs.ReadFullAt(f.dev, d, off); err != nil {
		return 0, fmt.Errorf("ext4: descriptor of group %d: %w", g, err)
	}
	if err := f.checkDesc(g, d); err != nil {
		return 0, err
	}
	table := le32(d[0x8:])
	if f.descSize >= 64 {
		table |= le32(d[0x28:]) << 32
	}
	tableBlocks := (f.inodesPerGroup*uint64(f.inodeSize) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
	if table == 0 || table >= f.blocksCount || tableBlocks > f.blocksCount-table {
		return 0, vfs.Corruptf("ext4: group %d inode table at block %d", g, table)
	}
	if len(f.itable) >= 1<<16 {
		clear(f.itable)
	}
	f.itable[g] = table
	return table, nil
}

func (f *volume) checkDesc(g uint64, d []byte) error {
	var want, got uint64
	switch {
	case f.metadataCsum:
		want = le16(d[0x1E:])
		c := crc32c(f.csumSeed, le32bytes(uint32(g)))
		c = crc32c(c, d[:0x1E])
		c = crc32c(c, []byte{0, 0})
		c = crc32c(c, d[0x20:])
		got = uint64(c & 0xFFFF)
	case f.gdtCsum:
		want = le16(d[0x1E:])
		c := crc16(^uint16(0), f.fsUUID[:])
		c = crc16(c, le32bytes(uint32(g)))
		c = crc16(c, d[:0x1E])
		if len(d) > 0x20 {
			c = crc16(c, d[0x20:])
		}
		got = uint64(c)
	default:
		return nil
	}
	if want != got {
		return fmt.Errorf("ext4: group %d descriptor checksum %#04x, computed %#04x: %w: %w", g, want, got, vfs.ErrCorrupt, vfs.ErrChecksum)
	}
	return nil
}

func le32bytes(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
