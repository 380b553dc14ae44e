package decompress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
)

var sampleFiles = map[Format]string{
	Gzip:  "sample.gz",
	Bzip2: "sample.bz2",
	XZ:    "sample.xz",
	LZMA:  "sample.lzma",
	LZ4:   "sample.lz4",
	Zstd:  "sample.zst",
	LZO:   "sample.lzo",
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDetect(t *testing.T) {
	tests := []struct {
		magic []byte
		want  Format
	}{
		{[]byte{0x1f, 0x8b, 0x08}, Gzip},
		{[]byte("BZh9"), Bzip2},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0x00, 0x00}, XZ},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
		{[]byte{0x5d, 0x00, 0x00, 0x00, 0x04}, LZMA},
		{[]byte{0x89, 'L', 'Z', 'O', 0x00, 0x0d}, LZO},
		{[]byte{0x02, 0x21, 0x4c, 0x18}, LZ4},
		{[]byte{0x04, 0x22, 0x4d, 0x18}, None}, // lz4 frame format: not a kernel payload
		{[]byte("070701"), None},               // cpio
		{[]byte{0x1f}, None},
		{nil, None},
	}
	for _, tc := range tests {
		if got := Detect(tc.magic); got != tc.want {
			t.Errorf("Detect(% x) = %v, want %v", tc.magic, got, tc.want)
		}
	}
	names := map[string]bool{}
	for _, f := range Formats {
		names[f.String()] = true
	}
	for _, n := range []string{"gzip", "bzip2", "xz", "lzma", "lz4", "zstd", "lzo"} {
		if !names[n] {
			t.Errorf("no format named %q", n)
		}
	}
}

// TestSamples decodes the files in testdata, made by the real tools
// (gzip -9, bzip2 -9, xz --x86, lzma -9, lz4 -l -9, zstd -19, lzop -9),
// with and without a Linux size trailer.
func TestSamples(t *testing.T) {
	want := readSample(t, "sample.bin")
	for f, name := range sampleFiles {
		src := readSample(t, name)
		if got := Detect(src); got != f {
			t.Errorf("%s: detected %v", name, got)
		}
		trailer := binary.LittleEndian.AppendUint32(bytes.Clone(src), uint32(len(want)))
		for _, in := range [][]byte{src, trailer} {
			out, err := Decompress(f, in, 1<<20)
			if err != nil {
				t.Errorf("%s (%d bytes): %v", name, len(in), err)
				continue
			}
			if !bytes.Equal(out, want) {
				t.Errorf("%s: output differs (%d bytes, want %d)", name, len(out), len(want))
			}
		}
	}
}

// testCorpus is a few MiB of mixed data: text, noise, zeros, a pattern.
func testCorpus(n int) []byte {
	r := rand.New(rand.NewSource(1))
	var b bytes.Buffer
	for b.Len() < n {
		switch r.Intn(4) {
		case 0:
			b.WriteString("the kernel is loaded at VIRT_BASE and the P2M list follows; ")
		case 1:
			noise := make([]byte, 1+r.Intn(4096))
			r.Read(noise)
			b.Write(noise)
		case 2:
			b.Write(make([]byte, r.Intn(65536)))
		case 3:
			for i := 0; i < 1000; i++ {
				b.WriteByte(byte(i * i))
			}
		}
	}
	return b.Bytes()[:n]
}

// compressWith runs a host compressor over data (on stdin, as Linux's
// build does) and appends the size trailer if asked.
func compressWith(t testing.TB, data []byte, trailer bool, argv ...string) []byte {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	if trailer {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(data)))
	}
	return out
}

// The compressor command lines Linux's build uses (scripts/Makefile.lib),
// plus other levels.
var toolCases = []struct {
	f    Format
	argv []string
}{
	{Gzip, []string{"gzip", "-n", "-9"}},
	{Gzip, []string{"gzip", "-1"}},
	{Bzip2, []string{"bzip2", "-9"}},
	{XZ, []string{"xz", "--check=crc32", "--x86", "--lzma2=dict=1MiB"}},
	{XZ, []string{"xz", "-0"}},
	{LZMA, []string{"lzma", "-9"}},
	{LZMA, []string{"lzma", "-0"}},
	{LZ4, []string{"lz4", "-l", "-9"}},
	{LZ4, []string{"lz4", "-l", "-1"}},
	{Zstd, []string{"zstd", "-q", "-22", "--ultra"}},
	{Zstd, []string{"zstd", "-q", "-1"}},
	{LZO, []string{"lzop", "-9"}},
	{LZO, []string{"lzop", "-1"}},
}

func TestRoundTripTools(t *testing.T) {
	testassets.NeedTools(t, "gzip", "bzip2", "xz", "lzma", "lz4", "zstd", "lzop")
	data := testCorpus(3 << 20)
	for _, tc := range toolCases {
		plain := compressWith(t, data, false, tc.argv...)
		withTrailer := binary.LittleEndian.AppendUint32(bytes.Clone(plain), uint32(len(data)))
		for i, src := range [][]byte{plain, withTrailer} {
			trailer := i == 1
			if got := Detect(src); got != tc.f {
				t.Errorf("%v: detected %v, want %v", tc.argv, got, tc.f)
			}
			out, err := Decompress(tc.f, src, 8<<20)
			if err != nil {
				t.Errorf("%v (trailer %v): %v", tc.argv, trailer, err)
				continue
			}
			if !bytes.Equal(out, data) {
				t.Errorf("%v (trailer %v): output differs (%d bytes)", tc.argv, trailer, len(out))
			}
		}
	}
}

// TestExactHint: with a right size trailer the output is allocated once:
// no format copies its output into a bigger buffer.
func TestExactHint(t *testing.T) {
	testassets.NeedTools(t, "gzip", "bzip2", "xz", "lzma", "lz4", "zstd", "lzop")
	data := testCorpus(16 << 20)
	for _, argv := range [][]string{
		{"gzip", "-1"}, {"bzip2", "-1"}, {"xz", "--x86", "--lzma2=preset=0"}, {"lzma", "--lzma1=preset=0"},
		{"lz4", "-l", "-1"}, {"zstd", "-q", "-1"}, {"lzop", "-1"},
	} {
		src := compressWith(t, data, true, argv...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		out, err := Decompress(Detect(src), src, 64<<20)
		runtime.ReadMemStats(&after)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("%v: %d bytes, %v", argv, len(out), err)
		}
		// One output buffer (16 MiB) plus decoder state (bzip2's block
		// tables, dictionaries of ≤ 1 MiB, zstd's slack): a second copy
		// of the output would add 32 MiB.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 24<<20 {
			t.Errorf("%v: allocated %d MiB for 16 MiB of output", argv, alloc>>20)
		}
	}
}

// TestTruncated cuts every sample at many points: each prefix must give
// an error (lz4 legacy frames have no end mark, so a cut at a block
// boundary is a valid shorter stream: its output must then be a prefix).
func TestTruncated(t *testing.T) {
	want := readSample(t, "sample.bin")
	for f, name := range sampleFiles {
		src := readSample(t, name)
		for cut := 0; cut < len(src); cut += 1 + cut/16 {
			out, err := Decompress(f, src[:cut], 1<<20)
			if err == nil && (f != LZ4 || !bytes.HasPrefix(want, out) || len(out) == len(want)) {
				t.Errorf("%s cut at %d: no error (%d bytes out)", name, cut, len(out))
			}
			if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s cut at %d: error %v is not ErrCorrupt", name, cut, err)
			}
		}
	}
}

// TestCorrupted flips bytes inside each sample. Formats with checksums
// (gzip, bzip2, xz, zstd, lzo) must report every flip; lzma and lz4 have
// none and must either fail or produce different output.
func TestCorrupted(t *testing.T) {
	want := readSample(t, "sample.bin")
	checksummed := map[Format]bool{Gzip: true, Bzip2: true, XZ: true, Zstd: true, LZO: true}
	for f, name := range sampleFiles {
		src := readSample(t, name)
		for pos := 16; pos < len(src)-8; pos += 97 {
			bad := bytes.Clone(src)
			bad[pos] ^= 0x55
			out, err := Decompress(f, bad, 1<<20)
			if err == nil && (checksummed[f] || bytes.Equal(out, want)) {
				t.Errorf("%s: flip at %d not detected", name, pos)
			}
		}
	}
}

// TestBombs: a stream that expands past the limit is ErrTooLarge, and
// decoding it allocates a bounded amount of memory.
func TestBombs(t *testing.T) {
	testassets.NeedTools(t, "gzip", "bzip2", "xz", "lzma", "lz4", "zstd", "lzop")
	zeros := make([]byte, 64<<20)
	const limit = 4 << 20
	for _, tc := range []struct {
		f    Format
		argv []string
	}{
		{Gzip, []string{"gzip", "-1"}},
		{Bzip2, []string{"bzip2", "-1"}},
		{XZ, []string{"xz", "--x86", "--lzma2=preset=0"}},
		{LZMA, []string{"lzma", "-0"}},
		{LZ4, []string{"lz4", "-l", "-1"}},
		{Zstd, []string{"zstd", "-q", "-1"}},
		{LZO, []string{"lzop", "-1"}},
	} {
		plain := compressWith(t, zeros, false, tc.argv...)
		// A trailer that understates the size must not help either.
		for _, src := range [][]byte{plain, binary.LittleEndian.AppendUint32(bytes.Clone(plain), 1000)} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Decompress(tc.f, src, limit)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("%v: err = %v, want ErrTooLarge", tc.argv, err)
			}
			// Output up to the limit, at most doubled while growing,
			// plus decoder state (lz4's 8 MiB scratch block, dictionaries
			// capped at the limit): far below the 64 MiB of the bomb.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
				t.Errorf("%v: allocated %d MiB for a %d MiB limit", tc.argv, alloc>>20, limit>>20)
			}
		}
	}
}

// TestLyingTrailer: a trailer larger than the limit or smaller than the
// data is only a hint; the stream decodes all the same.
func TestLyingTrailer(t *testing.T) {
	want := readSample(t, "sample.bin")
	for f, name := range sampleFiles {
		for _, claim := range []uint32{0, 1, 100, 1 << 31, 0xffffffff} {
			src := binary.LittleEndian.AppendUint32(readSample(t, name), claim)
			out, err := Decompress(f, src, 1<<20)
			if err != nil || !bytes.Equal(out, want) {
				t.Errorf("%s with trailer %d: %d bytes, %v", name, claim, len(out), err)
			}
		}
	}
}

func TestBadArguments(t *testing.T) {
	if _, err := Decompress(None, []byte{1, 2, 3}, 100); !errors.Is(err, ErrFormat) {
		t.Errorf("None: %v", err)
	}
	if _, err := Decompress(Format(99), []byte{1}, 100); !errors.Is(err, ErrFormat) {
		t.Errorf("Format(99): %v", err)
	}
	if _, err := Decompress(Gzip, readSample(t, "sample.gz"), 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit 0: %v", err)
	}
	if _, err := Decompress(Gzip, readSample(t, "sample.gz"), 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit 100: %v", err)
	}
}
