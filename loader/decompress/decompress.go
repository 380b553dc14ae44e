// Package decompress decodes every compression format a Linux kernel payload
// (and a compressed initrd) can use: gzip, bzip2, xz (with the x86 BCJ
// filter), lzma, lz4 legacy frames, zstd and lzo.
//
// The input is always a whole []byte. Decompress returns the output as one
// []byte: the decoders write straight into a single output buffer, sized
// in advance from the 4-byte size trailer Linux appends to every payload
// when that size is plausible (≤ the limit), so a 66 MB vmlinux is not
// buffered twice. Reader (stream.go) hands the output out as it is
// decoded instead, with the same checks and errors, for the bootloader,
// which writes a vmlinux's segments straight into the next kernel's
// memory and never holds it whole. Output is bounded by a caller-given
// limit (the domain's free memory): a stream that would produce more is
// an error wrapping ErrTooLarge, never an out-of-memory.
//
// Memory besides the input and the output: xz allocates the dictionary its
// stream declares (Debian's kernels: 32 MiB; more than 64 MiB is refused),
// lzma at most min(declared, limit), bzip2 about 4 MB of block state; gzip,
// lz4, zstd and lzo decode in the output buffer itself (zstd uses it as its
// window, so a kernel's declared 128 MiB window costs nothing).
//
// Decompress decodes the first compressed stream of src and ignores what
// follows it, as Linux does: a kernel payload ends with the size trailer,
// and an initrd may be several archives back to back.
//
// Libraries: stdlib for gzip and bzip2, github.com/therootcompany/xz (the
// only Go xz decoder that handles the x86 BCJ filter Debian kernels use),
// github.com/ulikunitz/xz/lzma, github.com/klauspost/compress/zstd and
// github.com/pierrec/lz4/v4 for the lz4 block format. Two small parts are
// our own: the lz4 legacy-frame container (a few lines, so that each
// block's size is known before it is decoded and it decodes straight into
// the output, instead of through the library's 8 MiB block buffers) and
// all of lzo (lzo.go): none of the decoder modules the project pins
// provides LZO1X, and the format is small enough to own and audit.
package decompress

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/therootcompany/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Format is a compression format, identified by its magic bytes.
type Format int

// The formats, in the order Xen's bzImage loader probes them.
const (
	None Format = iota // not compressed (or not recognised)
	Gzip
	Bzip2
	XZ
	Zstd
	LZMA
	LZO
	LZ4
)

// Formats lists every compressed format, for callers that iterate.
var Formats = []Format{Gzip, Bzip2, XZ, Zstd, LZMA, LZO, LZ4}

var formatNames = [...]string{
	None:  "none",
	Gzip:  "gzip",
	Bzip2: "bzip2",
	XZ:    "xz",
	Zstd:  "zstd",
	LZMA:  "lzma",
	LZO:   "lzo",
	LZ4:   "lz4",
}

// String returns the name users know the format by ("zstd", "lz4", …).
func (f Format) String() string {
	if f >= 0 && int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Errors. Every error Decompress returns wraps one of these.
var (
	ErrTooLarge = errors.New("decompressed data exceeds the memory limit")
	ErrCorrupt  = errors.New("corrupt compressed data")
	ErrFormat   = errors.New("unknown compression format")
)

// Magic byte sequences. lzma has no real magic: Linux (lib/decompress.c)
// and we take the properties byte of `lzma -9` and two zero bytes of its
// dictionary size; Xen checks only two bytes.
var magics = []struct {
	f     Format
	magic string
}{
	{Gzip, "\x1f\x8b"},
	{Bzip2, "BZh"},
	{XZ, "\xfd7zXZ\x00"},
	{Zstd, "\x28\xb5\x2f\xfd"},
	{LZMA, "\x5d\x00\x00"},
	{LZO, "\x89LZO\x00"},
	{LZ4, "\x02\x21\x4c\x18"},
}

// Detect returns the format whose magic starts b, or None.
func Detect(b []byte) Format {
	for _, m := range magics {
		if bytes.HasPrefix(b, []byte(m.magic)) {
			return m.f
		}
	}
	return None
}

// SizeTrailer returns the little-endian 32-bit value in the last four
// bytes of src: Linux's build appends the uncompressed size there for every
// payload format (gzip's own ISIZE field is the same thing).
func SizeTrailer(src []byte) (uint32, bool) {
	if len(src) < 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(src[len(src)-4:]), true
}

// Decompress decodes the first stream of src, which must be in format f,
// producing at most limit bytes.
func Decompress(f Format, src []byte, limit int64) ([]byte, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%v: limit %d: %w", f, limit, ErrTooLarge)
	}
	hint := sizeHint(src, limit)
	var out []byte
	var err error
	switch f {
	case Gzip:
		out, err = decodeGzip(src, hint, limit)
	case Bzip2:
		out, err = decodeBzip2(src, hint, limit)
	case XZ:
		out, err = decodeXZ(src, hint, limit)
	case LZMA:
		out, err = decodeLZMA(src, hint, limit)
	case LZ4:
		out, err = decodeLZ4(src, hint, limit)
	case Zstd:
		out, err = decodeZstd(src, hint, limit)
	case LZO:
		out, err = decodeLZO(src, hint, limit)
	default:
		return nil, fmt.Errorf("%v: %w", f, ErrFormat)
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %w", f, err)
	}
	return out, nil
}

// sizeHint is the size to allocate up front: the trailer if it is
// plausible, otherwise 0 (grow as needed). A lying trailer costs at most
// one allocation of limit bytes, which the caller said it can afford.
func sizeHint(src []byte, limit int64) int64 {
	n, ok := SizeTrailer(src)
	if !ok || n == 0 || int64(n) > limit {
		return 0
	}
	return int64(n)
}

// minGrow is the smallest growth step when the output size is not known.
const minGrow = 1 << 20

// readAll reads r to EOF into one buffer of initial capacity hint that
// grows up to limit; one byte more than limit is ErrTooLarge. Decoders
// write straight into the buffer, so with a right hint nothing is copied.
func readAll(r io.Reader, hint, limit int64) ([]byte, error) {
	capacity := hint
	if capacity <= 0 {
		capacity = min(int64(minGrow), limit)
	}
	buf := make([]byte, 0, capacity)
	stalls := 0
	for {
		if len(buf) == cap(buf) {
			// Full: usually the hint was exact and the stream is at its
			// end. Probe before growing, so that an exact hint never
			// costs a second buffer.
			var one [1]byte
			n, err := io.ReadFull(r, one[:])
			if n == 0 {
				if err == io.EOF {
					return buf, nil
				}
				return nil, err
			}
			if int64(len(buf)) >= limit {
				return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
			}
			grown := min(max(2*int64(cap(buf)), minGrow), limit)
			nb := make([]byte, len(buf), grown)
			copy(nb, buf)
			buf = append(nb, one[0])
			continue
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		// A decoder that keeps returning nothing without an error (the
		// io.Reader contract allows it, hostile input can provoke it)
		// would spin here forever.
		if n == 0 {
			if stalls++; stalls > 100 {
				return nil, fmt.Errorf("%w: the decoder makes no progress", ErrCorrupt)
			}
		} else {
			stalls = 0
		}
	}
}

func corrupt(err error) error {
	if err == nil || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

func decodeGzip(src []byte, hint, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, corrupt(err)
	}
	zr.Multistream(false)
	out, err := readAll(zr, hint, limit)
	return out, corrupt(err)
}

// bzip2's reader treats anything after a stream as the start of another
// one; this is the error it gives when what follows is not (the size
// trailer). The stream's CRC has been checked by then.
const bzip2Trailing = "bad magic value in continuation file"

func decodeBzip2(src []byte, hint, limit int64) ([]byte, error) {
	out, err := readAll(&bzip2Stream{r: bzip2.NewReader(bytes.NewReader(src))}, hint, limit)
	return out, corrupt(err)
}

// bzip2Stream ends the stream at the end of the first bzip2 stream.
type bzip2Stream struct{ r io.Reader }

func (b *bzip2Stream) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var se bzip2.StructuralError
	if errors.As(err, &se) && string(se) == bzip2Trailing {
		err = io.EOF
	}
	return n, err
}

// xzDictMax bounds the LZMA2 dictionary the xz decoder allocates besides
// the output: the library allocates what the stream declares (Debian's
// kernels: 32 MiB, `xz -9`: 64 MiB). A larger one is ErrTooLarge.
const xzDictMax = 64 << 20

func decodeXZ(src []byte, hint, limit int64) ([]byte, error) {
	// The xz decoder would read the size trailer after the stream as
	// stream padding (which must be zero bytes, and the trailer may begin
	// with zeros): end the input at the stream footer ("YZ"), which
	// closes a stream of a multiple of 4 bytes.
	if n := len(src); n >= 16 && string(src[n-2:]) != "YZ" && string(src[n-6:n-4]) == "YZ" {
		src = src[:n-4]
	}
	zr, err := xz.NewReader(bytes.NewReader(src), xzDictMax)
	if err != nil {
		return nil, xzError(err)
	}
	zr.Multistream(false)
	out, err := readAll(zr, hint, limit)
	return out, xzError(err)
}

func xzError(err error) error {
	if errors.Is(err, xz.ErrMemlimit) {
		return fmt.Errorf("dictionary larger than %d MiB: %w", xzDictMax>>20, ErrTooLarge)
	}
	return corrupt(err)
}

func decodeLZMA(src []byte, hint, limit int64) ([]byte, error) {
	// The .lzma header: properties (1 byte), dictionary size (LE32),
	// uncompressed size (LE64). The library allocates the declared
	// dictionary (`lzma -9`: 64 MiB); no match can reach further back
	// than the output is long, so we lower the declared size to the limit
	// and decode with at most that much dictionary.
	const headerLen = 13
	if len(src) < headerLen {
		return nil, fmt.Errorf("%w: truncated lzma header", ErrCorrupt)
	}
	var hdr [headerLen]byte
	copy(hdr[:], src)
	dict := int64(binary.LittleEndian.Uint32(hdr[1:]))
	dict = max(min(dict, limit), lzma.MinDictCap)
	binary.LittleEndian.PutUint32(hdr[1:], uint32(dict))
	cfg := lzma.ReaderConfig{DictCap: int(dict)}
	zr, err := cfg.NewReader(io.MultiReader(bytes.NewReader(hdr[:]), bytes.NewReader(src[headerLen:])))
	if err != nil {
		return nil, corrupt(err)
	}
	out, err := readAll(zr, hint, limit)
	return out, corrupt(err)
}
