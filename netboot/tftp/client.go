// Package tftp is a TFTP client (RFC 1350) with option negotiation (RFC 2347):
// block size (RFC 2348), transfer size and timeout (RFC 2349) and window size
// (RFC 7440). It runs over any ipv4.PacketConn: in the bootloader a UDP port of
// package ipv4's stack, in tests a host socket.
//
// It is our own because the Go TFTP libraries (pin/tftp, pack.ag/tftp) open
// kernel sockets with net.ListenUDP, which the bootloader does not have, and
// pin/tftp has no window size.
//
// The server is untrusted. A transfer is bounded in size (Options.MaxSize,
// checked against the announced tsize before the first byte and against every
// block), in time (every wait is bounded by a retransmission timeout with
// exponential backoff and a retry count, and by the caller's context) and in
// memory (one receive buffer of blksize+5 bytes). Packets from other hosts or
// ports are answered with ERROR 5 "unknown transfer ID" as RFC 1350 requires
// and otherwise ignored; duplicates and out-of-order blocks never reach the
// writer; a server's ERROR packet is returned as *ServerError with its text
// made printable.
package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
)

// Error is the type of this package's sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Errors.
const (
	// ErrProtocol: the server sent something the protocol does not
	// allow (a malformed packet, an oversized block, an opcode out of
	// place).
	ErrProtocol = Error("tftp: protocol violation by the server")
	// ErrOptions: the server's OACK holds an option we did not ask for
	// or a value we cannot accept.
	ErrOptions = Error("tftp: unacceptable option in the server's OACK")
	// ErrTimeout: the server stopped answering; every retransmission
	// went unanswered.
	ErrTimeout = Error("tftp: server not responding")
	// ErrTooLarge: the file exceeds Options.MaxSize.
	ErrTooLarge = Error("tftp: file larger than the limit")
	// ErrSize: the file's length differs from the tsize the server
	// announced.
	ErrSize = Error("tftp: file length differs from the announced size")
	// ErrBadName: the filename is empty or contains a NUL byte.
	ErrBadName = Error("tftp: invalid filename")
)

// Port is the TFTP server port.
const Port = 69

// Options tune a transfer. The zero value gives plain RFC 1350 (512-byte
// blocks, no options except tsize) with the default timeouts.
type Options struct {
	// BlockSize to ask for (RFC 2348); 0 or 512 sends no blksize option.
	// The bootloader asks for its MTU less 32 bytes of headers (1468 at
	// 1500), so that no block is fragmented.
	BlockSize int
	// WindowSize to ask for (RFC 7440): blocks the server sends before
	// waiting for an ACK; 0 or 1 sends no option.
	WindowSize int
	// Timeout is the first retransmission timeout (default 1s); it
	// doubles on each consecutive retransmission up to MaxTimeout and
	// goes back to Timeout whenever the transfer progresses. It is also
	// sent as the "timeout" option, in whole seconds (at least 1), for
	// the server's own retransmissions.
	Timeout time.Duration
	// MaxTimeout caps the backoff (default 8s).
	MaxTimeout time.Duration
	// Retries is how many times one packet is retransmitted before the
	// transfer fails with ErrTimeout (default 5).
	Retries int
	// MaxSize is the largest file accepted (default 1 GiB). A larger
	// announced tsize fails before the transfer starts; a transfer that
	// grows beyond it is aborted with ERROR 3 sent to the server.
	MaxSize int64
	// NoTransferSize leaves out the tsize option.
	NoTransferSize bool
	// Progress, if set, is called after each block with the bytes
	// received so far and the announced size (-1 if unknown).
	Progress func(received, total int64)
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.MaxTimeout < o.Timeout {
		o.MaxTimeout = max(8*time.Second, o.Timeout)
	}
	if o.Retries <= 0 {
		o.Retries = 5
	}
	if o.MaxSize <= 0 {
		o.MaxSize = 1 << 30
	}
	if o.BlockSize < MinBlockSize || o.BlockSize > MaxBlockSize {
		o.BlockSize = DefaultBlockSize
	}
	if o.WindowSize < 1 || o.WindowSize > MaxWindowSize {
		o.WindowSize = 1
	}
	return o
}

// Client fetches files. Each transfer binds a fresh port (its transfer ID).
type Client struct {
	// Listen binds a new UDP port (ipv4.Stack.ListenUDP(0) in the
	// bootloader).
	Listen func() (ipv4.PacketConn, error)
	Options
	// Attempts is how often ReadFile starts a transfer again after it
	// timed out or the server's port became unreachable (default 3);
	// ERROR packets and size violations are never retried.
	Attempts int
	// Report, if set, is told how each transfer attempt of ReadFile
	// went (for the console: retransmissions show a lossy network).
	Report func(name string, s Stats, elapsed time.Duration, err error)
}

// Stats describes a finished (or failed) transfer.
type Stats struct {
	Bytes           int64
	Blocks          int64
	BlockSize       int // negotiated
	WindowSize      int // negotiated
	TransferSize    int64
	Retransmissions int // our retransmissions after a timeout
	Duplicates      int // blocks received again
	OutOfOrder      int // blocks received ahead of a gap
	Strays          int // packets from other addresses or ports
	OptionsIgnored  bool
}

// ReadFile fetches a whole file into memory, starting again (up to
// Attempts times) when the server stops answering.
func (c *Client) ReadFile(ctx context.Context, server netip.AddrPort, name string) ([]byte, error) {
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var buf bytes.Buffer
	var err error
	for i := range attempts {
		buf.Reset()
		t0 := time.Now()
		var st Stats
		st, err = c.Get(ctx, server, name, &buf)
		if c.Report != nil {
			c.Report(name, st, time.Since(t0), err)
		}
		if err == nil {
			return buf.Bytes(), nil
		}
		var ue *ipv4.UnreachableError
		if !errors.Is(err, ErrTimeout) && !errors.As(err, &ue) || ctx.Err() != nil {
			return nil, err
		}
		if i+1 < attempts {
			// Give a restarting server a moment.
			t := time.NewTimer(c.withDefaults().Timeout)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("%w (then: %w)", err, ctx.Err())
			}
		}
	}
	return nil, fmt.Errorf("%w (%d attempts)", err, attempts)
}

// Get fetches one file from server (normally port 69) and writes it to w.
// It returns the transfer's statistics; on error, what was written to w is
// incomplete.
func (c *Client) Get(ctx context.Context, server netip.AddrPort, name string, w io.Writer) (Stats, error) {
	if name == "" || bytes.IndexByte([]byte(name), 0) >= 0 || len(name) > 1024 {
		return Stats{}, fmt.Errorf("tftp: %q: %w", Sanitize(name, 64), ErrBadName)
	}
	conn, err := c.Listen()
	if err != nil {
		return Stats{}, fmt.Errorf("tftp: %s: %w", name, err)
	}
	defer conn.Close()
	t := &transfer{
		opts:   c.withDefaults(),
		conn:   conn,
		server: server,
		dest:   server,
		name:   name,
		w:      w,
	}
	err = t.run(ctx)
	t.st.BlockSize, t.st.WindowSize = t.blksize, t.window
	if err != nil {
		return t.st, fmt.Errorf("tftp: %s from %v: %w", Sanitize(name, 128), server, err)
	}
	return t.st, nil
}

type transfer struct {
	opts   Options
	conn   ipv4.PacketConn
	server netip.AddrPort
	dest   netip.AddrPort // server until its TID is known
	tid    bool           // dest is the server's TID
	name   string
	w      io.Writer
	st     Stats

	blksize  int
	window   int
	tsize    int64 // -1: unknown
	expected uint16
	inWindow int
	gapAcked bool
	dupAcked bool
	last     []byte // what a timeout retransmits
	withOpts bool
}

func (t *transfer) requestOptions() []Option {
	var opts []Option
	if t.opts.BlockSize != DefaultBlockSize {
		opts = append(opts, Option{OptBlockSize, strconv.Itoa(t.opts.BlockSize)})
	}
	if !t.opts.NoTransferSize {
		opts = append(opts, Option{OptTransfer, "0"})
	}
	secs := min(max(int((t.opts.Timeout+time.Second-1)/time.Second), 1), 255)
	opts = append(opts, Option{OptTimeout, strconv.Itoa(secs)})
	if t.opts.WindowSize > 1 {
		opts = append(opts, Option{OptWindowSize, strconv.Itoa(t.opts.WindowSize)})
	}
	return opts
}

func (t *transfer) send(ctx context.Context, p []byte) error {
	if err := t.conn.WriteTo(ctx, p, t.dest); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

func (t *transfer) ack(ctx context.Context, block uint16) error {
	t.last = Packet{Op: OpACK, Block: block}.Append(nil)
	return t.send(ctx, t.last)
}

// abort tells the server we give up (best effort, briefly).
func (t *transfer) abort(code uint16, msg string) {
	if !t.tid {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t.conn.WriteTo(ctx, Packet{Op: OpERROR, ErrCode: code, ErrMsg: msg}.Append(nil), t.dest)
}

func (t *transfer) start(ctx context.Context, withOpts bool) error {
	t.withOpts = withOpts
	t.blksize, t.window, t.tsize = DefaultBlockSize, 1, -1
	t.expected = 1
	t.dest, t.tid = t.server, false
	rrq := Packet{Op: OpRRQ, Filename: t.name, Mode: "octet"}
	if withOpts {
		rrq.Options = t.requestOptions()
	}
	t.last = rrq.Append(nil)
	return t.send(ctx, t.last)
}

func (t *transfer) run(ctx context.Context) error {
	if err := t.start(ctx, true); err != nil {
		return err
	}
	// The buffer holds the largest block we may be sent plus one byte,
	// so that an oversized DATA packet is detected rather than cut.
	buf := make([]byte, 4+max(t.opts.BlockSize, DefaultBlockSize)+1)
	timeout := t.opts.Timeout
	retries := 0
	deadline := time.Now().Add(timeout)
	var unreachable error
	for {
		rctx, cancel := context.WithDeadline(ctx, deadline)
		n, from, err := t.conn.ReadFrom(rctx, buf)
		cancel()
		var ue *ipv4.UnreachableError
		switch {
		case errors.As(err, &ue):
			if ue.Dst == t.dest {
				// The server's port is closed: it is gone (or
				// was restarted and forgot us).
				return ue
			}
			unreachable = ue
			continue
		case err != nil && ctx.Err() != nil:
			t.abort(ErrCodeUndefined, "cancelled")
			return err
		case errors.Is(err, context.DeadlineExceeded):
			if retries >= t.opts.Retries {
				t.abort(ErrCodeUndefined, "timeout")
				what := "an answer to the request"
				if t.tid {
					what = fmt.Sprintf("block %d", t.expected)
				}
				if unreachable != nil {
					return fmt.Errorf("no %s after %d retransmissions (last: %v): %w", what, retries, unreachable, ErrTimeout)
				}
				return fmt.Errorf("no %s after %d retransmissions: %w", what, retries, ErrTimeout)
			}
			retries++
			t.st.Retransmissions++
			timeout = min(2*timeout, t.opts.MaxTimeout)
			deadline = time.Now().Add(timeout)
			t.inWindow = 0
			t.dupAcked = false
			if t.tid {
				// ACK what we have in order, so that the server
				// resends the rest (RFC 7440 §4; for window 1 this
				// is the last ACK again).
				err = t.ack(ctx, t.expected-1)
			} else {
				err = t.send(ctx, t.last)
			}
			if err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("receive: %w", err)
		}

		if from.Addr() != t.server.Addr() || (t.tid && from != t.dest) {
			t.st.Strays++
			if from.Addr() == t.server.Addr() {
				// Another port of the server's host, typically a
				// second transfer it started for our retransmitted
				// request. RFC 1350: tell it, and carry on.
				ectx, ecancel := context.WithTimeout(ctx, 200*time.Millisecond)
				t.conn.WriteTo(ectx, Packet{Op: OpERROR, ErrCode: ErrCodeUnknownTID, ErrMsg: "unknown transfer ID"}.Append(nil), from)
				ecancel()
			}
			continue
		}
		if n == len(buf) {
			t.abort(ErrCodeIllegalOp, "packet too large")
			return fmt.Errorf("%d-byte packet exceeds block size %d: %w", n, t.blksize, ErrProtocol)
		}
		p, err := ParsePacket(buf[:n])
		if err != nil {
			t.abort(ErrCodeIllegalOp, "malformed packet")
			return err
		}
		progress, done, err := t.handle(ctx, from, p)
		if err != nil || done {
			return err
		}
		if progress {
			retries = 0
			timeout = t.opts.Timeout
			deadline = time.Now().Add(timeout)
		}
	}
}

// handle processes one packet from the server. progress reports that the
// transfer moved forward (which resets the retransmission timer).
func (t *transfer) handle(ctx context.Context, from netip.AddrPort, p Packet) (progress, done bool, err error) {
	switch p.Op {
	case OpERROR:
		if p.ErrCode == ErrCodeOptionRefused && !t.tid && t.withOpts {
			// RFC 2347: the server refuses options; ask again
			// without them.
			t.st.OptionsIgnored = true
			return true, false, t.start(ctx, false)
		}
		return false, false, &ServerError{Code: p.ErrCode, Message: Sanitize(p.ErrMsg, 128)}

	case OpOACK:
		if t.tid {
			if t.expected == 1 && t.st.Blocks == 0 {
				// Our ACK 0 was lost; the server sent the OACK
				// again.
				t.st.Duplicates++
				return false, false, t.ack(ctx, 0)
			}
			t.abort(ErrCodeIllegalOp, "unexpected OACK")
			return false, false, fmt.Errorf("OACK during the transfer: %w", ErrProtocol)
		}
		if !t.withOpts {
			t.dest, t.tid = from, true
			t.abort(ErrCodeIllegalOp, "unexpected OACK")
			return false, false, fmt.Errorf("OACK to a request without options: %w", ErrProtocol)
		}
		t.dest, t.tid = from, true
		if err := t.negotiate(p.Options); err != nil {
			code := uint16(ErrCodeOptionRefused)
			if errors.Is(err, ErrTooLarge) {
				code = ErrCodeDiskFull
			}
			t.abort(code, Sanitize(err.Error(), 100))
			return false, false, err
		}
		return true, false, t.ack(ctx, 0)

	case OpDATA:
		if !t.tid {
			if t.withOpts {
				// The server ignored our options (RFC 2347
				// allows it): plain RFC 1350 from here on.
				t.st.OptionsIgnored = true
			}
			t.dest, t.tid = from, true
		}
		if len(p.Data) > t.blksize {
			t.abort(ErrCodeIllegalOp, "block too large")
			return false, false, fmt.Errorf("block %d of %d bytes exceeds block size %d: %w", p.Block, len(p.Data), t.blksize, ErrProtocol)
		}
		return t.data(ctx, p)

	default:
		t.abort(ErrCodeIllegalOp, "unexpected opcode")
		return false, false, fmt.Errorf("opcode %d from the server: %w", p.Op, ErrProtocol)
	}
}

func (t *transfer) negotiate(opts []Option) error {
	requested := t.requestOptions()
	for _, o := range opts {
		var want string
		for _, r := range requested {
			if r.Name == o.Name {
				want = r.Value
			}
		}
		if want == "" {
			return fmt.Errorf("option %q not requested: %w", Sanitize(o.Name, 32), ErrOptions)
		}
		switch o.Name {
		case OptBlockSize:
			v, err := parseUint(o.Name, o.Value, MinBlockSize, int64(t.opts.BlockSize))
			if err != nil {
				return err
			}
			t.blksize = int(v)
		case OptWindowSize:
			v, err := parseUint(o.Name, o.Value, 1, int64(t.opts.WindowSize))
			if err != nil {
				return err
			}
			t.window = int(v)
		case OptTimeout:
			if _, err := parseUint(o.Name, o.Value, 1, 255); err != nil {
				return err
			}
		case OptTransfer:
			v, err := parseUint(o.Name, o.Value, 0, 1<<62)
			if err != nil {
				return err
			}
			if v > t.opts.MaxSize {
				return fmt.Errorf("announced size %d exceeds %d: %w", v, t.opts.MaxSize, ErrTooLarge)
			}
			t.tsize = v
			t.st.TransferSize = v
		}
	}
	return nil
}

// data handles a DATA packet from the server's TID.
func (t *transfer) data(ctx context.Context, p Packet) (progress, done bool, err error) {
	block := p.Block
	if block != t.expected && t.expected == 0 && block == 1 && t.st.Blocks >= 65535 {
		// Some servers roll the block number over to 1, not 0.
		t.expected = 1
	}
	if block != t.expected {
		if block == t.expected-1 {
			// The last block again: our ACK was lost (or the
			// server timed out on the window). ACK it again, once
			// until the transfer moves on or our own timer fires:
			// answering every copy would let duplicated packets
			// multiply (each ACK can make a windowed server resend
			// its window).
			t.st.Duplicates++
			if t.dupAcked {
				return false, false, nil
			}
			t.dupAcked = true
			return false, false, t.ack(ctx, t.expected-1)
		}
		if block-t.expected < 0x8000 {
			// Ahead of a gap (RFC 7440 §4): ACK the last block in
			// order once, so the server resends from there.
			t.st.OutOfOrder++
			if !t.gapAcked {
				t.gapAcked = true
				t.inWindow = 0
				return false, false, t.ack(ctx, t.expected-1)
			}
			return false, false, nil
		}
		t.st.Duplicates++
		return false, false, nil
	}
	size := t.st.Bytes + int64(len(p.Data))
	if size > t.opts.MaxSize {
		t.abort(ErrCodeDiskFull, "file too large")
		return false, false, fmt.Errorf("more than %d bytes: %w", t.opts.MaxSize, ErrTooLarge)
	}
	if t.tsize >= 0 && size > t.tsize {
		t.abort(ErrCodeIllegalOp, "more data than announced")
		return false, false, fmt.Errorf("more than the announced %d bytes: %w", t.tsize, ErrSize)
	}
	if _, err := t.w.Write(p.Data); err != nil {
		t.abort(ErrCodeDiskFull, "write failed")
		return false, false, fmt.Errorf("write: %w", err)
	}
	t.st.Bytes = size
	t.st.Blocks++
	t.expected++
	t.inWindow++
	t.gapAcked, t.dupAcked = false, false
	if t.opts.Progress != nil {
		t.opts.Progress(size, t.tsize)
	}
	if len(p.Data) < t.blksize {
		if t.tsize >= 0 && size != t.tsize {
			t.ack(ctx, block)
			return false, false, fmt.Errorf("%d bytes received, %d announced: %w", size, t.tsize, ErrSize)
		}
		return true, true, t.ack(ctx, block)
	}
	if t.inWindow >= t.window {
		t.inWindow = 0
		return true, false, t.ack(ctx, block)
	}
	return true, false, nil
}
