package decompress

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"io"
	"runtime"
	"slices"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/therootcompany/xz"
	"github.com/ulikunitz/xz/lzma"
)

// StateReserve bounds the memory a kernel's Reader may still take after
// its first pass (Rewind keeps the dictionary allocated, but its pages
// are only touched as the second pass reaches them): the dictionary or
// window Linux compresses with (xz and lzma: 32 MiB, scripts/xz_wrap.sh;
// zstd: up to 64 MiB once lowered to what the frame can use) and a few
// MiB of buffers for the other formats. A loader keeps this much free
// when it allocates the next kernel's frames.
func StateReserve(f Format) int64 {
	switch f {
	case XZ, LZMA:
		return 32 << 20
	case Zstd:
		return 64 << 20
	}
	return 4 << 20
}

// Reader decodes the first stream of an in-memory src as Decompress does
// (same formats, checks and errors) but hands the output out as it is
// decoded, so that a kernel can be loaded without its whole vmlinux ever
// being in memory. Memory besides src is the decoder's state: the xz and
// lzma dictionaries as for Decompress, gzip's 32 KiB window, bzip2's
// block tables, one lz4 block (≤ 8 MiB), one lzo block, and zstd's
// window, which the stream declares (Linux: up to 128 MiB) but which is
// first tried at the size the frame or the size trailer gives.
//
// Rewind starts over from the beginning of src, keeping the decoder's
// memory where the library allows: a caller that reads a stream twice
// never holds two dictionaries.
type Reader struct {
	f     Format
	limit int64
	n     int64 // bytes handed out since the start
	s     stream
	err   error // sticky: io.EOF or the wrapped error
}

// stream is one format's decoder over src.
type stream interface {
	io.Reader
	rewind() error
	// wrap maps the decoder's errors to the package's sentinels.
	wrap(error) error
}

// NewReader returns a Reader of the first stream of src, which must be
// in format f, producing at most limit bytes: reading past that is an
// error wrapping ErrTooLarge. Errors from NewReader and Read wrap
// ErrCorrupt, ErrTooLarge or ErrFormat and name the format, as
// Decompress's do. src must not change while the Reader is used.
func NewReader(f Format, src []byte, limit int64) (*Reader, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%v: limit %d: %w", f, limit, ErrTooLarge)
	}
	var s stream
	var err error
	switch f {
	case Gzip:
		s, err = newGzipStream(src)
	case Bzip2:
		s = newBzip2Stream(src)
	case XZ:
		s, err = newXZStream(src)
	case LZMA:
		s, err = newLZMAStream(src, limit)
	case LZ4:
		s, err = newLZ4Stream(src, limit)
	case Zstd:
		s, err = newZstdStream(src, limit)
	case LZO:
		s, err = newLZOStream(src, limit)
	default:
		return nil, fmt.Errorf("%v: %w", f, ErrFormat)
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %w", f, err)
	}
	return &Reader{f: f, limit: limit, s: s}, nil
}

// Format is the format being decoded.
func (r *Reader) Format() Format { return r.f }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.n >= r.limit {
		// At the limit: the stream must end here.
		var one [1]byte
		k, err := r.readSome(one[:])
		switch {
		case k > 0:
			r.err = fmt.Errorf("%v: more than %d bytes: %w", r.f, r.limit, ErrTooLarge)
		case err == io.EOF:
			r.err = io.EOF
		default:
			r.err = fmt.Errorf("%v: %w", r.f, r.s.wrap(err))
		}
		return 0, r.err
	}
	if int64(len(p)) > r.limit-r.n {
		p = p[:r.limit-r.n]
	}
	k, err := r.readSome(p)
	r.n += int64(k)
	if err == io.EOF {
		r.err = io.EOF
	} else if err != nil {
		r.err = fmt.Errorf("%v: %w", r.f, r.s.wrap(err))
	}
	return k, r.err
}

// readSome reads into p until it gets a byte or an error. A decoder that
// keeps returning nothing (the io.Reader contract allows it, hostile
// input can provoke it) would otherwise make callers spin.
func (r *Reader) readSome(p []byte) (int, error) {
	for stalls := 0; ; stalls++ {
		k, err := r.s.Read(p)
		if k > 0 || err != nil {
			return k, err
		}
		if stalls > 100 {
			return 0, fmt.Errorf("%w: the decoder makes no progress", ErrCorrupt)
		}
	}
}

// Rewind starts the stream over from the beginning of src.
func (r *Reader) Rewind() error {
	r.n, r.err = 0, nil
	if err := r.s.rewind(); err != nil {
		r.err = fmt.Errorf("%v: %w", r.f, r.s.wrap(err))
		return r.err
	}
	return nil
}

// Close releases the decoder; the Reader is unusable afterwards.
func (r *Reader) Close() error {
	if c, ok := r.s.(interface{ close() }); ok {
		c.close()
	}
	r.s, r.err = closedStream{}, errors.New("decompress: reader closed")
	return nil
}

type closedStream struct{}

func (closedStream) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }
func (closedStream) rewind() error            { return io.ErrClosedPipe }
func (closedStream) wrap(err error) error     { return err }

// corruptWrap is the error mapping of every format but xz.
type corruptWrap struct{}

func (corruptWrap) wrap(err error) error { return corrupt(err) }

type gzipStream struct {
	corruptWrap
	src []byte
	br  *bytes.Reader
	zr  *gzip.Reader
}

func newGzipStream(src []byte) (*gzipStream, error) {
	s := &gzipStream{src: src, br: bytes.NewReader(src)}
	zr, err := gzip.NewReader(s.br)
	if err != nil {
		return nil, corrupt(err)
	}
	zr.Multistream(false)
	s.zr = zr
	return s, nil
}

func (s *gzipStream) Read(p []byte) (int, error) { return s.zr.Read(p) }

func (s *gzipStream) rewind() error {
	s.br.Reset(s.src)
	err := s.zr.Reset(s.br) // also turns multistream back on
	s.zr.Multistream(false)
	return err
}

type bzip2RewindStream struct {
	corruptWrap
	src []byte
	r   io.Reader
}

func newBzip2Stream(src []byte) *bzip2RewindStream {
	s := &bzip2RewindStream{src: src}
	s.rewind()
	return s
}

func (s *bzip2RewindStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// rewind makes a new decoder: the standard library has no Reset for
// bzip2, and its state is only a few MB.
func (s *bzip2RewindStream) rewind() error {
	s.r = &bzip2Stream{r: bzip2.NewReader(bytes.NewReader(s.src))}
	return nil
}

type xzStream struct {
	src []byte
	br  *bytes.Reader
	zr  *xz.Reader
}

func newXZStream(src []byte) (*xzStream, error) {
	// As decodeXZ: end the input at the stream footer, before the size
	// trailer.
	if n := len(src); n >= 16 && string(src[n-2:]) != "YZ" && string(src[n-6:n-4]) == "YZ" {
		src = src[:n-4]
	}
	s := &xzStream{src: src, br: bytes.NewReader(src)}
	zr, err := xz.NewReader(s.br, xzDictMax)
	if err != nil {
		return nil, xzError(err)
	}
	zr.Multistream(false)
	s.zr = zr
	return s, nil
}

func (s *xzStream) Read(p []byte) (int, error) { return s.zr.Read(p) }

// rewind keeps the dictionary: xz's Reset reuses it.
func (s *xzStream) rewind() error {
	s.br.Reset(s.src)
	err := s.zr.Reset(s.br) // also turns multistream back on
	s.zr.Multistream(false)
	return err
}

func (s *xzStream) wrap(err error) error { return xzError(err) }

type lzmaStream struct {
	corruptWrap
	src   []byte
	limit int64
	zr    *lzma.Reader
}

func newLZMAStream(src []byte, limit int64) (*lzmaStream, error) {
	s := &lzmaStream{src: src, limit: limit}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// open is decodeLZMA's set-up: the declared dictionary lowered to the
// limit.
func (s *lzmaStream) open() error {
	const headerLen = 13
	if len(s.src) < headerLen {
		return fmt.Errorf("%w: truncated lzma header", ErrCorrupt)
	}
	var hdr [headerLen]byte
	copy(hdr[:], s.src)
	dict := int64(binary.LittleEndian.Uint32(hdr[1:]))
	dict = max(min(dict, s.limit), lzma.MinDictCap)
	binary.LittleEndian.PutUint32(hdr[1:], uint32(dict))
	cfg := lzma.ReaderConfig{DictCap: int(dict)}
	zr, err := cfg.NewReader(io.MultiReader(bytes.NewReader(hdr[:]), bytes.NewReader(s.src[headerLen:])))
	if err != nil {
		return corrupt(err)
	}
	s.zr = zr
	return nil
}

func (s *lzmaStream) Read(p []byte) (int, error) { return s.zr.Read(p) }

// rewind makes a new decoder, as the library cannot reset one. Its
// dictionary can be as large as the limit: collect the old one first, so
// that a rewind never holds two.
func (s *lzmaStream) rewind() error {
	s.zr = nil
	runtime.GC()
	return s.open()
}

// blockStream hands out the blocks a block decoder produces one by one.
type blockStream struct {
	corruptWrap
	pending []byte // decoded, not yet handed out
	next    func() ([]byte, error)
}

func (s *blockStream) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		b, err := s.next()
		if err != nil {
			return 0, err
		}
		s.pending = b
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// lz4Stream is decodeLZ4 one block at a time: legacy-frame blocks are
// independent, so each decodes on its own into one reused buffer.
type lz4Stream struct {
	blockStream
	src      []byte
	limit    int64
	pos      int
	produced int64
	buf      []byte
}

func newLZ4Stream(src []byte, limit int64) (*lz4Stream, error) {
	if len(src) < 4 || binary.LittleEndian.Uint32(src) != lz4LegacyMagic {
		return nil, fmt.Errorf("%w: not an lz4 legacy frame", ErrCorrupt)
	}
	s := &lz4Stream{src: src, limit: limit}
	s.next = s.block
	s.rewind()
	return s, nil
}

func (s *lz4Stream) rewind() error {
	s.pos, s.produced, s.pending = 4, 0, nil
	return nil
}

func (s *lz4Stream) block() ([]byte, error) {
	for {
		at, block, size, err := lz4NextBlock(s.src, s.pos)
		if err != nil {
			return nil, err
		}
		if block == nil {
			break
		}
		if s.produced+int64(size) > s.limit {
			return nil, fmt.Errorf("more than %d bytes: %w", s.limit, ErrTooLarge)
		}
		if size > cap(s.buf) {
			s.buf = make([]byte, size)
		}
		k, err := lz4.UncompressBlock(block, s.buf[:size])
		if err != nil || k != size {
			return nil, fmt.Errorf("%w: block at %d: %v (%d of %d bytes)", ErrCorrupt, at, err, k, size)
		}
		s.pos = at + 4 + len(block)
		s.produced += int64(size)
		if size > 0 {
			return s.buf[:size], nil
		}
	}
	s.pos = len(s.src)
	return nil, io.EOF
}

// lzoStream is decodeLZO one block at a time: lzop blocks are
// independent.
type lzoStream struct {
	blockStream
	r        lzoReader
	flags    uint32
	start    int // first block header
	limit    int64
	produced int64
	buf      []byte
	done     bool
}

func newLZOStream(src []byte, limit int64) (*lzoStream, error) {
	s := &lzoStream{r: lzoReader{b: src}, limit: limit}
	flags, err := lzopHeader(&s.r)
	if err != nil {
		return nil, err
	}
	s.flags, s.start = flags, s.r.pos
	s.next = s.block
	return s, nil
}

func (s *lzoStream) rewind() error {
	s.r.pos, s.r.err = s.start, nil
	s.produced, s.pending, s.done = 0, nil, false
	return nil
}

func (s *lzoStream) block() ([]byte, error) {
	if s.done {
		return nil, io.EOF
	}
	r, flags := &s.r, s.flags
	dstLen := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if dstLen == 0 {
		s.done = true
		return nil, io.EOF
	}
	if dstLen > lzopMaxBlock {
		return nil, fmt.Errorf("%w: block of %d bytes at %d", ErrCorrupt, dstLen, r.pos-4)
	}
	srcLen := r.u32()
	var dAdler, dCRC, cAdler, cCRC uint32
	if flags&lzopAdler32D != 0 {
		dAdler = r.u32()
	}
	if flags&lzopCRC32D != 0 {
		dCRC = r.u32()
	}
	if srcLen < dstLen {
		if flags&lzopAdler32C != 0 {
			cAdler = r.u32()
		}
		if flags&lzopCRC32C != 0 {
			cCRC = r.u32()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if srcLen == 0 || srcLen > dstLen {
		return nil, fmt.Errorf("%w: block of %d bytes compressed to %d", ErrCorrupt, dstLen, srcLen)
	}
	block := r.bytes(int(srcLen))
	if r.err != nil {
		return nil, r.err
	}
	if s.produced+int64(dstLen) > s.limit {
		return nil, fmt.Errorf("more than %d bytes: %w", s.limit, ErrTooLarge)
	}
	if int(dstLen) > cap(s.buf) {
		s.buf = make([]byte, dstLen)
	}
	dst := s.buf[:dstLen]
	if srcLen == dstLen {
		copy(dst, block) // stored
	} else {
		if flags&lzopAdler32C != 0 && adler32.Checksum(block) != cAdler {
			return nil, fmt.Errorf("%w: compressed block checksum", ErrCorrupt)
		}
		if flags&lzopCRC32C != 0 && crc32.ChecksumIEEE(block) != cCRC {
			return nil, fmt.Errorf("%w: compressed block checksum", ErrCorrupt)
		}
		n, err := lzo1xDecode(dst, block)
		if err != nil {
			return nil, err
		}
		if n != len(dst) {
			return nil, fmt.Errorf("%w: block decoded to %d bytes, header says %d", ErrCorrupt, n, dstLen)
		}
	}
	if flags&lzopAdler32D != 0 && adler32.Checksum(dst) != dAdler {
		return nil, fmt.Errorf("%w: block checksum mismatch", ErrCorrupt)
	}
	if flags&lzopCRC32D != 0 && crc32.ChecksumIEEE(dst) != dCRC {
		return nil, fmt.Errorf("%w: block checksum mismatch", ErrCorrupt)
	}
	s.produced += int64(dstLen)
	return dst, nil
}

// zstdStream decodes with the library's streaming decoder, whose history
// is a ring as large as the frame's window. A frame may declare any
// window up to zstdMaxWindow, and Linux compresses with `zstd -22
// --ultra` from a pipe, which declares 128 MiB for a ~60 MB vmlinux. No
// match can reach further back than the frame's content size, nor (by
// more than a block) than the limit, as the output would be too large
// first: each frame's window descriptor is lowered to that before the
// decoder sees it. The first
// frame's is first lowered further, to the size trailer; a match past
// that window is an error of the decoder, never wrong output, and on any
// error the stream is decoded again without that lowering, skipping what
// was already handed out, so a lying trailer costs time, not correctness.
type zstdStream struct {
	src     []byte
	dec     *zstd.Decoder
	safe    []patch // lowered windows
	try     []patch // safe, with the first frame's lowered to the trailer
	tried   bool    // decoding with try
	failed  bool    // try failed once: use safe
	out     int64
	skip    int64 // bytes still to discard after a restart
	skipBuf []byte
}

// patch replaces the byte at off.
type patch struct {
	off int
	b   byte
}

func newZstdStream(src []byte, limit int64) (*zstdStream, error) {
	window, fcs, err := zstdFrameHeader(src)
	if err != nil {
		return nil, err
	}
	if fcs > limit {
		return nil, fmt.Errorf("frame declares %d bytes, more than %d: %w", fcs, limit, ErrTooLarge)
	}
	if window > zstdMaxWindow {
		return nil, fmt.Errorf("%w: window of %d bytes", ErrCorrupt, window)
	}
	s := &zstdStream{src: src}
	// Never below a block: the decoder caps blocks at the window.
	lower := func(to []patch, f zstdFrame, n int64) []patch {
		if wd, size := zstdWindowFor(max(n, zstdBlockMax)); size < f.window {
			return append(to, patch{f.wdOff, wd})
		}
		return to
	}
	t, ok := SizeTrailer(src)
	trailer := ok && t > 0 && int64(t) <= limit
	// As for Decompress, frames may declare up to this; larger ones are
	// left for the decoder to refuse.
	maxWindow := max(limit, window, 1)
	var try []patch
	for _, f := range zstdFrames(src) {
		if f.window > maxWindow {
			continue
		}
		// A block starting before the limit (or the content size) is
		// decoded whole before the output is found too large: its
		// matches may reach one block further back.
		n := limit
		if f.fcs >= 0 {
			n = min(n, f.fcs)
		}
		n += zstdBlockMax
		s.safe = lower(s.safe, f, n)
		if trailer {
			n = min(n, int64(t)) // the whole output, so also each frame's
		}
		try = lower(try, f, n)
	}
	if !slices.Equal(try, s.safe) {
		s.try = try
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow),
		zstd.WithDecoderMaxMemory(uint64(maxWindow)))
	if err != nil {
		return nil, corrupt(err)
	}
	s.dec = dec
	if err := s.rewind(); err != nil {
		dec.Close()
		return nil, corrupt(err)
	}
	return s, nil
}

// input is src with the window descriptors lowered.
func (s *zstdStream) input() io.Reader {
	s.tried = s.try != nil && !s.failed
	ps := s.safe
	if s.tried {
		ps = s.try
	}
	var rs []io.Reader
	at := 0
	for _, p := range ps {
		rs = append(rs, bytes.NewReader(s.src[at:p.off]), bytes.NewReader([]byte{p.b}))
		at = p.off + 1
	}
	return io.MultiReader(append(rs, bytes.NewReader(s.src[at:]))...)
}

func (s *zstdStream) rewind() error {
	s.out, s.skip = 0, 0
	return s.dec.Reset(s.input())
}

func (s *zstdStream) Read(p []byte) (int, error) {
	for {
		for s.skip > 0 {
			if s.skipBuf == nil {
				s.skipBuf = make([]byte, 32<<10)
			}
			n, err := s.dec.Read(s.skipBuf[:min(int64(len(s.skipBuf)), s.skip)])
			s.skip -= int64(n)
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF // shorter than the first time
				}
				return 0, err
			}
		}
		n, err := s.dec.Read(p)
		if errors.Is(err, zstd.ErrMagicMismatch) && s.out+int64(n) > 0 {
			// A complete frame followed by something else (the size
			// trailer, a further archive), as for Decompress.
			err = io.EOF
		}
		if err != nil && err != io.EOF && s.tried {
			// Again without the trailer's window, skipping what the
			// caller already has.
			s.failed = true
			done := s.out
			if rerr := s.rewind(); rerr != nil {
				return 0, rerr
			}
			s.skip, s.out = done, done
			continue
		}
		s.out += int64(n)
		return n, err
	}
}

func (s *zstdStream) wrap(err error) error { return corrupt(err) }

func (s *zstdStream) close() { s.dec.Close() }

// zstdFrame is a frame's window descriptor (offset in src), window and
// content size (-1 if not given).
type zstdFrame struct {
	wdOff       int
	window, fcs int64
}

// zstdFrames walks the zstd frames at the start of src (RFC 8878 §3.1),
// through block headers only, and returns those that have a window
// descriptor. It stops at anything else, which the decoder then reports
// or ends on.
func zstdFrames(src []byte) []zstdFrame {
	var frames []zstdFrame
	off := 0
	for len(src)-off >= 8 {
		m := binary.LittleEndian.Uint32(src[off:])
		if m&0xfffffff0 == 0x184d2a50 { // skippable
			n := uint64(binary.LittleEndian.Uint32(src[off+4:]))
			if n > uint64(len(src)-off-8) {
				break
			}
			off += 8 + int(n)
			continue
		}
		if m != 0xfd2fb528 {
			break
		}
		fhd := src[off+4]
		single := fhd&0x20 != 0
		fcsLen := [4]int{0, 2, 4, 8}[fhd>>6]
		if fhd>>6 == 0 && single {
			fcsLen = 1
		}
		hdr := 5 + [4]int{0, 1, 2, 4}[fhd&3] + fcsLen
		if !single {
			hdr++
		}
		if len(src)-off < hdr {
			break
		}
		window, fcs, err := zstdFrameHeader(src[off:])
		if err != nil {
			break
		}
		if !single {
			frames = append(frames, zstdFrame{off + 5, window, fcs})
		}
		off += hdr
		for last := false; !last; {
			if len(src)-off < 3 {
				return frames
			}
			bh := int(src[off]) | int(src[off+1])<<8 | int(src[off+2])<<16
			last = bh&1 != 0
			size := bh >> 3
			switch bh >> 1 & 3 {
			case 1: // RLE: one byte
				size = 1
			case 3:
				return frames
			}
			off += 3 + size
			if off > len(src) {
				return frames
			}
		}
		if fhd&4 != 0 {
			off += 4 // content checksum
		}
	}
	return frames
}

// zstdWindowFor returns the smallest window descriptor whose window is at
// least n bytes, and that window.
func zstdWindowFor(n int64) (byte, int64) {
	for exp := int64(0); exp < 31; exp++ {
		base := int64(1) << (10 + exp)
		for m := int64(0); m < 8; m++ {
			if w := base + base/8*m; w >= n {
				return byte(exp<<3 | m), w
			}
		}
	}
	return 31 << 3, 1 << 41
}
