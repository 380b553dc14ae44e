package decompress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
)

// readStream reads a whole Reader in odd-sized pieces, to catch state
// kept wrongly between calls.
func readStream(f Format, src []byte, limit int64) ([]byte, error) {
	r, err := NewReader(f, src, limit)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readAllOdd(r)
}

func readAllOdd(r io.Reader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 7919)
	for i := 0; ; i++ {
		n, err := r.Read(buf[:1+i*4099%len(buf)])
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// sameAsDecompress checks that the Reader and Decompress agree on src:
// the same output, or both an error wrapping the same sentinel.
func sameAsDecompress(t *testing.T, what string, f Format, src []byte, limit int64) {
	t.Helper()
	want, werr := Decompress(f, src, limit)
	got, gerr := readStream(f, src, limit)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: Decompress: %v; Reader: %v", what, werr, gerr)
	}
	if werr != nil {
		if !isOurs(gerr) {
			t.Fatalf("%s: Reader error %v wraps no sentinel", what, gerr)
		}
		for _, s := range []error{ErrCorrupt, ErrTooLarge} {
			if errors.Is(werr, s) != errors.Is(gerr, s) {
				t.Errorf("%s: Decompress: %v; Reader: %v", what, werr, gerr)
			}
		}
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: Reader gives %d bytes, Decompress %d, and they differ", what, len(got), len(want))
	}
}

func TestReaderSamples(t *testing.T) {
	for f, name := range sampleFiles {
		src := readSample(t, name)
		for _, claim := range []uint32{0, 1, 100, 14680, 1 << 31, 0xffffffff} {
			sameAsDecompress(t, name, f, binary.LittleEndian.AppendUint32(bytes.Clone(src), claim), 1<<20)
		}
		sameAsDecompress(t, name+" (no trailer)", f, src, 1<<20)
		sameAsDecompress(t, name+" (limit)", f, src, 1000)
	}
}

func TestReaderTools(t *testing.T) {
	testassets.NeedTools(t, "gzip", "bzip2", "xz", "lzma", "lz4", "zstd", "lzop")
	data := testCorpus(3 << 20)
	for _, tc := range toolCases {
		src := compressWith(t, data, true, tc.argv...)
		got, err := readStream(tc.f, src, 8<<20)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%v: %d bytes, %v", tc.argv, len(got), err)
		}
		sameAsDecompress(t, tc.argv[0], tc.f, src, 1<<20) // too small
	}
}

// TestReaderTruncatedCorrupted: every cut and every flipped byte of the
// samples gives what Decompress gives.
func TestReaderTruncatedCorrupted(t *testing.T) {
	for f, name := range sampleFiles {
		src := readSample(t, name)
		for cut := 0; cut < len(src); cut += 1 + cut/16 {
			sameAsDecompress(t, name+" cut", f, src[:cut], 1<<20)
		}
		for pos := 0; pos < len(src); pos += 97 {
			bad := bytes.Clone(src)
			bad[pos] ^= 0x55
			sameAsDecompress(t, name+" flipped", f, bad, 1<<20)
		}
	}
}

// TestReaderBombs: past the limit is ErrTooLarge, and memory stays
// bounded by the decoder's state, not by the bomb.
func TestReaderBombs(t *testing.T) {
	testassets.NeedTools(t, "gzip", "bzip2", "xz", "lzma", "lz4", "zstd", "lzop")
	zeros := make([]byte, 64<<20)
	const limit = 4 << 20
	for _, argv := range [][]string{
		{"gzip", "-1"}, {"bzip2", "-1"}, {"xz", "--x86", "--lzma2=preset=0"}, {"lzma", "-0"},
		{"lz4", "-l", "-1"}, {"zstd", "-q", "-1"}, {"lzop", "-1"},
	} {
		src := compressWith(t, zeros, false, argv...)
		src = binary.LittleEndian.AppendUint32(src, 1000) // understated
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := NewReader(Detect(src), src, limit)
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%v: %v, want ErrTooLarge", argv, err)
		}
		// lz4's 8 MiB block is the largest state here.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 20<<20 {
			t.Errorf("%v: allocated %d MiB", argv, alloc>>20)
		}
	}
}

// TestReaderRewind: a rewound Reader gives the same bytes again, also
// after stopping halfway.
func TestReaderRewind(t *testing.T) {
	want := readSample(t, "sample.bin")
	for f, name := range sampleFiles {
		r, err := NewReader(f, readSample(t, name), 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		half := make([]byte, len(want)/2)
		if _, err := io.ReadFull(r, half); err != nil || !bytes.Equal(half, want[:len(half)]) {
			t.Fatalf("%s: first half: %v", name, err)
		}
		for i := 0; i < 2; i++ {
			if err := r.Rewind(); err != nil {
				t.Fatalf("%s: rewind: %v", name, err)
			}
			got, err := readAllOdd(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: after rewind %d: %d bytes, %v", name, i, len(got), err)
			}
		}
		r.Close()
		if _, err := r.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: read after Close", name)
		}
	}
}

// TestZstdWindow: Linux's `zstd -22 --ultra` from a pipe declares a
// 128 MiB window; the Reader decodes in a window of the trailer's size,
// and with a trailer that lies it still decodes right, again with the
// declared window.
func TestZstdWindow(t *testing.T) {
	testassets.NeedTools(t, "zstd")
	// Noise repeated 3 MiB later: a match that a 1 MiB window cannot reach.
	noise := testCorpus(3 << 20)
	data := append(bytes.Clone(noise), noise...)
	plain := compressWith(t, data, false, "zstd", "-q", "-19", "--long=27")
	if w, _, _ := zstdFrameHeader(plain); w < 64<<20 {
		t.Fatalf("declared window %d, want a large one", w)
	}
	for _, tc := range []struct {
		name     string
		trailer  uint32
		declared bool   // decoded again with the declared window
		maxMiB   uint64 // allocated while decoding
	}{
		{"true trailer", uint32(len(data)), false, 12},
		{"trailer too small", 1 << 20, true, 160},
		{"no usable trailer", 0, false, 160},
	} {
		src := binary.LittleEndian.AppendUint32(bytes.Clone(plain), tc.trailer)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r, err := NewReader(Zstd, src, 256<<20)
		if err != nil {
			t.Fatal(err)
		}
		cw := &cmpWriter{want: data}
		_, err = io.Copy(cw, r)
		runtime.ReadMemStats(&after)
		if err != nil || cw.bad || cw.off != len(data) {
			t.Errorf("%s: %d bytes (differ: %v), %v", tc.name, cw.off, cw.bad, err)
		}
		if d := r.s.(*zstdStream).failed; d != tc.declared {
			t.Errorf("%s: decoded with the declared window: %v, want %v", tc.name, d, tc.declared)
		}
		if alloc := (after.TotalAlloc - before.TotalAlloc) >> 20; alloc > tc.maxMiB {
			t.Errorf("%s: allocated %d MiB", tc.name, alloc)
		}
		r.Close()
	}
	for _, tc := range []struct {
		n    int64
		want int64
	}{{1, 1 << 10}, {1 << 10, 1 << 10}, {1<<10 + 1, 1<<10 + 1<<7}, {57575096, 56 << 20}, {1 << 27, 1 << 27}} {
		if _, w := zstdWindowFor(tc.n); w != tc.want {
			t.Errorf("zstdWindowFor(%d) = %d, want %d", tc.n, w, tc.want)
		}
	}
}

// cmpWriter compares what is written to it with want.
type cmpWriter struct {
	want []byte
	off  int
	bad  bool
}

func (c *cmpWriter) Write(p []byte) (int, error) {
	if c.off+len(p) > len(c.want) || !bytes.Equal(p, c.want[c.off:c.off+len(p)]) {
		c.bad = true
	}
	c.off += len(p)
	return len(p), nil
}

func TestReaderBadArguments(t *testing.T) {
	if _, err := NewReader(None, []byte{1, 2, 3}, 100); !errors.Is(err, ErrFormat) {
		t.Errorf("None: %v", err)
	}
	if _, err := NewReader(Gzip, readSample(t, "sample.gz"), 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit 0: %v", err)
	}
}

// TestZstdHugeWindow: a frame may declare up to a 2 GiB window, which
// the streaming decoder would allocate; the Reader's window is bounded by
// the limit, in every frame, and it accepts and refuses what Decompress
// does.
func TestZstdHugeWindow(t *testing.T) {
	testassets.NeedTools(t, "zstd")
	data := testCorpus(2 << 20)
	one := compressWith(t, data, false, "zstd", "-q", "-1")
	frames := zstdFrames(one)
	if len(frames) != 1 || frames[0].fcs >= 0 {
		t.Fatalf("frames %+v, want one without a content size", frames)
	}
	withWindow := func(exp byte) []byte {
		b := bytes.Clone(one)
		b[frames[0].wdOff] = exp << 3
		return b
	}
	const limit = 16 << 20
	for _, tc := range []struct {
		name string
		src  []byte
		ok   bool
	}{
		{"first frame 1 GiB", withWindow(20), true},
		{"then 512 MiB", append(withWindow(20), withWindow(19)...), true},
		// Decompress refuses a later frame's window above the limit
		// and the first frame's.
		{"second frame 1 GiB", append(bytes.Clone(one), withWindow(20)...), false},
	} {
		sameAsDecompress(t, tc.name, Zstd, tc.src, limit)
		if !tc.ok {
			continue
		}
		want, _ := Decompress(Zstd, tc.src, limit)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r, err := NewReader(Zstd, tc.src, limit)
		if err != nil {
			t.Fatal(err)
		}
		cw := &cmpWriter{want: want}
		_, err = io.Copy(cw, r)
		runtime.ReadMemStats(&after)
		r.Close()
		if err != nil || cw.bad || cw.off != len(want) {
			t.Errorf("%s: %d bytes (differ: %v), %v", tc.name, cw.off, cw.bad, err)
		}
		if alloc := (after.TotalAlloc - before.TotalAlloc) >> 20; alloc > 40 {
			t.Errorf("%s: allocated %d MiB", tc.name, alloc)
		}
	}
}
