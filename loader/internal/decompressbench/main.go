// Command decompressbench is the Go side of bench/decompress.sh: it
// extracts the vmlinux from a bzImage, or times loader/decompress on a
// compressed file (median of several runs, in-process, after the file is
// read), printing milliseconds.
//
//	decompressbench extract <bzImage> <vmlinux-out>
//	decompressbench time <runs> <compressed-file> <expected-size>
package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/gopvgrub/gopvgrub/loader"
	"github.com/gopvgrub/gopvgrub/loader/decompress"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "decompressbench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 3 && args[0] == "extract" {
		b, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		k, err := loader.ParseKernelBytes(b, 1<<30)
		if err != nil {
			return err
		}
		return os.WriteFile(args[2], k.ELF, 0o644)
	}
	if len(args) != 4 || args[0] != "time" {
		return fmt.Errorf("usage: extract <bzImage> <out> | time <runs> <file> <size>")
	}
	runs, err := strconv.Atoi(args[1])
	if err != nil || runs < 1 {
		return fmt.Errorf("runs: %q", args[1])
	}
	want, err := strconv.Atoi(args[3])
	if err != nil {
		return fmt.Errorf("size: %q", args[3])
	}
	src, err := os.ReadFile(args[2])
	if err != nil {
		return err
	}
	f := decompress.Detect(src)
	var ms []float64
	for range runs {
		start := time.Now()
		out, err := decompress.Decompress(f, src, 1<<30)
		d := time.Since(start)
		if err != nil {
			return fmt.Errorf("%s: %v", args[2], err)
		}
		if len(out) != want {
			return fmt.Errorf("%s: %d bytes, want %d", args[2], len(out), want)
		}
		ms = append(ms, float64(d.Microseconds())/1000)
	}
	slices.Sort(ms)
	fmt.Printf("%.1f\n", ms[len(ms)/2])
	return nil
}
