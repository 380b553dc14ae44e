package testassets

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Compressor is one of the seven tools Linux's build compresses a vmlinux
// with (scripts/Makefile.lib), at a fast level.
type Compressor struct {
	Name string // "xz", "lz4", "zstd", "gzip", "bzip2", "lzma", "lzo"
	Ext  string // file extension of the cached result
	Argv []string
}

// KernelCompressors are the seven, in the order Linux's Kconfig lists them.
var KernelCompressors = []Compressor{
	{"xz", "xz", []string{"xz", "--check=crc32", "--x86", "--lzma2=preset=0"}},
	{"lz4", "lz4", []string{"lz4", "-l", "-1"}},
	{"zstd", "zst", []string{"zstd", "-q", "-3"}},
	{"gzip", "gz", []string{"gzip", "-n", "-1"}},
	{"bzip2", "bz2", []string{"bzip2", "-1"}},
	{"lzma", "lzma", []string{"lzma", "-0"}},
	{"lzo", "lzo", []string{"lzop", "-1"}},
}

// Recompress compresses vmlinux with c the way Linux's build does (stdin,
// the uncompressed size appended as a 4-byte trailer), caching the result
// under CacheDir: the slow tools would otherwise dominate a test run.
func Recompress(vmlinux []byte, c Compressor) ([]byte, error) {
	sum := sha256.Sum256(vmlinux)
	dir := filepath.Join(CacheDir(), "loader-recompressed")
	path := filepath.Join(dir, hex.EncodeToString(sum[:8])+"."+c.Ext)
	if b, err := os.ReadFile(path); err == nil {
		return b, nil
	}
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Stdin = bytes.NewReader(vmlinux)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %w", c.Argv, err)
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(vmlinux)))
	if os.MkdirAll(dir, 0o755) == nil {
		tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
		if err == nil {
			_, werr := tmp.Write(out)
			if tmp.Close() == nil && werr == nil {
				os.Rename(tmp.Name(), path)
			} else {
				os.Remove(tmp.Name())
			}
		}
	}
	return out, nil
}
