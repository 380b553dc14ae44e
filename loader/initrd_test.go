package loader

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/loader/decompress"
)

func TestInitrd(t *testing.T) {
	testassets.NeedTools(t, "cpio", "zstd")
	// A real cpio archive (newc, as initramfs-tools makes them).
	cmd := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	cmd.Dir = t.TempDir()
	cmd.Stdin = bytes.NewReader([]byte(".\n"))
	archive, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	z := exec.Command("zstd", "-q", "-c")
	z.Stdin = bytes.NewReader(archive)
	compressed, err := z.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, format string
		initrd       []byte
		first        []byte
	}{
		{"cpio", "cpio", archive, archive},
		{"zstd cpio", "zstd", compressed, archive},
		// Debian's layout: microcode cpio first, then the compressed one.
		{"concatenated", "cpio", append(bytes.Clone(archive), compressed...), nil},
		{"garbage", "unknown", []byte("hello world"), nil},
	} {
		if got := InitrdFormat(tc.initrd); got != tc.format {
			t.Errorf("%s: format %q, want %q", tc.name, got, tc.format)
		}
		out, _, err := InspectInitrd(tc.initrd, 1<<20)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		} else if tc.first != nil && !bytes.Equal(out, tc.first) {
			t.Errorf("%s: first archive differs", tc.name)
		}
	}
	if _, _, err := InspectInitrd(compressed[:len(compressed)/2], 1<<20); !errors.Is(err, decompress.ErrCorrupt) {
		t.Errorf("truncated: %v", err)
	}
}
