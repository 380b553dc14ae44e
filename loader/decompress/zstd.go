package decompress

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// zstdMaxWindow is the largest window we accept. DecodeAll uses the output
// buffer as its history, so the window costs no memory of its own; it only
// has to pass the library's check. Linux builds kernels with `zstd -22
// --ultra` from a pipe, which declares a 128 MiB window (Debian 13), more
// than a small domain's limit although the output is smaller.
const zstdMaxWindow = 1 << 31

// zstdSlack is extra capacity past the expected size: the library's fast
// paths want a little room after the last byte.
const zstdSlack = 64 << 10

// zstdBlockMax is the most one zstd block decodes to.
const zstdBlockMax = 128 << 10

func decodeZstd(src []byte, hint, limit int64) ([]byte, error) {
	window, fcs, err := zstdFrameHeader(src)
	if err != nil {
		return nil, err
	}
	if fcs >= 0 {
		if fcs > limit {
			return nil, fmt.Errorf("frame declares %d bytes, more than %d: %w", fcs, limit, ErrTooLarge)
		}
		hint = fcs
	}
	if window > zstdMaxWindow {
		return nil, fmt.Errorf("%w: window of %d bytes", ErrCorrupt, window)
	}
	// maxDecodedSize must admit the window; the real output bound is the
	// capacity of dst (WithDecodeAllCapLimit), which never exceeds limit.
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow),
		zstd.WithDecoderMaxMemory(uint64(max(limit, window, 1))),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, err
	}
	defer dec.Close()

	capacity := limit
	if hint > 0 {
		capacity = min(hint+zstdSlack, limit)
	} else {
		capacity = min(max(int64(len(src))*4, minGrow), limit)
	}
	for {
		out, err := dec.DecodeAll(src, make([]byte, 0, capacity))
		if err == nil {
			return out, nil
		}
		if errors.Is(err, zstd.ErrMagicMismatch) && len(out) > 0 {
			// A complete frame followed by something else: the size
			// trailer or a further archive.
			return out, nil
		}
		// With the output capped at the buffer's capacity, running out
		// of room shows as ErrDecoderSizeExceeded or as a block that
		// does not fit, with the buffer (nearly) full.
		full := errors.Is(err, zstd.ErrDecoderSizeExceeded) || int64(len(out))+zstdBlockMax >= capacity
		if !full {
			return nil, corrupt(err)
		}
		if capacity >= limit {
			return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
		}
		// The hint was low (or absent): try again with more room.
		capacity = min(2*capacity, limit)
	}
}

// zstdFrameHeader reads the window size and frame content size (-1 when
// absent) of the first frame (RFC 8878 §3.1.1.1), skipping skippable frames.
func zstdFrameHeader(src []byte) (window, fcs int64, err error) {
	p := src
	for {
		if len(p) < 4 {
			return 0, 0, fmt.Errorf("%w: truncated frame header", ErrCorrupt)
		}
		m := binary.LittleEndian.Uint32(p)
		if m&0xfffffff0 != 0x184d2a50 { // skippable frames
			break
		}
		if len(p) < 8 {
			return 0, 0, fmt.Errorf("%w: truncated skippable frame", ErrCorrupt)
		}
		n := uint64(binary.LittleEndian.Uint32(p[4:]))
		if n > uint64(len(p)-8) {
			return 0, 0, fmt.Errorf("%w: skippable frame of %d bytes", ErrCorrupt, n)
		}
		p = p[8+n:]
	}
	if binary.LittleEndian.Uint32(p) != 0xfd2fb528 || len(p) < 5 {
		return 0, 0, fmt.Errorf("%w: no zstd frame", ErrCorrupt)
	}
	fhd := p[4]
	single := fhd&0x20 != 0
	fcsFlag := fhd >> 6
	dictLen := [4]int{0, 1, 2, 4}[fhd&3]
	q := p[5:]
	window = -1
	if !single {
		if len(q) < 1 {
			return 0, 0, fmt.Errorf("%w: truncated frame header", ErrCorrupt)
		}
		exp := int64(q[0] >> 3)
		base := int64(1) << (10 + exp)
		window = base + base/8*int64(q[0]&7)
		q = q[1:]
	}
	if len(q) < dictLen {
		return 0, 0, fmt.Errorf("%w: truncated frame header", ErrCorrupt)
	}
	q = q[dictLen:]
	fcsLen := [4]int{0, 2, 4, 8}[fcsFlag]
	if fcsFlag == 0 && single {
		fcsLen = 1
	}
	if len(q) < fcsLen {
		return 0, 0, fmt.Errorf("%w: truncated frame header", ErrCorrupt)
	}
	fcs = -1
	switch fcsLen {
	case 1:
		fcs = int64(q[0])
	case 2:
		fcs = int64(binary.LittleEndian.Uint16(q)) + 256
	case 4:
		fcs = int64(binary.LittleEndian.Uint32(q))
	case 8:
		v := binary.LittleEndian.Uint64(q)
		if v > 1<<62 {
			return 0, 0, fmt.Errorf("%w: frame content size %d", ErrCorrupt, v)
		}
		fcs = int64(v)
	}
	if window < 0 {
		window = max(fcs, 1<<10)
	}
	return window, fcs, nil
}
