package decompress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"os"
	"strings"
	"testing"
)

var lzoEnd = []byte{0x11, 0x00, 0x00} // M4 with distance 0, length 3

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestLZO1XVectors decodes streams assembled by hand from the format
// description in lzo.go; each expected output follows from the
// instruction semantics, not from the decoder.
func TestLZO1XVectors(t *testing.T) {
	lits := make([]byte, 16400)
	for i := range lits {
		lits[i] = byte(i*31 + i>>8)
	}
	// 16400 literals in the main loop: t=0, 64 zero bytes, 62:
	// 15 + 64*255 + 62 + 3 = 16400.
	longRun := cat([]byte{0x00}, make([]byte, 64), []byte{62}, lits)
	tests := []struct {
		name string
		src  []byte
		want []byte
	}{
		{"first-byte literals", cat([]byte{17 + 5}, []byte("hello"), lzoEnd), []byte("hello")},
		// M2: t>>5 = 3 → length 4; (t>>2)&7 = 3, next byte 0 → distance 4.
		{"M2", cat([]byte{17 + 4}, []byte("abcd"), []byte{0x6c, 0x00}, lzoEnd), []byte("abcdabcd")},
		// M3 of length 10 at distance 1: a run.
		{"M3 overlapping", cat([]byte{17 + 1, 'a', 32 | 8, 0x00, 0x00}, lzoEnd), bytes.Repeat([]byte("a"), 11)},
		// After 2 trailing literals, t<16 is a 2-byte match: t>>2 = 1 →
		// distance 2, t&3 = 1 trailing literal 'c'.
		{"M1 after literals", cat([]byte{17 + 2, 'a', 'b', 5, 0x00, 'c'}, lzoEnd), []byte("ababc")},
		// A long literal run, then M4: distance 0x4000 + 4>>2 = 16385,
		// length 3+2 = 5.
		{"extended literals + M4", cat(longRun, []byte{16 | 3, 0x04, 0x00}, lzoEnd),
			cat(lits, lits[16400-16385:16400-16385+5])},
		// After a literal run, t<16 is a 3-byte match at 2049 + …
		{"M1 after literal run", cat(longRun, []byte{0x00, 0x00}, lzoEnd),
			cat(lits, lits[16400-2049:16400-2049+3])},
		// M3 with extended length: t&31 = 0, then 31 + 5 + 2 = 38.
		{"M3 extended", cat([]byte{17 + 3}, []byte("xyz"), []byte{32, 5, 2 << 2, 0x00}, lzoEnd),
			cat([]byte("xyz"), bytes.Repeat([]byte("xyz"), 12), []byte("xy"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, len(tc.want))
			n, err := lzo1xDecode(dst, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dst[:n], tc.want) {
				t.Fatalf("got %q…, want %q…", dst[:min(n, 40)], tc.want[:min(len(tc.want), 40)])
			}
		})
	}
}

func TestLZO1XErrors(t *testing.T) {
	tests := []struct {
		name, want string
		src        []byte
		out        int
	}{
		{"too short", "too short", []byte{0x11, 0}, 10},
		{"match before output", "before start", cat([]byte{17 + 2, 'a', 'b', 0x7c, 0x00}, lzoEnd), 10},
		{"no end marker", "end marker", []byte{17 + 1, 'a', 32 | 8, 0, 0}, 20},
		{"data after end", "after end", cat([]byte{17 + 1, 'a'}, lzoEnd, []byte{0}), 10},
		{"output overrun", "overrun", cat([]byte{17 + 1, 'a', 32 | 8, 0, 0}, lzoEnd), 4},
		{"literals past input", "overrun", []byte{17 + 9, 'a', 'b'}, 20},
		{"truncated extended length", "truncated length", []byte{17 + 1, 'a', 32, 0, 0, 0}, 600},
		{"bad end marker length", "malformed end", []byte{17 + 1, 'a', 0x12, 0, 0}, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lzo1xDecode(make([]byte, tc.out), tc.src)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrCorrupt containing %q", err, tc.want)
			}
		})
	}
}

// lzopFile builds an lzop file around raw blocks, as lzop 1.04 lays it
// out (version 0x1040, method 3 = LZO1X-999, adler32 of the data).
func lzopFile(flags uint32, blocks ...[2][]byte) []byte {
	var h bytes.Buffer
	be := func(n int, v uint32) {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		h.Write(b[4-n:])
	}
	be(2, 0x1040) // version
	be(2, 0x20a0) // library version
	be(2, 0x0940) // version needed
	be(1, 3)      // method
	be(1, 9)      // level
	be(4, flags)
	be(4, 0o100644) // mode
	be(4, 0)        // mtime
	be(4, 0)
	be(1, 0) // no name
	hdr := h.Bytes()
	out := cat(lzopMagic, hdr)
	out = binary.BigEndian.AppendUint32(out, adler32.Checksum(hdr))
	for _, b := range blocks {
		raw, comp := b[0], b[1]
		out = binary.BigEndian.AppendUint32(out, uint32(len(raw)))
		out = binary.BigEndian.AppendUint32(out, uint32(len(comp)))
		if flags&lzopAdler32D != 0 {
			out = binary.BigEndian.AppendUint32(out, adler32.Checksum(raw))
		}
		out = append(out, comp...)
	}
	return binary.BigEndian.AppendUint32(out, 0)
}

func TestLZOContainer(t *testing.T) {
	hello := cat([]byte{17 + 5}, []byte("hello"), lzoEnd)
	run := cat([]byte{17 + 1, 'a', 32 | 8, 0x00, 0x00}, lzoEnd) // 11 × 'a'
	stored := []byte("stored block")
	good := lzopFile(lzopAdler32D, [2][]byte{[]byte("aaaaaaaaaaa"), run}, [2][]byte{stored, stored})
	out, err := Decompress(LZO, good, 1<<20)
	if err != nil || string(out) != "aaaaaaaaaaastored block" {
		t.Fatalf("good file: %q, %v", out, err)
	}
	badSum := bytes.Clone(good)
	badSum[len(lzopMagic)+5] ^= 1 // a header byte: checksum no longer matches
	tooBig := lzopFile(0, [2][]byte{make([]byte, 100), hello})
	binary.BigEndian.PutUint32(tooBig[len(tooBig)-4-len(hello)-8:], lzopMaxBlock+1)
	bigger := lzopFile(0, [2][]byte{[]byte("hi"), []byte("hello")})
	wrongLen := lzopFile(0, [2][]byte{make([]byte, 20), run})
	dataSum := lzopFile(lzopAdler32D, [2][]byte{[]byte("aaaaaaaaaab"), run})
	tests := []struct {
		name, want string
		src        []byte
	}{
		{"bad magic", "magic", cat([]byte("\x89LZO\x00\r\n\x1a"), good[9:])},
		{"header checksum", "header checksum", badSum},
		{"block too large", "block of", tooBig},
		{"compressed larger than raw", "compressed to", bigger},
		{"block length mismatch", "decoded to", wrongLen},
		{"data checksum", "checksum", dataSum},
		{"truncated", "truncated", good[:len(good)-3]},
		{"only magic", "truncated", lzopMagic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decompress(LZO, tc.src, 1<<20)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrCorrupt containing %q", err, tc.want)
			}
		})
	}
	// The real tool's output (lzop -9) decodes to its input.
	want, err := os.ReadFile("testdata/sample.bin")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("testdata/sample.lzo")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := Decompress(LZO, src, 1<<20); err != nil || !bytes.Equal(out, want) {
		t.Fatalf("sample.lzo: %d bytes, %v", len(out), err)
	}
}
