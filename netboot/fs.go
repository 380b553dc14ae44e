package netboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/httpboot"
	"github.com/gopvgrub/gopvgrub/netboot/tftp"
)

// FS returns the boot server's files as an io/fs.FS, which is how package
// grub sees PV-GRUB's (nd) device; it is a grub.NetFS, so (tftp,host),
// (http) and (http,host) reach other servers and HTTP. Neither protocol
// has directories or a usable stat, so opening a file fetches it whole;
// the last file fetched is kept, since a config's loader stats a kernel
// and then reads it. Each fetch is bounded by timeout and by
// Config.TFTP.MaxSize. A server's "file not found" (TFTP error 1, HTTP 404)
// becomes fs.ErrNotExist, so config discovery moves on to its next
// candidate.
func (r *Result) FS(timeout time.Duration) fs.FS {
	return &netFS{r: r, timeout: timeout, loc: Location{Scheme: TFTP}}
}

type netFS struct {
	r       *Result
	timeout time.Duration
	loc     Location // scheme and server; Path unused

	mu       sync.Mutex
	lastName string
	last     []byte
}

func (n *netFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("tftp has no directory listing")}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lastName != name {
		ctx, cancel := context.WithTimeout(context.Background(), n.timeout)
		l := n.loc
		l.Path = "/" + name
		b, err := n.r.fetch(ctx, l, n.r.cfg.TFTP)
		cancel()
		if err != nil {
			var se *tftp.ServerError
			var he *httpboot.StatusError
			if (errors.As(err, &se) && se.Code == tftp.ErrCodeNotFound) || (errors.As(err, &he) && he.NotFound()) {
				err = fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
			}
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		n.lastName, n.last = name, b
	}
	return &netFile{name: path.Base(name), Reader: bytes.NewReader(n.last), size: int64(len(n.last))}, nil
}

// Server serves GRUB 2's (tftp,host), (http) and (http,host): host is
// an IPv4 address with an optional port; "" is the default boot server.
func (n *netFS) Server(http bool, host string) (fs.FS, error) {
	l := Location{Scheme: TFTP}
	port := uint16(tftp.Port)
	if http {
		l.Scheme, port = HTTP, 80
	}
	if host != "" {
		srv, err := server(host, port)
		if err != nil {
			return nil, err
		}
		l.Server = srv
	}
	return &netFS{r: n.r, timeout: n.timeout, loc: l}, nil
}

type netFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *netFile) Stat() (fs.FileInfo, error) { return f, nil }
func (f *netFile) Close() error               { return nil }
func (f *netFile) Name() string               { return f.name }
func (f *netFile) Size() int64                { return f.size }
func (f *netFile) Mode() fs.FileMode          { return 0o444 }
func (f *netFile) ModTime() time.Time         { return time.Time{} }
func (f *netFile) IsDir() bool                { return false }
func (f *netFile) Sys() any                   { return nil }

var _ io.ReaderAt = (*netFile)(nil)
