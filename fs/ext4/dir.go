package ext4

import (
	"fmt"
	"io/fs"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// maxDirSize caps the directory sizes we read (a million entries need
// about 40 MiB); bigger ones are refused, not streamed into memory.
const maxDirSize = 64 << 20

// dirType maps a directory entry's file_type byte (0 = unknown).
var dirType = [8]fs.FileMode{0, 0, fs.ModeDir, fs.ModeDevice | fs.ModeCharDevice, fs.ModeDevice, fs.ModeNamedPipe, fs.ModeSocket, fs.ModeSymlink}

// readDir lists a directory inode by a linear scan of its blocks (or of
// its inline data). htree index blocks hold no live entries, only a
// checksum, so the linear scan sees every name exactly once.
func (f *volume) readDir(in *inode) ([]vfs.Dirent, error) {
	if in.flags&flagEncrypt != 0 {
		return nil, fmt.Errorf("ext4: directory inode %d is encrypted: %w", in.ino, errUnsupported)
	}
	if in.size > maxDirSize {
		return nil, fmt.Errorf("ext4: directory inode %d of %d bytes: %w", in.ino, in.size, vfs.ErrTooLarge)
	}
	var out []vfs.Dirent
	if in.flags&flagInlineData != 0 {
		data, err := in.inlineData()
		if err != nil {
			return nil, err
		}
		// Four bytes of parent inode number, then entries filling the
		// rest of i_block, then entries filling the xattr value.
		if len(data) < 4 {
			return nil, vfs.Corruptf("ext4: inline directory %d of %d bytes", in.ino, len(data))
		}
		split := min(len(data), nBlockBytes)
		for _, region := range [][]byte{data[4:split], data[split:]} {
			if out, err = f.parseDirBlock(in, region, out); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	r, ext, err := f.content(in)
	if err != nil {
		return nil, err
	}
	blk := make([]byte, f.blockSize)
	for _, e := range ext {
		if e.Zero {
			continue
		}
		for off := e.Logical; off < e.Logical+e.Length && off < in.size; off += f.blockSize {
			if err := vfs.ReadFullAt(r, blk, off); err != nil {
				return nil, fmt.Errorf("ext4: directory inode %d: %w", in.ino, err)
			}
			data, err := f.checkDirBlock(in, blk, uint64(off/f.blockSize))
			if err != nil {
				return nil, fmt.Errorf("ext4: directory inode %d block %d: %w", in.ino, off/f.blockSize, err)
			}
			if out, err = f.parseDirBlock(in, data, out); err != nil {
				return nil, fmt.Errorf("ext4: directory inode %d block %d: %w", in.ino, off/f.blockSize, err)
			}
			if len(out) > vfs.MaxDirEntries {
				return nil, fmt.Errorf("ext4: directory inode %d: more than %d entries: %w", in.ino, vfs.MaxDirEntries, vfs.ErrTooLarge)
			}
		}
	}
	return out, nil
}

// recLen decodes rec_len, which for 64 KiB blocks packs bit 16 into the
// low bits (ext4_rec_len_from_disk).
func (f *volume) recLen(v uint64) int {
	if f.blockSize < 65536 {
		return int(v)
	}
	if v == 65535 || v == 0 {
		return int(f.blockSize)
	}
	return int(v&65532 | (v&3)<<16)
}

// checkDirBlock verifies a directory block's checksum (metadata_csum) and
// returns the part that holds entries. A leaf block ends in a 12-byte
// fake entry carrying the checksum; htree index blocks carry theirs in a
// dx_tail and hold no entries.
func (f *volume) checkDirBlock(in *inode, blk []byte, lblk uint64) ([]byte, error) {
	if !f.metadataCsum {
		return blk, nil
	}
	n := len(blk)
	t := blk[n-12:]
	if le32(t) == 0 && le16(t[4:]) == 12 && t[6] == 0 && t[7] == 0xDE {
		if want, got := uint32(le32(t[8:])), crc32c(in.seed, blk[:n-12]); want != got {
			return nil, fmt.Errorf("checksum %#x, computed %#x: %w: %w", want, got, vfs.ErrCorrupt, vfs.ErrChecksum)
		}
		return blk[:n-12], nil
	}
	if in.flags&flagIndex == 0 {
		// No tail: e2fsprogs leaves some blocks so; read them unchecked
		// rather than refuse a directory Linux would still list.
		return blk, nil
	}
	countOff := 0
	switch {
	case lblk == 0:
		countOff = 0x18 + int(blk[0x1D])
	case le32(blk) == 0 && f.recLen(le16(blk[4:])) == n:
		countOff = 8
	default:
		return blk, nil
	}
	if countOff+4 > n {
		return nil, vfs.Corruptf("htree block count at %d", countOff)
	}
	limit, count := int(le16(blk[countOff:])), int(le16(blk[countOff+2:]))
	if count > limit || countOff+limit*8+8 > n {
		return nil, vfs.Corruptf("htree block with %d of %d entries", count, limit)
	}
	tail := countOff + limit*8
	c := crc32c(in.seed, blk[:countOff+count*8])
	c = crc32c(c, blk[tail:tail+4])
	c = crc32c(c, []byte{0, 0, 0, 0})
	if want := uint32(le32(blk[tail+4:])); want != c {
		return nil, fmt.Errorf("htree checksum %#x, computed %#x: %w: %w", want, c, vfs.ErrCorrupt, vfs.ErrChecksum)
	}
	// An index block: its only "entries" are . and .. (root) or none.
	return nil, nil
}

// parseDirBlock appends the live entries of one block (or inline region).
func (f *volume) parseDirBlock(dir *inode, b []byte, out []vfs.Dirent) ([]vfs.Dirent, error) {
	filetype := f.incompat&incompatFiletype != 0
	for off := 0; off < len(b); {
		if off+8 > len(b) {
			return nil, vfs.Corruptf("directory entry header at %d of %d", off, len(b))
		}
		e := b[off:]
		ino := le32(e)
		rec := f.recLen(le16(e[4:]))
		nameLen := int(e[6])
		if !filetype {
			nameLen = int(le16(e[6:]))
		}
		if rec < 8 || rec%4 != 0 || rec > len(e) || 8+nameLen > rec {
			return nil, vfs.Corruptf("directory entry at %d: rec_len %d, name_len %d", off, rec, nameLen)
		}
		off += rec
		if ino == 0 || nameLen == 0 {
			continue
		}
		name := string(e[8 : 8+nameLen])
		if name == "." || name == ".." {
			continue
		}
		if ino > f.inodesCount {
			return nil, vfs.Corruptf("entry %q points to inode %d", name, ino)
		}
		var typ fs.FileMode
		known := false
		if filetype && e[7] >= 1 && e[7] <= 7 {
			typ, known = dirType[e[7]], true
		}
		if !known {
			child, err := f.readInode(ino)
			if err != nil {
				return nil, err
			}
			typ = modeType(child.mode)
		}
		out = append(out, vfs.Dirent{Name: name, Type: typ, Ref: ino})
	}
	return out, nil
}
