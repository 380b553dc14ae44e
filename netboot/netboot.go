// Package netboot brings back PV-GRUB's network boot: on one network device
// it runs DHCP, configures the IP stack, and fetches the configuration file
// over TFTP, the way PV-GRUB's "(nd)" device did:
//
//   - extra="(nd)/pxe/menu.lst" (Config.Path): DHCP, then that path from the
//     boot server;
//   - no path: DHCP, then the configuration DHCP names: option 150 (GRUB's
//     configuration file option, "(nd)/menu.lst"), else PXELINUX's options
//     209/210, else the boot file (option 67 or the BOOTP file field), each
//     tried in turn while the server answers "not found".
//
// The boot server is option 66 when it is an address, else siaddr
// (next-server), else option 150's first address (Cisco's meaning of 150),
// else the DHCP server itself (dhcp.Lease.TFTPServer). Later fetches (the
// kernel, the initrd, another configfile) go through Result.Fetch, which also
// takes GRUB 2's "(tftp,SERVER)/path".
//
// HTTP ("(http,SERVER)/path", "(http)/path" from the boot server,
// "http://SERVER/path") goes through net/http (package httpboot) over TCP
// from package tcp, started on first use; the same path forms work in
// extra= and in configuration files.
//
// The stack is package ipv4, DHCP package dhcp, TFTP package tftp, TCP
// package tcp; this package only strings them together.
package netboot

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/dhcp"
	"github.com/gopvgrub/gopvgrub/netboot/httpboot"
	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/gopvgrub/gopvgrub/netboot/tcp"
	"github.com/gopvgrub/gopvgrub/netboot/tftp"
)

// Error is the type of this package's sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Errors.
const (
	// ErrBadPath: a path that cannot be parsed.
	ErrBadPath = Error("netboot: invalid network path")
	// ErrNotNetwork: a path on another device ("(hd0,0)/...").
	ErrNotNetwork = Error("netboot: not a network path")
	// ErrNoConfig: DHCP named no configuration file and none was given.
	ErrNoConfig = Error("netboot: DHCP named no configuration file (option 150, 209 or boot file) and no path was given")
	// ErrClosed: Fetch after Close.
	ErrClosed = Error("netboot: closed")
)

// Config tunes Boot. The zero value works.
type Config struct {
	// Path is the configuration file to fetch, as PV-GRUB's extra= gives
	// it ("(nd)/pxe/menu.lst"); empty means the one DHCP names.
	Path string
	// DHCP tunes the DHCP client; its MAC is the link's.
	DHCP dhcp.Config
	// TFTP tunes transfers. BlockSize 0 means the largest that fits
	// the link's MTU unfragmented (MTU - 32, 1468 at 1500);
	// WindowSize 0 means 8. MaxSize bounds Fetch (the caller sets it
	// from the domain's free memory).
	TFTP tftp.Options
	// Attempts is how often a transfer is started again when the server
	// stops answering (default 3).
	Attempts int
	// MaxConfigSize bounds the configuration file (default 1 MiB).
	MaxConfigSize int64
	// Stack tunes the IP stack.
	Stack ipv4.Config
	// Log, if set, is told about each step (for the console).
	Log func(format string, args ...any)
}

// Result is a configured network device and what DHCP said. Close it
// before the device is handed back.
type Result struct {
	Lease *dhcp.Lease
	// Server is the default boot server ((nd), (tftp)).
	Server netip.Addr
	// ConfigPath is the configuration file fetched, as named, and
	// Config its contents.
	ConfigPath string
	Config     []byte

	stack *ipv4.Stack
	cfg   Config

	mu   sync.Mutex
	tcp  *tcp.Stack       // started by the first HTTP fetch
	http *httpboot.Client // keeps connections alive between fetches
}

// Boot runs DHCP on link, configures the stack and fetches the
// configuration file. On error everything it started is stopped; the link
// is the caller's to close.
func Boot(ctx context.Context, link ipv4.Link, cfg Config) (*Result, error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.TFTP.BlockSize == 0 {
		cfg.TFTP.BlockSize = min(link.MTU()-ipv4.HeaderSize-ipv4.UDPHeaderSize-4, tftp.MaxBlockSize)
	}
	if cfg.TFTP.WindowSize == 0 {
		cfg.TFTP.WindowSize = 8
	}
	if cfg.MaxConfigSize <= 0 {
		cfg.MaxConfigSize = 1 << 20
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	var want Location
	if cfg.Path != "" {
		l, err := ParsePath(cfg.Path)
		if err != nil {
			return nil, err
		}
		want = l
	}
	st, err := ipv4.New(link, cfg.Stack)
	if err != nil {
		return nil, err
	}
	r := &Result{stack: st, cfg: cfg}
	if err := r.boot(ctx, want); err != nil {
		st.Close()
		return nil, err
	}
	return r, nil
}

func (r *Result) boot(ctx context.Context, want Location) error {
	conn, err := r.stack.ListenUDP(dhcp.ClientPort)
	if err != nil {
		return err
	}
	dc := r.cfg.DHCP
	dc.MAC = r.stack.MAC()
	if dc.Log == nil {
		dc.Log = r.cfg.Log
	}
	lease, err := dhcp.New(conn, dc).Acquire(ctx)
	conn.Close()
	if err != nil {
		return err
	}
	if err := r.stack.Configure(lease.Addr, lease.Router); err != nil {
		return fmt.Errorf("netboot: configure %v: %w", lease.Addr, err)
	}
	r.Lease = lease
	r.Server = lease.TFTPServer()
	r.cfg.Log("netboot: %v; boot server %v", lease, r.Server)

	if want.Path != "" {
		b, err := r.fetch(ctx, want, r.configTFTP())
		if err != nil {
			return err
		}
		r.ConfigPath, r.Config = r.cfg.Path, b
		return nil
	}
	cands := Candidates(lease)
	if len(cands) == 0 {
		return ErrNoConfig
	}
	var errs []error
	for _, c := range cands {
		l, err := ParsePath(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.cfg.Log("netboot: trying %s", l)
		b, err := r.fetch(ctx, l, r.configTFTP())
		if err == nil {
			r.ConfigPath, r.Config = c, b
			return nil
		}
		var se *tftp.ServerError
		if !errors.As(err, &se) && !errors.Is(err, httpboot.ErrStatus) && !errors.Is(err, ErrBadPath) && !errors.Is(err, ErrNotNetwork) {
			return err // the server is not answering: the next name won't help
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("netboot: no configuration file could be fetched: %w", errors.Join(errs...))
}

// Candidates lists, in the order Boot tries them, the configuration files
// a lease names: option 150, then option 209 (under option 210's prefix
// when relative), then the boot file.
func Candidates(l *dhcp.Lease) []string {
	var c []string
	if l.ConfigFile != "" {
		c = append(c, l.ConfigFile)
	}
	if l.PXEConfigFile != "" {
		p := l.PXEConfigFile
		if l.PXEPathPrefix != "" && !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "(") {
			p = path.Join(l.PXEPathPrefix, p)
		}
		c = append(c, p)
	}
	if l.BootFile != "" {
		c = append(c, l.BootFile)
	}
	return c
}

// Fetch reads a file named as in a configuration ("(nd)/vmlinuz",
// "(tftp,10.0.0.2)/initrd.img", "/pxe/menu.lst"), up to the configured
// TFTP MaxSize.
func (r *Result) Fetch(ctx context.Context, path string) ([]byte, error) {
	l, err := ParsePath(path)
	if err != nil {
		return nil, err
	}
	return r.fetch(ctx, l, r.cfg.TFTP)
}

// configTFTP is the TFTP options for a configuration file: its own
// size limit.
func (r *Result) configTFTP() tftp.Options {
	o := r.cfg.TFTP
	o.MaxSize = r.cfg.MaxConfigSize
	return o
}

// FetchWith is Fetch with other TFTP options (the network-boot benchmark
// compares window sizes). Block and window size left 0 are Boot's (the
// MTU's largest block, windowsize 8), not the protocol's 512 and 1.
func (r *Result) FetchWith(ctx context.Context, path string, o tftp.Options) ([]byte, error) {
	l, err := ParsePath(path)
	if err != nil {
		return nil, err
	}
	if o.BlockSize == 0 {
		o.BlockSize = r.cfg.TFTP.BlockSize
	}
	if o.WindowSize == 0 {
		o.WindowSize = r.cfg.TFTP.WindowSize
	}
	return r.fetch(ctx, l, o)
}

func (r *Result) fetch(ctx context.Context, l Location, opts tftp.Options) ([]byte, error) {
	if err := r.stack.Err(); err != nil {
		if errors.Is(err, ipv4.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, err
	}
	if l.Scheme == HTTP {
		return r.fetchHTTP(ctx, l, opts.MaxSize)
	}
	srv := l.Server
	if !srv.IsValid() {
		srv = netip.AddrPortFrom(r.Server, tftp.Port)
	}
	c := &tftp.Client{
		Listen:   func() (ipv4.PacketConn, error) { return r.stack.ListenUDP(0) },
		Options:  opts,
		Attempts: r.cfg.Attempts,
		Report: func(name string, s tftp.Stats, el time.Duration, err error) {
			// "10.0.0.1/vmlinuz" for "/vmlinuz" and for "vmlinuz" alike.
			at := srv.Addr().String() + "/" + strings.TrimPrefix(name, "/")
			if err != nil {
				r.cfg.Log("tftp %s: failed after %d bytes, %d retransmissions: %v", at, s.Bytes, s.Retransmissions, err)
				return
			}
			r.cfg.Log("tftp %s: %d bytes in %v (blksize %d, windowsize %d), %d retransmissions, %d duplicates",
				at, s.Bytes, el.Round(time.Millisecond), s.BlockSize, s.WindowSize, s.Retransmissions, s.Duplicates)
		},
	}
	return c.ReadFile(ctx, srv, l.Path)
}

// Stack is the configured IP stack, for diagnostics.
func (r *Result) Stack() *ipv4.Stack { return r.stack }

// fetchHTTP gets l over HTTP, starting TCP on first use.
func (r *Result) fetchHTTP(ctx context.Context, l Location, limit int64) ([]byte, error) {
	srv := l.Server
	if !srv.IsValid() {
		srv = netip.AddrPortFrom(r.Server, 80)
	}
	r.mu.Lock()
	if r.http == nil {
		st, err := tcp.New(r.stack)
		if err != nil {
			r.mu.Unlock()
			return nil, fmt.Errorf("netboot: %v: %w", l, err)
		}
		r.tcp = st
		r.http = &httpboot.Client{Dial: st.Dial, UserAgent: "gopvgrub"}
	}
	c := r.http
	r.mu.Unlock()
	u := (&url.URL{Scheme: "http", Host: srv.String(), Path: l.Path}).String()
	start := time.Now()
	b, st, err := c.Get(ctx, u, limit)
	if err != nil {
		r.cfg.Log("http %s: failed after %d bytes: %v", u, st.Bytes, err)
		return nil, err
	}
	from := u
	if st.Redirects > 0 {
		from = fmt.Sprintf("%s (after %d redirects, from %s)", u, st.Redirects, st.URL)
	}
	r.cfg.Log("http %s: %d bytes in %v", from, st.Bytes, time.Since(start).Round(time.Millisecond))
	return b, nil
}

// Close stops TCP, if HTTP started it, and the IP stack. The network
// device can then be handed back.
func (r *Result) Close() error {
	r.mu.Lock()
	if r.http != nil {
		r.http.CloseIdle()
		r.tcp.Close()
		r.http, r.tcp = nil, nil
	}
	r.mu.Unlock()
	return r.stack.Close()
}
