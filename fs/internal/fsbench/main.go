// Command fsbench copies one file out of a filesystem image with our
// readers, the way the unikernel reads kernels (Open, then large reads),
// and prints the best time of several runs in milliseconds. bench/fs.sh
// compares it with debugfs.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopvgrub/gopvgrub/fs"
)

func main() {
	runs := flag.Int("runs", 5, "timed runs (the best is printed)")
	flag.Parse()
	if flag.NArg() != 3 {
		fmt.Fprintln(os.Stderr, "usage: fsbench [-runs n] image path-in-image output")
		os.Exit(2)
	}
	best := time.Duration(1<<63 - 1)
	for range *runs {
		d, err := copyOut(flag.Arg(0), flag.Arg(1), flag.Arg(2))
		if err != nil {
			fmt.Fprintln(os.Stderr, "fsbench:", err)
			os.Exit(1)
		}
		best = min(best, d)
	}
	fmt.Printf("%.1f\n", float64(best.Microseconds())/1000)
}

// copyOut times opening the image, the volume and the file, and copying
// the file to out with 1 MiB reads.
func copyOut(image, name, out string) (time.Duration, error) {
	start := time.Now()
	img, err := os.Open(image)
	if err != nil {
		return 0, err
	}
	defer img.Close()
	st, err := img.Stat()
	if err != nil {
		return 0, err
	}
	v, err := fs.Open(img, st.Size())
	if err != nil {
		return 0, err
	}
	p, err := fs.CleanPath(name)
	if err != nil {
		return 0, err
	}
	f, err := v.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	if _, err := io.CopyBuffer(w, f, make([]byte, 1<<20)); err != nil {
		w.Close()
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
