package decompress

import (
	"encoding/binary"
	"fmt"

	"github.com/pierrec/lz4/v4"
)

// The lz4 legacy frame (`lz4 -l`, what Linux uses): the magic, then blocks,
// each a little-endian 32-bit compressed size and that many bytes of one
// independent lz4 block that decodes to at most 8 MiB. There is no end
// mark: the frame ends with the input, with another legacy magic (a
// concatenated frame), or — Linux's variant — with the 4-byte size trailer,
// which we recognise as a final word with nothing after it.
const (
	lz4LegacyMagic    = 0x184c2102
	lz4LegacyBlockMax = 8 << 20
	// lz4's worst-case expansion of an 8 MiB block (LZ4_compressBound).
	lz4LegacyBound = lz4LegacyBlockMax + lz4LegacyBlockMax/255 + 16
)

func decodeLZ4(src []byte, hint, limit int64) ([]byte, error) {
	if len(src) < 4 || binary.LittleEndian.Uint32(src) != lz4LegacyMagic {
		return nil, fmt.Errorf("%w: not an lz4 legacy frame", ErrCorrupt)
	}
	capacity := hint
	if capacity <= 0 {
		capacity = min(int64(lz4LegacyBlockMax), limit)
	}
	out := make([]byte, 0, capacity)
	for pos := 4; ; {
		at, block, size, err := lz4NextBlock(src, pos)
		if err != nil {
			return nil, err
		}
		if block == nil {
			return out, nil
		}
		if int64(len(out))+int64(size) > limit {
			return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
		}
		if size > cap(out)-len(out) {
			grown := min(max(2*int64(cap(out)), int64(len(out)+size)), limit)
			nb := make([]byte, len(out), grown)
			copy(nb, out)
			out = nb
		}
		k, err := lz4.UncompressBlock(block, out[len(out):len(out)+size])
		if err != nil || k != size {
			return nil, fmt.Errorf("%w: block at %d: %v (%d of %d bytes)", ErrCorrupt, at, err, k, size)
		}
		out = out[:len(out)+size]
		pos = at + 4 + len(block)
	}
}

// lz4NextBlock finds the next block of an lz4 legacy stream at or after
// pos, skipping the magic that starts each concatenated frame, and checks
// its size word. It returns the block's offset, its compressed bytes and
// what it decodes to; block is nil at the end of the data, or at a last
// word with no data after it, which cannot be a block: it is Linux's size
// trailer (normally the decoded length).
func lz4NextBlock(src []byte, pos int) (at int, block []byte, size int, err error) {
	for ; pos < len(src); pos += 4 {
		if len(src)-pos < 4 {
			return pos, nil, 0, fmt.Errorf("%w: truncated block header at %d", ErrCorrupt, pos)
		}
		n := binary.LittleEndian.Uint32(src[pos:])
		rest := len(src) - pos - 4
		if n == lz4LegacyMagic {
			continue
		}
		if rest == 0 {
			break
		}
		if n == 0 || int64(n) > lz4LegacyBound || int64(n) > int64(rest) {
			return pos, nil, 0, fmt.Errorf("%w: block size %d at %d (%d bytes left)", ErrCorrupt, n, pos, rest)
		}
		block = src[pos+4 : pos+4+int(n)]
		size, err = lz4BlockSize(block)
		if err != nil {
			return pos, nil, 0, fmt.Errorf("%w: block at %d: %v", ErrCorrupt, pos, err)
		}
		return pos, block, size, nil
	}
	return pos, nil, 0, nil
}

// lz4BlockSize returns how many bytes an lz4 block decodes to, from its
// sequence headers alone (token: literal and match length nibbles, 15
// extended by bytes up to a non-255 one; literals; a 16-bit offset; the
// last sequence has literals only). Knowing the size first lets every
// block decode straight into the output and the limit be checked before
// any work.
func lz4BlockSize(b []byte) (int, error) {
	ext := func(i, n int) (int, int, error) {
		for {
			if i >= len(b) {
				return 0, 0, fmt.Errorf("truncated length")
			}
			c := b[i]
			i++
			n += int(c)
			if n > lz4LegacyBlockMax {
				return 0, 0, fmt.Errorf("length over %d", lz4LegacyBlockMax)
			}
			if c != 255 {
				return i, n, nil
			}
		}
	}
	var err error
	i, size := 0, 0
	for i < len(b) {
		tok := b[i]
		i++
		lit := int(tok >> 4)
		if lit == 15 {
			if i, lit, err = ext(i, lit); err != nil {
				return 0, err
			}
		}
		if lit > len(b)-i {
			return 0, fmt.Errorf("literals past the end of the block")
		}
		i += lit
		size += lit
		if i == len(b) {
			break // the last sequence
		}
		if len(b)-i < 2 || b[i]|b[i+1] == 0 {
			return 0, fmt.Errorf("bad match offset")
		}
		i += 2
		m := int(tok & 15)
		if m == 15 {
			if i, m, err = ext(i, m); err != nil {
				return 0, err
			}
		}
		size += m + 4
		if size > lz4LegacyBlockMax {
			return 0, fmt.Errorf("block decodes to more than %d bytes", lz4LegacyBlockMax)
		}
	}
	return size, nil
}
