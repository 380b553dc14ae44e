// Command mkimage turns the Go-linked gopvgrub ELF into the PV kernel image
// that a domU config names as `kernel=`: Xen ELF notes added, sections
// dropped, the large trailing BSS trimmed for demand paging (see package
// internal/pvimage), then gzip-compressed (xl decompresses it).
//
//	mkimage [-raw OUT.elf] [-version V] -o gopvgrub-x86_64.gz gopvgrub.elf
package main

import (
	"compress/gzip"
	"flag"
	"fmt"
	"os"

	"github.com/gopvgrub/gopvgrub/internal/pvimage"
)

func main() {
	out := flag.String("o", "", "gzip-compressed image to write")
	raw := flag.String("raw", "", "also write the uncompressed image here")
	version := flag.String("version", "0", "GUEST_VERSION note")
	trim := flag.Uint64("trim-bss", 1<<20, "demand-page trailing BSS objects at least this large (0 = off)")
	flag.Parse()
	if flag.NArg() != 1 || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mkimage [-raw OUT.elf] -o IMAGE.gz INPUT.elf")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out, *raw, *version, *trim); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(in, out, raw, version string, trim uint64) error {
	elfBytes, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	img, info, err := pvimage.Build(elfBytes, pvimage.Options{GuestVersion: version, TrimBSS: trim})
	if err != nil {
		return err
	}
	if raw != "" {
		if err := os.WriteFile(raw, img, 0o644); err != nil {
			return err
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	if _, err := zw.Write(img); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mkimage: %s: entry %#x, image %d bytes, lazy BSS [%#x, %#x)\n",
		out, info.Entry, len(img), info.LazyStart, info.LazyEnd)
	return nil
}
