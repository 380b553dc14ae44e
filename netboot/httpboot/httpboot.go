// Package httpboot fetches boot files over HTTP/1.1 with net/http, on any
// dialer (package tcp's in the bootloader, a host socket in tests). What the
// server says is untrusted: the body is bounded by MaxSize before and while
// it is read, redirects are capped and must stay on http:// to an IP address
// (the boot stack has no DNS and no TLS), a stalled server times out, and
// every failure names the URL.
package httpboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Errors.
var (
	// ErrTooLarge: the body is larger than MaxSize.
	ErrTooLarge = errors.New("httpboot: file larger than allowed")
	// ErrStatus: the server did not answer 200 OK.
	ErrStatus = errors.New("httpboot: server refused")
	// ErrRedirect: a redirect that cannot be followed.
	ErrRedirect = errors.New("httpboot: redirect not followed")
	// ErrURL: a URL the boot stack cannot fetch.
	ErrURL = errors.New("httpboot: unusable URL")
	// ErrStalled: no byte arrived within IdleTimeout.
	ErrStalled = errors.New("httpboot: server stalled")
)

// StatusError is a response other than 200 OK; it is ErrStatus.
type StatusError struct {
	Code   int
	Status string // as the server sent it ("404 Not Found")
}

func (e *StatusError) Error() string { return "server answered " + e.Status }
func (e *StatusError) Unwrap() error { return ErrStatus }
func (e *StatusError) NotFound() bool {
	return e.Code == http.StatusNotFound || e.Code == http.StatusGone
}

// Dialer opens a TCP connection.
type Dialer func(ctx context.Context, to netip.AddrPort) (net.Conn, error)

// Client fetches files. Set Dial; the other fields have defaults.
type Client struct {
	Dial Dialer
	// MaxSize bounds a body when Get is given no limit (default 1 GiB).
	MaxSize int64
	// MaxRedirects is how many redirects are followed (default 5).
	MaxRedirects int
	// IdleTimeout is how long a read may wait for data (default 30s).
	IdleTimeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string

	once sync.Once
	tr   *http.Transport
}

// Stats is what one Get did.
type Stats struct {
	Bytes     int64
	Redirects int
	// URL is where the body came from, after redirects.
	URL string
}

func (c *Client) transport() *http.Transport {
	c.once.Do(func() {
		c.tr = &http.Transport{
			DialContext:           c.dial,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       time.Minute,
			ResponseHeaderTimeout: c.idle(),
			DisableCompression:    true, // kernels are compressed already; keep the size checks exact
			ForceAttemptHTTP2:     false,
		}
	})
	return c.tr
}

func (c *Client) idle() time.Duration {
	if c.IdleTimeout > 0 {
		return c.IdleTimeout
	}
	return 30 * time.Second
}

func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("httpboot: host %q is not an IPv4 address (there is no DNS): %w", addr, ErrURL)
	}
	conn, err := c.Dial(ctx, ap)
	if err != nil {
		return nil, err
	}
	return &idleConn{Conn: conn, idle: c.idle()}, nil
}

// idleConn gives every read its own deadline, so a server that stops
// sending in the middle of a body fails the transfer instead of hanging it.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Read(p)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = fmt.Errorf("no data for %v: %w", c.idle, ErrStalled)
	}
	return n, err
}

// CheckURL tells whether u can be fetched by the boot stack: http:// to an
// IPv4 address, no user information.
func CheckURL(u *url.URL) error {
	if u.Scheme != "http" {
		return fmt.Errorf("httpboot: %s: scheme %q (only http:// is supported): %w", u.Redacted(), u.Scheme, ErrURL)
	}
	if u.User != nil {
		return fmt.Errorf("httpboot: %s: user information in URL: %w", u.Redacted(), ErrURL)
	}
	if a, err := netip.ParseAddr(u.Hostname()); err != nil || !a.Is4() {
		return fmt.Errorf("httpboot: %s: host %q is not an IPv4 address (there is no DNS): %w", u.Redacted(), u.Hostname(), ErrURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("httpboot: %s: port %q: %w", u.Redacted(), p, ErrURL)
		}
	}
	return nil
}

// Get fetches rawURL into memory, at most limit bytes (0: MaxSize).
// Connections are kept for the next Get; it is safe for concurrent use.
func (c *Client) Get(ctx context.Context, rawURL string, limit int64) ([]byte, Stats, error) {
	var st Stats
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, st, fmt.Errorf("httpboot: %q: %w", rawURL, ErrURL)
	}
	if err := CheckURL(u); err != nil {
		return nil, st, err
	}
	maxRedir := c.MaxRedirects
	if maxRedir <= 0 {
		maxRedir = 5
	}
	if limit <= 0 {
		limit = c.MaxSize
	}
	if limit <= 0 {
		limit = 1 << 30
	}
	hc := &http.Client{
		Transport: c.transport(),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedir {
				return fmt.Errorf("more than %d redirects: %w", maxRedir, ErrRedirect)
			}
			if err := CheckURL(req.URL); err != nil {
				return fmt.Errorf("to %s: %w", req.URL.Redacted(), errors.Join(ErrRedirect, err))
			}
			st.Redirects = len(via)
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, st, fmt.Errorf("httpboot: %s: %w", u.Redacted(), err)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, st, fmt.Errorf("httpboot: GET %s: %w", u.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	st.URL = resp.Request.URL.Redacted()
	if resp.StatusCode != http.StatusOK {
		return nil, st, fmt.Errorf("httpboot: GET %s: %w", st.URL, &StatusError{Code: resp.StatusCode, Status: resp.Status})
	}
	if resp.ContentLength > limit {
		return nil, st, fmt.Errorf("httpboot: GET %s: Content-Length %d, at most %d allowed: %w", st.URL, resp.ContentLength, limit, ErrTooLarge)
	}
	// Allocate what the server announced (already bounded), and grow
	// otherwise; read one byte more than allowed to notice a liar.
	buf := make([]byte, 0, max(resp.ContentLength, 0)+1)
	for {
		if int64(len(buf)) > limit {
			return nil, st, fmt.Errorf("httpboot: GET %s: more than %d bytes: %w", st.URL, limit, ErrTooLarge)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		room := min(int64(cap(buf)-len(buf)), limit+1-int64(len(buf)))
		n, err := resp.Body.Read(buf[len(buf) : len(buf)+int(room)])
		buf = buf[:len(buf)+n]
		st.Bytes = int64(len(buf))
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, st, fmt.Errorf("httpboot: GET %s: after %d bytes: %w", st.URL, len(buf), err)
		}
	}
	if int64(len(buf)) > limit {
		return nil, st, fmt.Errorf("httpboot: GET %s: more than %d bytes: %w", st.URL, limit, ErrTooLarge)
	}
	return buf, st, nil
}

// unwrapURLError drops net/http's *url.Error wrapper, whose text repeats
// the method and URL already in our message.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// CloseIdle closes kept-alive connections (before the stack goes).
func (c *Client) CloseIdle() {
	c.transport().CloseIdleConnections()
}
