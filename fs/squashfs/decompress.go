package squashfs

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/therootcompany/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// decompressor decodes one squashfs block into a buffer whose length is
// the most the block may hold; more output is an error, not a reallocation.
type decompressor struct {
	name   string
	decode func(dst, src []byte) (int, error)
}

var errOverflow = vfs.Corruptf("squashfs: block decompresses beyond its size")

// readAllInto fills dst from r and fails if r has more.
func readAllInto(dst []byte, r io.Reader) (int, error) {
	n, err := io.ReadFull(r, dst)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		return n, nil
	case nil:
		var one [1]byte
		if m, _ := r.Read(one[:]); m > 0 {
			return n, errOverflow
		}
		return n, nil
	}
	return n, vfs.Corruptf("squashfs: %v", err)
}

func newDecompressor(id uint16, blockSize int64) (*decompressor, error) {
	switch id {
	case 1:
		return &decompressor{name: "gzip", decode: func(dst, src []byte) (int, error) {
			zr, err := zlib.NewReader(bytes.NewReader(src))
			if err != nil {
				return 0, vfs.Corruptf("squashfs: zlib: %v", err)
			}
			return readAllInto(dst, zr)
		}}, nil
	case 2:
		return &decompressor{name: "lzma", decode: func(dst, src []byte) (int, error) {
			lr, err := lzma.ReaderConfig{DictCap: int(max(blockSize, lzma.MinDictCap))}.NewReader(bytes.NewReader(src))
			if err != nil {
				return 0, vfs.Corruptf("squashfs: lzma: %v", err)
			}
			return readAllInto(dst, lr)
		}}, nil
	case 3:
		return nil, fmt.Errorf("squashfs: lzo compression: %w", errors.ErrUnsupported)
	case 4:
		return &decompressor{name: "xz", decode: func(dst, src []byte) (int, error) {
			xr, err := xz.NewReader(bytes.NewReader(src), uint32(max(blockSize, 1<<16)))
			if err != nil {
				return 0, vfs.Corruptf("squashfs: xz: %v", err)
			}
			return readAllInto(dst, xr)
		}}, nil
	case 5:
		return &decompressor{name: "lz4", decode: func(dst, src []byte) (int, error) {
			n, err := lz4.UncompressBlock(src, dst)
			if err != nil {
				return 0, vfs.Corruptf("squashfs: lz4: %v", err)
			}
			return n, nil
		}}, nil
	case 6:
		var once sync.Once
		var dec *zstd.Decoder
		var derr error
		return &decompressor{name: "zstd", decode: func(dst, src []byte) (int, error) {
			once.Do(func() {
				dec, derr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
					zstd.WithDecoderMaxMemory(uint64(max(blockSize, metaMax))), zstd.WithDecoderMaxWindow(uint64(max(blockSize, 1<<20))))
			})
			if derr != nil {
				return 0, derr
			}
			out, err := dec.DecodeAll(src, dst[:0])
			if err != nil {
				return 0, vfs.Corruptf("squashfs: zstd: %v", err)
			}
			if len(out) > len(dst) || (len(out) > 0 && &out[0] != &dst[0]) {
				if len(out) > len(dst) {
					return 0, errOverflow
				}
				copy(dst, out)
			}
			return len(out), nil
		}}, nil
	}
	return nil, fmt.Errorf("squashfs: compressor %d: %w", id, errors.ErrUnsupported)
}
