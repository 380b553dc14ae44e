package imgtest

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// Seed returns the seed image testdata/fs/<name>.gz of the repository.
func Seed(t testing.TB, name string) []byte {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	f, err := os.Open(filepath.Join(dir, "testdata", "fs", name+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Limits of Exercise: enough to reach every corner of a seed image,
// small enough that a fuzzed image claiming huge sizes stays fast.
const (
	exerciseEntries = 300
	exerciseBytes   = 256 << 10
)

func init() {
	// ReadFile refuses more than this in tests that exercise fuzzed
	// volumes; real volumes are read with Open and ReadAt.
	vfs.MaxReadFile.Store(16 << 20)
}

// Exercise drives every operation of a (possibly hostile) volume within
// fixed limits and returns how many entries it visited. Errors are the
// expected outcome of bad input and are ignored; a panic or a hang is
// the failure a fuzzer looks for.
func Exercise(fsys FS) int {
	n := 0
	buf := make([]byte, 64<<10)
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n++; n > exerciseEntries {
			return fs.SkipAll
		}
		if _, err := d.Info(); err != nil {
			return nil
		}
		fsys.(fs.StatFS).Stat(p)
		fsys.Lstat(p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			fsys.ReadLink(p)
		case d.Type().IsRegular():
			f, err := fsys.Open(p)
			if err != nil {
				return nil
			}
			defer f.Close()
			var read int64
			for read < exerciseBytes {
				m, err := f.Read(buf)
				read += int64(m)
				if err != nil {
					break
				}
			}
			if ra, ok := f.(io.ReaderAt); ok {
				ra.ReadAt(buf[:100], 1<<20)
			}
		}
		return nil
	})
	return n
}

// Truncations returns prefixes of img at interesting lengths, for tests
// that a truncated image gives errors and never a panic.
func Truncations(img []byte) [][]byte {
	var out [][]byte
	for _, n := range []int{0, 1, 511, 512, 1024, 1536, 2048, 4096, 8192, 16384, 32768, 34816, 65536, 131072} {
		if n < len(img) {
			out = append(out, img[:n])
		}
	}
	for _, frac := range []int{2, 3, 4} {
		out = append(out, img[:len(img)*(frac-1)/frac])
	}
	return out
}

// Reader wraps a byte slice as the io.ReaderAt the readers take.
func Reader(b []byte) (*bytes.Reader, int64) { return bytes.NewReader(b), int64(len(b)) }

// Patched builds a fuzz case from real seed images and a short input:
// in[0] picks the seed, in[1] truncates it (0 keeps it whole, else keeps
// in[1]/256 of it), and every following 4 bytes are an edit: a 24-bit
// little-endian offset (modulo the image size) and the byte to store.
//
// Fuzzing edits rather than whole images keeps inputs to a few dozen
// bytes, so the fuzzer's minimisation of each new input takes
// milliseconds instead of the minute it takes on a 60 KiB image, while
// every mutation still lands on a real image made by the real tools.
func Patched(seeds [][]byte, in []byte) []byte {
	if len(seeds) == 0 {
		return nil
	}
	var pick, trunc byte
	if len(in) > 0 {
		pick, in = in[0], in[1:]
	}
	if len(in) > 0 {
		trunc, in = in[0], in[1:]
	}
	img := bytes.Clone(seeds[int(pick)%len(seeds)])
	if trunc != 0 {
		img = img[:len(img)*int(trunc)/256]
	}
	if len(img) == 0 {
		return img
	}
	for ; len(in) >= 4; in = in[4:] {
		off := int(in[0]) | int(in[1])<<8 | int(in[2])<<16
		img[off%len(img)] = in[3]
	}
	return img
}

// Edit encodes one Patched edit, for seed corpora.
func Edit(off int, b byte) []byte { return []byte{byte(off), byte(off >> 8), byte(off >> 16), b} }
