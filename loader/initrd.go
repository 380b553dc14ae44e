package loader

import (
	"bytes"
	"fmt"

	"github.com/gopvgrub/gopvgrub/loader/decompress"
)

// Initrds are handed to the kernel verbatim: Linux unpacks them itself,
// and an initrd may be several archives back to back (Debian's: an
// uncompressed cpio with CPU microcode, then a zstd-compressed cpio).
// These helpers only look at the first archive, for inspection tools.

// InitrdFormat names the format of the first archive in an initrd: a
// compression format ("zstd", "gzip", …), "cpio" for an uncompressed cpio
// archive, or "unknown".
func InitrdFormat(b []byte) string {
	if f := decompress.Detect(b); f != decompress.None {
		return f.String()
	}
	for _, m := range []string{"070701", "070702", "070707"} {
		if bytes.HasPrefix(b, []byte(m)) {
			return "cpio"
		}
	}
	return "unknown"
}

// InspectInitrd returns the first archive of an initrd, decompressed if it
// is compressed (at most limit bytes), or b itself if it is not.
func InspectInitrd(b []byte, limit int64) ([]byte, decompress.Format, error) {
	f := decompress.Detect(b)
	if f == decompress.None {
		return b, f, nil
	}
	out, err := decompress.Decompress(f, b, limit)
	if err != nil {
		return nil, f, fmt.Errorf("loader: initrd: %w", err)
	}
	return out, f, nil
}
