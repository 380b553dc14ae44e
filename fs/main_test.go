package fs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopvgrub/gopvgrub/fs/internal/imgtest"
)

// The reference trees, built once per test binary.
var (
	bigTree   string // imgtest.Tree{Big, Sparse, Symlinks, Deep: 24}
	smallTree string // imgtest.Tree{Symlinks, Deep: 12}
	tmpRoot   string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gopvgrub-fs-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = dir
	bigTree = filepath.Join(dir, "big")
	smallTree = filepath.Join(dir, "small")
	code := 1
	if err := (imgtest.Tree{Big: true, Sparse: true, Symlinks: true, Deep: 24}).Write(bigTree); err != nil {
		fmt.Fprintln(os.Stderr, "reference tree:", err)
	} else if err := (imgtest.Tree{Symlinks: true, Deep: 12}).Write(smallTree); err != nil {
		fmt.Fprintln(os.Stderr, "reference tree:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
