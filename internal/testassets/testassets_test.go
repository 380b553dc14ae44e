package testassets

import (
	"os"
	"testing"
)

// TestDebianKernel checks that the asset helper finds real Debian kernels:
// every loader and e2e test depends on it.
func TestDebianKernel(t *testing.T) {
	for _, flavour := range []string{"amd64", "cloud-amd64"} {
		p := DebianKernel(t, "", flavour)
		b := make([]byte, 0x210)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.ReadAt(b, 0)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(b[0x202:0x206]) != "HdrS" {
			t.Errorf("%s: no bzImage setup header", p)
		}
	}
}
