// Command repack writes a Linux bzImage in every form a Xen PV loader may
// meet, for the e2e test boot-formats: the bzImage with its payload
// recompressed by each of the seven tools Linux's build uses (setup header
// updated by loader.RewritePayload), the bare vmlinux ELF, and a gzipped
// vmlinux.
//
//	go run ./tools/repack BZIMAGE OUTDIR
//
// OUTDIR gets vmlinuz-xz, vmlinuz-lz4, vmlinuz-zstd, vmlinuz-gzip,
// vmlinuz-bzip2, vmlinuz-lzma, vmlinuz-lzo, vmlinux and vmlinux.gz. Each is
// checked to parse back to the same vmlinux before it is written.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/loader"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: repack BZIMAGE OUTDIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "repack:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	bz, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	k, err := loader.ParseKernelBytes(bz, 512<<20)
	if err != nil {
		return err
	}
	if k.Container != "bzImage" {
		return fmt.Errorf("%s: a %s, not a bzImage", in, k.Container)
	}
	vmlinux := k.ELF
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	write := func(name string, b []byte) error {
		got, err := loader.ParseKernelBytes(b, 512<<20)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !bytes.Equal(got.ELF, vmlinux) {
			return fmt.Errorf("%s: does not parse back to the same vmlinux", name)
		}
		fmt.Printf("repack: %s: %s %v, %d bytes\n", name, got.Container, got.Compression, len(b))
		return os.WriteFile(filepath.Join(out, name), b, 0o644)
	}
	for _, c := range testassets.KernelCompressors {
		payload, err := testassets.Recompress(vmlinux, c)
		if err != nil {
			return err
		}
		img, err := loader.RewritePayload(bz, payload)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
		if err := write("vmlinuz-"+c.Name, img); err != nil {
			return err
		}
	}
	if err := write("vmlinux", vmlinux); err != nil {
		return err
	}
	gz, err := testassets.Recompress(vmlinux, testassets.Compressor{Name: "gzip", Ext: "whole.gz", Argv: []string{"gzip", "-n", "-1"}})
	if err != nil {
		return err
	}
	return write("vmlinux.gz", gz[:len(gz)-4]) // a plain gzip file, as xl takes it
}
