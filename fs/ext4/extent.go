package ext4

import (
	"fmt"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

const (
	extentMagic    = 0xF30A
	maxExtentDepth = 5
	// maxExtents caps the extents (runs) of one file: 256 Ki runs are a
	// 1 GiB file fragmented into single 4 KiB blocks, and about 6 MiB.
	maxExtents = 1 << 18
	// maxIndirect caps the indirect blocks read for one block-mapped file
	// (64 Ki of them map 16 GiB at 1 KiB blocks).
	maxIndirect = 1 << 16
)

// runs accumulates a file's block mapping as byte extents, merging
// neighbours, and enforces maxExtents.
type runs struct {
	bs     int64
	blocks uint64 // file length in blocks: mapping past it is dropped
	ext    []vfs.Extent
}

func (r *runs) add(logical, physical, n uint64, zero bool) error {
	if logical >= r.blocks {
		return nil
	}
	n = min(n, r.blocks-logical)
	e := vfs.Extent{Logical: int64(logical) * r.bs, Physical: int64(physical) * r.bs, Length: int64(n) * r.bs, Zero: zero}
	if zero {
		e.Physical = 0
	}
	if k := len(r.ext); k > 0 {
		last := &r.ext[k-1]
		if last.Zero == zero && last.Logical+last.Length == e.Logical && (zero || last.Physical+last.Length == e.Physical) {
			last.Length += e.Length
			return nil
		}
	}
	if len(r.ext) >= maxExtents {
		return fmt.Errorf("more than %d extents: %w", maxExtents, vfs.ErrTooLarge)
	}
	r.ext = append(r.ext, e)
	return nil
}

func (f *volume) fileBlocks(in *inode) uint64 {
	return (uint64(in.size) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
}

// extentTree walks an inode's extent tree. Each node's depth must be one
// less than its parent's and every key must lie after the previous one
// and inside the range its parent gave it, so a tree that points back at
// itself fails instead of looping.
func (f *volume) extentTree(in *inode) ([]vfs.Extent, error) {
	r := &runs{bs: f.blockSize, blocks: f.fileBlocks(in)}
	nodes := 0
	var next uint64 // the smallest logical block the next extent may have
	var walk func(node []byte, depth int, hi uint64, root bool) error
	walk = func(node []byte, depth int, hi uint64, root bool) error {
		if le16(node[0:]) != extentMagic {
			return vfs.Corruptf("bad extent header magic %#x", le16(node[0:]))
		}
		entries, max, d := int(le16(node[2:])), int(le16(node[4:])), int(le16(node[6:]))
		if 12+12*max > len(node) || entries > max {
			return vfs.Corruptf("extent node with %d of %d entries in %d bytes", entries, max, len(node))
		}
		if depth >= 0 && d != depth || d > maxExtentDepth {
			return vfs.Corruptf("extent node depth %d, expected %d", d, depth)
		}
		if !root && entries == 0 {
			return vfs.Corruptf("empty extent node")
		}
		nodes++
		if nodes > maxExtents {
			return fmt.Errorf("more than %d extent nodes: %w", maxExtents, vfs.ErrTooLarge)
		}
		for i := range entries {
			e := node[12+12*i:]
			lblk := le32(e[0:])
			if lblk < next || lblk >= hi {
				return vfs.Corruptf("extent key %d out of order (expected %d..%d)", lblk, next, hi)
			}
			if d == 0 {
				n := le16(e[4:])
				zero := n > 32768
				if zero {
					n -= 32768
				}
				start := le32(e[8:]) | le16(e[6:])<<32
				if n == 0 || lblk+n > hi || start < f.firstDataBlock || start >= f.blocksCount || n > f.blocksCount-start {
					return vfs.Corruptf("extent of %d blocks at %d (logical %d)", n, start, lblk)
				}
				if err := r.add(lblk, start, n, zero); err != nil {
					return err
				}
				next = lblk + n
				continue
			}
			childHi := hi
			if i+1 < entries {
				childHi = le32(node[12+12*(i+1):])
			}
			child := le32(e[4:]) | le16(e[8:])<<32
			if child < f.firstDataBlock || child >= f.blocksCount {
				return vfs.Corruptf("extent index points to block %d", child)
			}
			blk := make([]byte, f.blockSize)
			if err := vfs.ReadFullAt(f.dev, blk, int64(child)*f.blockSize); err != nil {
				return fmt.Errorf("extent block %d: %w", child, err)
			}
			if f.metadataCsum {
				cmax := int(le16(blk[4:]))
				tail := 12 + 12*cmax
				if tail+4 > len(blk) {
					return vfs.Corruptf("extent block %d has no room for its checksum", child)
				}
				if want, got := uint32(le32(blk[tail:])), crc32c(in.seed, blk[:tail]); want != got {
					return fmt.Errorf("extent block %d checksum %#x, computed %#x: %w: %w", child, want, got, vfs.ErrCorrupt, vfs.ErrChecksum)
				}
			}
			next = lblk
			if err := walk(blk, d-1, childHi, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(in.iblock[:], -1, 1<<32, true); err != nil {
		return nil, err
	}
	return r.ext, nil
}

// blockMap reads the classic ext2/3 block map: 12 direct pointers, then
// single, double and triple indirect blocks. Zero pointers are holes; a
// zero indirect pointer skips its whole subtree. Only blocks inside the
// file's size are mapped, so the walk ends with the file.
func (f *volume) blockMap(in *inode) ([]vfs.Extent, error) {
	per := uint64(f.blockSize / 4)
	nblocks := f.fileBlocks(in)
	if nblocks > 12+per+per*per+per*per*per {
		return nil, vfs.Corruptf("size %d beyond what a block map addresses", in.size)
	}
	r := &runs{bs: f.blockSize, blocks: nblocks}
	indirect := 0
	mapOne := func(lblk, ptr uint64) error {
		if ptr == 0 {
			return nil
		}
		if ptr < f.firstDataBlock || ptr >= f.blocksCount {
			return vfs.Corruptf("block pointer %d (logical %d)", ptr, lblk)
		}
		return r.add(lblk, ptr, 1, false)
	}
	var walk func(ptr uint64, level int, lblk uint64) error
	walk = func(ptr uint64, level int, lblk uint64) error {
		if ptr == 0 || lblk >= nblocks {
			return nil
		}
		if ptr < f.firstDataBlock || ptr >= f.blocksCount {
			return vfs.Corruptf("indirect block pointer %d", ptr)
		}
		indirect++
		if indirect > maxIndirect {
			return fmt.Errorf("more than %d indirect blocks: %w", maxIndirect, vfs.ErrTooLarge)
		}
		blk := make([]byte, f.blockSize)
		if err := vfs.ReadFullAt(f.dev, blk, int64(ptr)*f.blockSize); err != nil {
			return fmt.Errorf("indirect block %d: %w", ptr, err)
		}
		span := uint64(1)
		for range level - 1 {
			span *= per
		}
		for i := range per {
			child := le32(blk[4*i:])
			at := lblk + i*span
			if at >= nblocks {
				break
			}
			var err error
			if level == 1 {
				err = mapOne(at, child)
			} else {
				err = walk(child, level-1, at)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	for i := range uint64(12) {
		if err := mapOne(i, le32(in.iblock[4*i:])); err != nil {
			return nil, err
		}
	}
	start := uint64(12)
	span := per
	for level := 1; level <= 3; level++ {
		if err := walk(le32(in.iblock[4*(11+level):]), level, start); err != nil {
			return nil, err
		}
		start += span
		span *= per
	}
	return r.ext, nil
}
