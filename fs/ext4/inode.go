package ext4

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// Inode flags we act on.
const (
	flagEncrypt    = 0x800
	flagIndex      = 0x1000
	flagHugeFile   = 0x40000
	flagExtents    = 0x80000
	flagInlineData = 0x10000000
)

const (
	oldInodeSize = 128
	nBlockBytes  = 60 // i_block
	xattrMagic   = 0xEA020000
	xattrSystem  = 7 // name index of "system." attributes
)

// inode is a parsed on-disk inode; it is the vfs.Node of this driver.
type inode struct {
	ino    uint64
	mode   uint16
	flags  uint32
	size   int64
	mtime  time.Time
	blocks uint64 // i_blocks, in 512-byte units (or blocks with huge_file)
	acl    uint64 // extended attribute block
	iblock [nBlockBytes]byte
	seed   uint32 // checksum seed of this inode's blocks
	inline []byte // system.data xattr value, for inline_data inodes
}

func (in *inode) ID() uint64         { return in.ino }
func (in *inode) Size() int64        { return in.size }
func (in *inode) ModTime() time.Time { return in.mtime }

func (in *inode) Mode() fs.FileMode {
	m := fs.FileMode(in.mode & 0o777)
	if in.mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if in.mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if in.mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m | modeType(in.mode)
}

// modeType maps the S_IFMT bits; readInode has rejected unknown types.
func modeType(mode uint16) fs.FileMode {
	switch mode & 0xF000 {
	case 0x4000:
		return fs.ModeDir
	case 0xA000:
		return fs.ModeSymlink
	case 0x2000:
		return fs.ModeDevice | fs.ModeCharDevice
	case 0x6000:
		return fs.ModeDevice
	case 0x1000:
		return fs.ModeNamedPipe
	case 0xC000:
		return fs.ModeSocket
	}
	return 0
}

// readInode reads, checks and parses inode number ino.
func (f *volume) readInode(ino uint64) (*inode, error) {
	if ino < 1 || ino > f.inodesCount {
		return nil, vfs.Corruptf("ext4: inode number %d out of range 1..%d", ino, f.inodesCount)
	}
	g, idx := (ino-1)/f.inodesPerGroup, (ino-1)%f.inodesPerGroup
	table, err := f.inodeTable(g)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, f.inodeSize)
	if err := vfs.ReadFullAt(f.dev, raw, int64(table)*f.blockSize+int64(idx)*f.inodeSize); err != nil {
		return nil, fmt.Errorf("ext4: inode %d: %w", ino, err)
	}
	in, err := f.parseInode(ino, raw)
	if err != nil {
		return nil, fmt.Errorf("ext4: inode %d: %w", ino, err)
	}
	return in, nil
}

func (f *volume) parseInode(ino uint64, raw []byte) (*inode, error) {
	extra := int64(0)
	if f.inodeSize > oldInodeSize {
		extra = int64(le16(raw[0x80:]))
		if extra%4 != 0 || oldInodeSize+extra > f.inodeSize {
			return nil, vfs.Corruptf("extra inode size %d", extra)
		}
	}
	in := &inode{ino: ino, mode: uint16(le16(raw[0:])), flags: uint32(le32(raw[0x20:]))}
	if f.metadataCsum {
		in.seed = crc32c(crc32c(f.csumSeed, le32bytes(uint32(ino))), raw[0x64:0x68])
		if err := f.checkInode(in.seed, raw, extra); err != nil {
			return nil, err
		}
	}
	if in.mode&0xF000 == 0x8000 && modeType(in.mode) != 0 || in.mode&0xF000 != 0x8000 && modeType(in.mode) == 0 {
		return nil, vfs.Corruptf("file type %#o", in.mode&0xF000)
	}
	size := le32(raw[0x4:]) | le32(raw[0x6C:])<<32
	// Logical block numbers are 32-bit, so no file is longer than this.
	if size > uint64(f.blockSize)<<32 {
		return nil, vfs.Corruptf("size %d", size)
	}
	in.size = int64(size)
	sec := int64(int32(le32(raw[0x10:])))
	var nsec int64
	if oldInodeSize+extra >= 0x8C {
		x := le32(raw[0x88:])
		sec += int64(x&3) << 32
		nsec = int64(x >> 2)
		if nsec >= 1e9 {
			nsec = 0
		}
	}
	in.mtime = time.Unix(sec, nsec).UTC()
	in.blocks = le32(raw[0x1C:]) | le16(raw[0x74:])<<32
	in.acl = le32(raw[0x68:]) | le16(raw[0x76:])<<32
	copy(in.iblock[:], raw[0x28:0x28+nBlockBytes])
	if in.flags&flagInlineData != 0 {
		v, err := inlineXattr(raw, oldInodeSize+extra)
		if err != nil {
			return nil, err
		}
		in.inline = v
	}
	return in, nil
}

// checkInode verifies the metadata_csum of an inode: crc32c over the whole
// inode with its checksum fields taken as zero.
func (f *volume) checkInode(seed uint32, raw []byte, extra int64) error {
	zero := []byte{0, 0}
	c := crc32c(seed, raw[:0x7C])
	c = crc32c(c, zero)
	c = crc32c(c, raw[0x7E:oldInodeSize])
	want := uint32(le16(raw[0x7C:]))
	hasHi := f.inodeSize > oldInodeSize && oldInodeSize+extra >= 0x84
	if f.inodeSize > oldInodeSize {
		c = crc32c(c, raw[oldInodeSize:0x82])
		if hasHi {
			c = crc32c(c, zero)
			c = crc32c(c, raw[0x84:])
			want |= uint32(le16(raw[0x82:])) << 16
		} else {
			c = crc32c(c, raw[0x82:])
		}
	}
	if !hasHi {
		c &= 0xFFFF
	}
	if c != want {
		return fmt.Errorf("checksum %#x, computed %#x: %w: %w", want, c, vfs.ErrCorrupt, vfs.ErrChecksum)
	}
	return nil
}

// inlineXattr finds the value of the in-inode "system.data" attribute,
// where inline_data keeps what does not fit in i_block.
func inlineXattr(raw []byte, start int64) ([]byte, error) {
	if start+4 > int64(len(raw)) || le32(raw[start:]) != xattrMagic {
		return nil, nil
	}
	base := start + 4
	for off := base; off+16 <= int64(len(raw)); {
		e := raw[off:]
		if le32(e) == 0 {
			break
		}
		nameLen := int64(e[0])
		next := off + (16+nameLen+3)&^3
		if next > int64(len(raw)) {
			return nil, vfs.Corruptf("xattr entry at %d overruns the inode", off)
		}
		if e[1] == xattrSystem && string(e[16:16+nameLen]) == "data" {
			if le32(e[4:]) != 0 {
				return nil, fmt.Errorf("inline data in an EA inode: %w", errUnsupported)
			}
			voff, vsize := int64(le16(e[2:])), int64(le32(e[8:]))
			if base+voff+vsize > int64(len(raw)) {
				return nil, vfs.Corruptf("inline data value (%d bytes at %d) overruns the inode", vsize, voff)
			}
			return raw[base+voff : base+voff+vsize], nil
		}
		off = next
	}
	return nil, nil
}

// inlineData is the content of an inline_data inode: i_block, then the
// system.data attribute.
func (in *inode) inlineData() ([]byte, error) {
	data := append(in.iblock[:min(in.size, nBlockBytes):min(in.size, nBlockBytes)], in.inline...)
	if int64(len(data)) < in.size {
		return nil, vfs.Corruptf("ext4: inode %d: %d bytes of inline data for size %d", in.ino, len(data), in.size)
	}
	return data[:in.size], nil
}

// fastSymlink reports whether a symlink's target lives in i_block: it has
// no data blocks other than an xattr block (what Linux tests).
func (f *volume) fastSymlink(in *inode) bool {
	if in.flags&flagInlineData != 0 || in.size >= nBlockBytes {
		return false
	}
	ea := uint64(0)
	if in.acl != 0 {
		ea = uint64(f.blockSize / 512)
		if in.flags&flagHugeFile != 0 {
			ea = 1
		}
	}
	return in.blocks == ea
}

// content returns a reader of an inode's bytes (files, slow symlinks and
// directories) and its extents (nil for inline data).
func (f *volume) content(in *inode) (io.ReaderAt, []vfs.Extent, error) {
	if in.flags&flagEncrypt != 0 {
		return nil, nil, fmt.Errorf("ext4: inode %d is encrypted: %w", in.ino, errUnsupported)
	}
	if in.flags&flagInlineData != 0 {
		if f.incompat&incompatInlineData == 0 {
			return nil, nil, vfs.Corruptf("ext4: inode %d has inline data without the feature", in.ino)
		}
		data, err := in.inlineData()
		if err != nil {
			return nil, nil, err
		}
		return bytes.NewReader(data), nil, nil
	}
	var ext []vfs.Extent
	var err error
	if in.flags&flagExtents != 0 {
		ext, err = f.extentTree(in)
	} else {
		ext, err = f.blockMap(in)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ext4: inode %d: %w", in.ino, err)
	}
	r, err := vfs.NewExtentReader(f.dev, f.size, in.size, ext)
	if err != nil {
		return nil, nil, fmt.Errorf("ext4: inode %d: %w", in.ino, err)
	}
	return r, ext, nil
}
