package decompress

import (
	"encoding/binary"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"io"
)

// LZO, our own: the lzop container as `lzop -9` writes it (Linux's
// CONFIG_KERNEL_LZO payloads and lzo initrds) and an LZO1X decoder. Written
// from the format as Linux's lib/decompress_unlzo.c and
// lib/lzo/lzo1x_decompress_safe.c read it; unlike the kernel we also verify
// the header and block checksums lzop writes.

var lzopMagic = []byte{0x89, 'L', 'Z', 'O', 0x00, '\r', '\n', 0x1a, '\n'}

// lzop header flags we act on.
const (
	lzopAdler32D   = 0x0001 // adler32 of each block's uncompressed data
	lzopAdler32C   = 0x0002 // adler32 of each block's compressed data
	lzopExtraField = 0x0040
	lzopFilter     = 0x0800
	lzopCRC32D     = 0x0100
	lzopCRC32C     = 0x0200
	lzopHeaderCRC  = 0x1000 // header checksum is crc32, not adler32
	lzopMultipart  = 0x0400
)

// lzopMaxBlock is lzop's own limit on a block's uncompressed size.
const lzopMaxBlock = 64 << 20

// lzoReader reads big-endian fields with bounds checks.
type lzoReader struct {
	b   []byte
	pos int
	err error
}

func (r *lzoReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.err = fmt.Errorf("%w: truncated at %d (need %d bytes)", ErrCorrupt, r.pos, n)
		return nil
	}
	p := r.b[r.pos : r.pos+n]
	r.pos += n
	return p
}

func (r *lzoReader) u8() uint32 {
	if p := r.bytes(1); p != nil {
		return uint32(p[0])
	}
	return 0
}

func (r *lzoReader) u16() uint32 {
	if p := r.bytes(2); p != nil {
		return uint32(binary.BigEndian.Uint16(p))
	}
	return 0
}

func (r *lzoReader) u32() uint32 {
	if p := r.bytes(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// lzopHeader parses the file header and returns its flags.
func lzopHeader(r *lzoReader) (uint32, error) {
	if m := r.bytes(len(lzopMagic)); r.err != nil || string(m) != string(lzopMagic) {
		return 0, fmt.Errorf("%w: no lzop magic", ErrCorrupt)
	}
	start := r.pos
	version := r.u16()
	r.u16() // library version
	if version >= 0x0940 {
		r.u16() // version needed to extract
	}
	method := r.u8()
	if version >= 0x0940 {
		r.u8() // level
	}
	flags := r.u32()
	if flags&lzopFilter != 0 {
		r.u32()
	}
	r.u32() // mode
	r.u32() // mtime
	if version >= 0x0940 {
		r.u32() // mtime, high half
	}
	r.bytes(int(r.u8())) // file name
	end := r.pos
	sum := r.u32()
	if r.err != nil {
		return 0, r.err
	}
	if version < 0x0900 {
		return 0, fmt.Errorf("%w: lzop version %#x", ErrCorrupt, version)
	}
	// 1, 2, 3 are LZO1X-1, LZO1X-1(15) and LZO1X-999: one decoder for all.
	if method < 1 || method > 3 {
		return 0, fmt.Errorf("%w: lzop method %d is not LZO1X", ErrCorrupt, method)
	}
	if flags&(lzopFilter|lzopMultipart) != 0 {
		return 0, fmt.Errorf("%w: lzop flags %#x (filter/multipart) unsupported", ErrCorrupt, flags)
	}
	hdr := r.b[start:end]
	want := adler32.Checksum(hdr)
	if flags&lzopHeaderCRC != 0 {
		want = crc32.ChecksumIEEE(hdr)
	}
	if sum != want {
		return 0, fmt.Errorf("%w: lzop header checksum %#x, computed %#x", ErrCorrupt, sum, want)
	}
	if flags&lzopExtraField != 0 {
		r.bytes(int(min(r.u32(), uint32(len(r.b)))))
		r.u32() // its checksum
		if r.err != nil {
			return 0, r.err
		}
	}
	return flags, nil
}

// decodeLZO decodes a whole lzop stream, block by block (lzoStream),
// into one buffer of at most limit bytes.
func decodeLZO(src []byte, hint, limit int64) ([]byte, error) {
	s, err := newLZOStream(src, limit)
	if err != nil {
		return nil, err
	}
	capacity := hint
	if capacity <= 0 {
		capacity = min(int64(minGrow), limit)
	}
	out := make([]byte, 0, capacity)
	for {
		blk, err := s.block()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(blk) > cap(out)-len(out) { // grow, but never past limit
			nb := make([]byte, len(out), min(max(2*int64(cap(out)), int64(len(out)+len(blk))), limit))
			copy(nb, out)
			out = nb
		}
		out = append(out, blk...)
	}
}

// LZO1X instructions (the first byte, t, selects the kind):
//
//	t >= 64     M2: match of 3–8 bytes, distance ≤ 2 KiB, 1 more byte
//	t >= 32     M3: match, distance ≤ 16 KiB, length in t (extended by
//	            zero bytes), then a little-endian 16-bit distance word
//	t >= 16     M4: match, distance 16–48 KiB, same encoding; distance 0
//	            is the end-of-stream marker
//	t < 16      depends on what came before: after a match with no
//	            trailing literals, a literal run of t+3 bytes (t = 0:
//	            extended length); after 1–3 trailing literals a 2-byte
//	            match (M1); after a literal run a 3-byte match at distance
//	            2049–3072.
//
// The low two bits of every match's last distance byte say how many
// literals (0–3) follow the match. A first byte > 17 starts the stream
// with a literal run of t-17 bytes.
const (
	lzoM2MaxOffset = 0x0800
	lzoM4Base      = 0x4000
)

// lzoLen reads an extended length: zero bytes add 255 each, the first
// non-zero byte ends it; base is added.
func lzoLen(src []byte, ip *int, base int) (int, error) {
	n := base
	for {
		if *ip >= len(src) {
			return 0, fmt.Errorf("%w: lzo: truncated length", ErrCorrupt)
		}
		b := src[*ip]
		*ip++
		if b != 0 {
			return n + int(b), nil
		}
		n += 255
	}
}

// lzo1xDecode decodes one LZO1X block into dst, which must be exactly as
// long as the block's uncompressed size or longer; it returns the number
// of bytes written.
func lzo1xDecode(dst, src []byte) (int, error) {
	ip, op := 0, 0
	bad := func(what string) (int, error) {
		return op, fmt.Errorf("%w: lzo: %s at input %d, output %d", ErrCorrupt, what, ip, op)
	}
	literals := func(n int) bool {
		if n > len(src)-ip || n > len(dst)-op {
			return false
		}
		copy(dst[op:op+n], src[ip:ip+n])
		ip += n
		op += n
		return true
	}
	if len(src) < 3 {
		return bad("block too short")
	}
	state := 0 // literals after the last match (0–3), or 4 after a literal run
	if src[0] > 17 {
		n := int(src[0]) - 17
		ip++
		if !literals(n) {
			return bad("literal run overruns")
		}
		state = min(n, 4)
	}
	for {
		if ip >= len(src) {
			return bad("missing end marker")
		}
		t := int(src[ip])
		ip++
		var length, dist, next int
		switch {
		case t >= 64:
			if ip >= len(src) {
				return bad("truncated M2")
			}
			length = t>>5 + 1
			dist = 1 + (t>>2)&7 + int(src[ip])<<3
			next = t & 3
			ip++
		case t >= 32:
			length = t & 31
			if length == 0 {
				var err error
				if length, err = lzoLen(src, &ip, 31); err != nil {
					return op, err
				}
			}
			length += 2
			if len(src)-ip < 2 {
				return bad("truncated M3")
			}
			v := int(binary.LittleEndian.Uint16(src[ip:]))
			ip += 2
			dist = 1 + v>>2
			next = v & 3
		case t >= 16:
			length = t & 7
			if length == 0 {
				var err error
				if length, err = lzoLen(src, &ip, 7); err != nil {
					return op, err
				}
			}
			length += 2
			if len(src)-ip < 2 {
				return bad("truncated M4")
			}
			v := int(binary.LittleEndian.Uint16(src[ip:]))
			ip += 2
			dist = (t&8)<<11 + v>>2
			next = v & 3
			if dist == 0 {
				if length != 3 {
					return bad("malformed end marker")
				}
				if ip != len(src) {
					return bad("data after end marker")
				}
				return op, nil
			}
			dist += lzoM4Base
		case state == 0:
			n := t
			if n == 0 {
				var err error
				if n, err = lzoLen(src, &ip, 15); err != nil {
					return op, err
				}
			}
			if !literals(n + 3) {
				return bad("literal run overruns")
			}
			state = 4
			continue
		case state == 4:
			if ip >= len(src) {
				return bad("truncated M1")
			}
			length = 3
			dist = 1 + lzoM2MaxOffset + t>>2 + int(src[ip])<<2
			next = t & 3
			ip++
		default:
			if ip >= len(src) {
				return bad("truncated M1")
			}
			length = 2
			dist = 1 + t>>2 + int(src[ip])<<2
			next = t & 3
			ip++
		}
		if dist > op {
			return bad("match before start of output")
		}
		if length > len(dst)-op {
			return bad("match overruns output")
		}
		from := op - dist
		if dist >= length {
			copy(dst[op:op+length], dst[from:from+length])
			op += length
		} else {
			// Overlapping: the match repeats the last dist bytes.
			for end := op + length; op < end; {
				n := copy(dst[op:end], dst[from:op])
				op += n
			}
		}
		if !literals(next) {
			return bad("trailing literals overrun")
		}
		state = next
	}
}
