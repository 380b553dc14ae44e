package decompress

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzDecoder feeds arbitrary bytes to one decoder front end: it must
// not panic, must stay within the limit, every error must wrap one of
// the package's sentinels, and the streaming Reader must agree with it.
func fuzzDecoder(f *testing.F, format Format) {
	f.Add(readSample(f, sampleFiles[format]))
	f.Add([]byte(magicOf(format)))
	f.Add(append([]byte(magicOf(format)), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Small: instrumented decoders are slow, and one long execution at
		// the end of -fuzztime fails the run with "context deadline exceeded".
		const limit = 32 << 10
		out, err := Decompress(format, data, limit)
		// The streaming Reader must agree: same bytes, or an error too.
		sout, serr := readStream(format, data, limit)
		if (err == nil) != (serr == nil) || err == nil && !bytes.Equal(out, sout) {
			t.Fatalf("Decompress: %d bytes, %v; Reader: %d bytes, %v", len(out), err, len(sout), serr)
		}
		if serr != nil && !isOurs(serr) {
			t.Fatalf("Reader error %v wraps no sentinel", serr)
		}
		if err != nil {
			if !isOurs(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if len(out) > limit {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
	})
}

func magicOf(f Format) string {
	for _, m := range magics {
		if m.f == f {
			return m.magic
		}
	}
	return ""
}

func isOurs(err error) bool {
	for _, s := range []error{ErrCorrupt, ErrTooLarge, ErrFormat} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func FuzzGzip(f *testing.F)  { fuzzDecoder(f, Gzip) }
func FuzzBzip2(f *testing.F) { fuzzDecoder(f, Bzip2) }
func FuzzXZ(f *testing.F)    { fuzzDecoder(f, XZ) }
func FuzzLZMA(f *testing.F)  { fuzzDecoder(f, LZMA) }
func FuzzLZ4(f *testing.F)   { fuzzDecoder(f, LZ4) }
func FuzzZstd(f *testing.F)  { fuzzDecoder(f, Zstd) }
func FuzzLZO(f *testing.F)   { fuzzDecoder(f, LZO) }

// FuzzLZO1X drives our LZO1X block decoder directly (the lzop container
// checksums would otherwise stop most mutations before it).
func FuzzLZO1X(f *testing.F) {
	f.Add([]byte{17 + 4, 'a', 'b', 'c', 'd', 0x6c, 0x00, 0x11, 0, 0}, 64)
	f.Add([]byte{17 + 1, 'a', 32, 5, 0, 0, 0x11, 0, 0}, 64)
	f.Add(bytes.Repeat([]byte{0}, 40), 1<<16)
	f.Fuzz(func(t *testing.T, src []byte, n int) {
		n = min(max(n, 0), 1<<20)
		dst := make([]byte, n)
		w, err := lzo1xDecode(dst, src)
		if w < 0 || w > n {
			t.Fatalf("wrote %d of %d", w, n)
		}
		if err != nil && !isOurs(err) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
	})
}
