package ext4

import (
	"errors"
	"fmt"
	"io"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

var errUnsupported = errors.ErrUnsupported

// The vfs.Driver methods.

func (f *volume) Root() (vfs.Node, error) { return f.readInode(rootIno) }

func (f *volume) Load(ref uint64) (vfs.Node, error) { return f.readInode(ref) }

func (f *volume) ReadDir(dir vfs.Node) ([]vfs.Dirent, error) { return f.readDir(dir.(*inode)) }

func (f *volume) Open(n vfs.Node) (io.ReaderAt, error) {
	r, _, err := f.content(n.(*inode))
	return r, err
}

func (f *volume) ReadLink(n vfs.Node) (string, error) {
	in := n.(*inode)
	if in.size > vfs.MaxPath {
		return "", fmt.Errorf("ext4: symlink inode %d of %d bytes: %w", in.ino, in.size, vfs.ErrNameTooLong)
	}
	if f.fastSymlink(in) {
		return string(in.iblock[:in.size]), nil
	}
	r, _, err := f.content(in)
	if err != nil {
		return "", err
	}
	b := make([]byte, in.size)
	if err := vfs.ReadFullAt(r, b, 0); err != nil {
		return "", fmt.Errorf("ext4: symlink inode %d: %w", in.ino, err)
	}
	return string(b), nil
}
