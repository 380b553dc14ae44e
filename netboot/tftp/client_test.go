package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
)

// The scripted tests play the server by hand, packet by packet, against a
// client on scriptConn; the integration tests (integration_test.go) run the
// fake server over the IP stack, and real_test.go real servers.

type dgram struct {
	b    []byte
	addr netip.AddrPort
	err  error
}

type scriptConn struct {
	in     chan dgram // server -> client
	out    chan dgram // client -> server
	closed chan struct{}
	once   sync.Once
}

func newScriptConn() *scriptConn {
	return &scriptConn{in: make(chan dgram, 64), out: make(chan dgram, 1024), closed: make(chan struct{})}
}

func (c *scriptConn) ReadFrom(ctx context.Context, p []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-c.in:
		if d.err != nil {
			return 0, d.addr, d.err
		}
		return copy(p, d.b), d.addr, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, ipv4.ErrClosed
	case <-ctx.Done():
		return 0, netip.AddrPort{}, ctx.Err()
	}
}

func (c *scriptConn) WriteTo(ctx context.Context, p []byte, to netip.AddrPort) error {
	select {
	case c.out <- dgram{b: bytes.Clone(p), addr: to}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *scriptConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

var (
	server  = netip.MustParseAddrPort("10.0.0.1:69")
	tid     = netip.MustParseAddrPort("10.0.0.1:40000")
	otherIP = netip.MustParseAddrPort("10.0.0.9:40000")
)

// script runs a transfer on a scriptConn and lets the test be the server.
type script struct {
	t    *testing.T
	conn *scriptConn
	done chan struct{}
	data []byte
	st   Stats
	err  error
}

func run(t *testing.T, o Options, name string) *script {
	t.Helper()
	s := &script{t: t, conn: newScriptConn(), done: make(chan struct{})}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	c := &Client{Listen: func() (ipv4.PacketConn, error) { return s.conn, nil }, Options: o}
	go func() {
		defer close(s.done)
		var buf bytes.Buffer
		s.st, s.err = c.Get(context.Background(), server, name, &buf)
		s.data = buf.Bytes()
	}()
	return s
}

// expect reads what the client sent next, which must have opcode op (and,
// for ACK, block).
func (s *script) expect(op uint16, block int, to netip.AddrPort) Packet {
	s.t.Helper()
	var d dgram
	select {
	case d = <-s.conn.out:
	case <-s.done:
		// Finished, but what it sent before finishing comes first.
		select {
		case d = <-s.conn.out:
		default:
			s.t.Fatalf("client finished (%v) while op %d block %d was expected", s.err, op, block)
		}
	case <-time.After(5 * time.Second):
		s.t.Fatalf("client sent nothing; want op %d block %d", op, block)
	}
	{
		p, err := ParsePacket(d.b)
		if err != nil {
			s.t.Fatalf("client sent garbage %x: %v", d.b, err)
		}
		if p.Op != op || (block >= 0 && int(p.Block) != block) || d.addr != to {
			s.t.Fatalf("client sent %+v to %v, want op %d block %d to %v", p, d.addr, op, block, to)
		}
		return p
	}
}

func (s *script) send(from netip.AddrPort, p Packet) {
	s.conn.in <- dgram{b: p.Append(nil), addr: from}
}

func (s *script) sendRaw(from netip.AddrPort, b []byte) {
	s.conn.in <- dgram{b: b, addr: from}
}

func (s *script) wait() {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Fatal("client did not finish")
	}
}

// quiet checks the client sends nothing for a moment.
func (s *script) quiet() {
	s.t.Helper()
	select {
	case d := <-s.conn.out:
		p, _ := ParsePacket(d.b)
		s.t.Fatalf("unexpected packet %+v to %v", p, d.addr)
	case <-time.After(30 * time.Millisecond):
	}
}

func data(block uint16, b []byte) Packet { return Packet{Op: OpDATA, Block: block, Data: b} }

func oack(kv ...string) Packet {
	p := Packet{Op: OpOACK}
	for i := 0; i < len(kv); i += 2 {
		p.Options = append(p.Options, Option{kv[i], kv[i+1]})
	}
	return p
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

func TestRequestOptions(t *testing.T) {
	s := run(t, Options{BlockSize: 1468, WindowSize: 8, Timeout: 1500 * time.Millisecond}, "pxe/menu.lst")
	rrq := s.expect(OpRRQ, -1, server)
	if rrq.Filename != "pxe/menu.lst" || rrq.Mode != "octet" {
		t.Fatalf("rrq %+v", rrq)
	}
	want := []Option{{"blksize", "1468"}, {"tsize", "0"}, {"timeout", "2"}, {"windowsize", "8"}}
	if fmt.Sprint(rrq.Options) != fmt.Sprint(want) {
		t.Fatalf("options %v, want %v", rrq.Options, want)
	}
	s.send(tid, Packet{Op: OpERROR, ErrCode: ErrCodeNotFound, ErrMsg: "no\x1b[2Jsuch file"})
	s.wait()
	var se *ServerError
	if !errors.As(s.err, &se) || se.Code != ErrCodeNotFound || se.Message != "no?[2Jsuch file" {
		t.Fatalf("err = %v", s.err)
	}
	if msg := s.err.Error(); !bytes.Contains([]byte(msg), []byte("file not found")) || !bytes.Contains([]byte(msg), []byte("pxe/menu.lst")) {
		t.Fatalf("message %q", msg)
	}

	// Defaults: no blksize, no windowsize.
	s = run(t, Options{}, "f")
	rrq = s.expect(OpRRQ, -1, server)
	if fmt.Sprint(rrq.Options) != fmt.Sprint([]Option{{"tsize", "0"}, {"timeout", "1"}}) {
		t.Fatalf("default options %v", rrq.Options)
	}
	s.send(tid, Packet{Op: OpERROR, ErrCode: ErrCodeAccess})
	s.wait()
}

func TestPlainServer(t *testing.T) {
	// The server ignores the options and starts sending: 512-byte
	// blocks, ACK each.
	file := pattern(1300)
	s := run(t, Options{BlockSize: 1468, WindowSize: 4}, "f")
	s.expect(OpRRQ, -1, server)
	s.send(tid, data(1, file[:512]))
	s.expect(OpACK, 1, tid)
	s.send(tid, data(2, file[512:1024]))
	s.expect(OpACK, 2, tid)
	s.send(tid, data(3, file[1024:]))
	s.expect(OpACK, 3, tid)
	s.wait()
	if s.err != nil || !bytes.Equal(s.data, file) {
		t.Fatalf("err %v, %d bytes", s.err, len(s.data))
	}
	if !s.st.OptionsIgnored || s.st.BlockSize != 512 || s.st.WindowSize != 1 || s.st.Blocks != 3 {
		t.Fatalf("stats %+v", s.st)
	}
}

func TestWindowedTransfer(t *testing.T) {
	file := pattern(10*100 + 37)
	s := run(t, Options{BlockSize: 100, WindowSize: 4}, "f")
	s.expect(OpRRQ, -1, server)
	s.send(tid, oack("blksize", "100", "windowsize", "4", "tsize", strconv.Itoa(len(file)), "timeout", "1"))
	s.expect(OpACK, 0, tid)
	for b := 1; b <= 11; b++ {
		end := min(b*100, len(file))
		s.send(tid, data(uint16(b), file[(b-1)*100:end]))
		if b%4 == 0 || b == 11 {
			s.expect(OpACK, b, tid)
		}
	}
	s.wait()
	if s.err != nil || !bytes.Equal(s.data, file) {
		t.Fatalf("err %v, %d bytes", s.err, len(s.data))
	}
	if s.st.BlockSize != 100 || s.st.WindowSize != 4 || s.st.TransferSize != int64(len(file)) {
		t.Fatalf("stats %+v", s.st)
	}
}

func TestExactMultipleEndsWithEmptyBlock(t *testing.T) {
	file := pattern(1024)
	s := run(t, Options{}, "f")
	s.expect(OpRRQ, -1, server)
	s.send(tid, oack("tsize", "1024"))
	s.expect(OpACK, 0, tid)
	s.send(tid, data(1, file[:512]))
	s.expect(OpACK, 1, tid)
	s.send(tid, data(2, file[512:]))
	s.expect(OpACK, 2, tid)
	s.send(tid, data(3, nil))
	s.expect(OpACK, 3, tid)
	s.wait()
	if s.err != nil || !bytes.Equal(s.data, file) {
		t.Fatalf("err %v, %d bytes", s.err, len(s.data))
	}
}

func TestOptionsRefused(t *testing.T) {
	s := run(t, Options{BlockSize: 1468}, "f")
	s.expect(OpRRQ, -1, server)
	s.send(tid, Packet{Op: OpERROR, ErrCode: ErrCodeOptionRefused})
	rrq := s.expect(OpRRQ, -1, server)
	if len(rrq.Options) != 0 {
		t.Fatalf("retry with options %v", rrq.Options)
	}
	tid2 := netip.MustParseAddrPort("10.0.0.1:40001")
	s.send(tid2, data(1, []byte("small")))
	s.expect(OpACK, 1, tid2)
	s.wait()
	if s.err != nil || string(s.data) != "small" || !s.st.OptionsIgnored {
		t.Fatalf("err %v %q %+v", s.err, s.data, s.st)
	}
}

func TestDuplicatesAndStrays(t *testing.T) {
	file := pattern(1200)
	s := run(t, Options{}, "f")
	s.expect(OpRRQ, -1, server)
	s.send(tid, oack("tsize", "1200", "timeout", "1"))
	s.expect(OpACK, 0, tid)
	// The OACK again: our ACK 0 was lost.
	s.send(tid, oack("tsize", "1200", "timeout", "1"))
	s.expect(OpACK, 0, tid)
	s.send(tid, data(1, file[:512]))
	s.expect(OpACK, 1, tid)
	// Block 1 again: ACK again, write once.
	s.send(tid, data(1, file[:512]))
	s.expect(OpACK, 1, tid)
	// A second transfer for our request, from another port of the
	// server: told off with ERROR 5. Another host: ignored.
	stray := netip.MustParseAddrPort("10.0.0.1:40002")
	s.send(stray, data(1, file[:512]))
	p := s.expect(OpERROR, -1, stray)
	if p.ErrCode != ErrCodeUnknownTID {
		t.Fatalf("error %+v", p)
	}
	s.send(otherIP, data(2, bytes.Repeat([]byte("E"), 512)))
	s.quiet()
	s.send(tid, data(2, file[512:1024]))
	s.expect(OpACK, 2, tid)
	s.send(tid, data(3, file[1024:]))
	s.expect(OpACK, 3, tid)
	s.wait()
	if s.err != nil || !bytes.Equal(s.data, file) {
		t.Fatalf("err %v, %d bytes", s.err, len(s.data))
	}
	if s.st.Duplicates != 2 || s.st.Strays != 2 {
		t.Fatalf("stats %+v", s.st)
	}
}

func TestOutOfOrderWindow(t *testing.T) {
	file := pattern(5*64 + 10)
	s := run(t, Options{BlockSize: 64, WindowSize: 4}, "f")
	s.expect(OpRRQ, -1, server)
	s.send(tid, oack("blksize", "64", "windowsize", "4"))
	s.expect(OpACK, 0, tid)
	blk := func(b int) Packet { return data(uint16(b), file[(b-1)*64:min(b*64, len(file))]) }
	// Block 2 is lost: 3 and 4 arrive ahead of the gap. The client
	// ACKs 1 once (not for every block past the gap).
	s.send(tid, blk(1))
	s.send(tid, blk(3))
	s.expect(OpACK, 1, tid)
	s.send(tid, blk(4))
	s.quiet()
	// The server resends from 2.
	for b := 2; b <= 5; b++ {
		s.send(tid, blk(b))
	}
	s.expect(OpACK, 5, tid)
	s.send(tid, blk(6))
	s.expect(OpACK, 6, tid)
	s.wait()
	if s.err != nil || !bytes.Equal(s.data, file) {
		t.Fatalf("err %v, %d bytes", s.err, len(s.data))
	}
	if s.st.OutOfOrder != 2 {
		t.Fatalf("stats %+v", s.st)
	}
}

func TestRetransmitAndTimeout(t *testing.T) {
	o := Options{Timeout: 10 * time.Millisecond, MaxTimeout: 40 * time.Millisecond, Retries: 3}
	s := run(t, o, "f")
	for range 4 {
		s.expect(OpRRQ, -1, server)
	}
	s.wait()
	if !errors.Is(s.err, ErrTimeout) || s.st.Retransmissions != 3 {
		t.Fatalf("err %v, stats %+v", s.err, s.st)
	}

	// In a transfer a timeout repeats the last ACK; progress resets
	// the retry count.
	s = run(t, o, "f")
	s.expect(OpRRQ, -1, server)
	s.send(tid, data(1, pattern(512)))
	s.expect(OpACK, 1, tid)
	s.expect(OpACK, 1, tid) // retransmitted
	s.send(tid, data(2, []byte("end")))
	for s.expect(OpACK, -1, tid).Block != 2 {
		// more retransmissions of ACK 1 on a slow machine
	}
	s.wait()
	if s.err != nil || len(s.data) != 515 {
		t.Fatalf("err %v, %d bytes", s.err, len(s.data))
	}

	// A server gone mid-transfer: the client gives up naming the block.
	s = run(t, o, "f")
	s.expect(OpRRQ, -1, server)
	s.send(tid, data(1, pattern(512)))
	for range 4 {
		s.expect(OpACK, 1, tid)
	}
	p := s.expect(OpERROR, -1, tid) // we tell it we gave up
	s.wait()
	if !errors.Is(s.err, ErrTimeout) || !bytes.Contains([]byte(s.err.Error()), []byte("block 2")) || p.ErrCode != 0 {
		t.Fatalf("err %v", s.err)
	}
}

func TestUnreachable(t *testing.T) {
	s := run(t, Options{}, "f")
	s.expect(OpRRQ, -1, server)
	ue := &ipv4.UnreachableError{Reporter: server.Addr(), Dst: server, Code: 3}
	// About another destination: noted, not fatal.
	s.conn.in <- dgram{err: &ipv4.UnreachableError{Reporter: server.Addr(), Dst: otherIP, Code: 3}}
	s.quiet()
	s.conn.in <- dgram{err: ue}
	s.wait()
	var got *ipv4.UnreachableError
	if !errors.As(s.err, &got) || got.Dst != server {
		t.Fatalf("err %v", s.err)
	}
}

func TestReadFileRestarts(t *testing.T) {
	var conns []*scriptConn
	var mu sync.Mutex
	c := &Client{
		Listen: func() (ipv4.PacketConn, error) {
			mu.Lock()
			defer mu.Unlock()
			conn := newScriptConn()
			conns = append(conns, conn)
			if len(conns) < 3 {
				// The first two transfers: the server is not
				// there yet.
				conn.in <- dgram{err: &ipv4.UnreachableError{Dst: server, Code: 3}}
			} else {
				conn.in <- dgram{b: data(1, []byte("at last")).Append(nil), addr: tid}
			}
			return conn, nil
		},
		Options: Options{Timeout: 5 * time.Millisecond},
	}
	var reports []string
	c.Report = func(name string, s Stats, _ time.Duration, err error) {
		reports = append(reports, fmt.Sprintf("%s %d %v", name, s.Bytes, err != nil))
	}
	b, err := c.ReadFile(context.Background(), server, "f")
	if err != nil || string(b) != "at last" || len(conns) != 3 {
		t.Fatalf("ReadFile = %q %v after %d transfers", b, err, len(conns))
	}
	if g := strings.Join(reports, ","); g != "f 0 true,f 0 true,f 7 false" {
		t.Errorf("reports: %s", g)
	}
	// Server errors are not retried.
	conns = nil
	c.Listen = func() (ipv4.PacketConn, error) {
		conn := newScriptConn()
		conns = append(conns, conn)
		conn.in <- dgram{b: Packet{Op: OpERROR, ErrCode: 1, ErrMsg: "nope"}.Append(nil), addr: tid}
		return conn, nil
	}
	if _, err := c.ReadFile(context.Background(), server, "f"); !errors.As(err, new(*ServerError)) || len(conns) != 1 {
		t.Fatalf("err %v after %d transfers", err, len(conns))
	}
	// Attempts bound the restarts.
	conns = nil
	c.Attempts = 2
	c.Listen = func() (ipv4.PacketConn, error) {
		conn := newScriptConn()
		conns = append(conns, conn)
		conn.in <- dgram{err: &ipv4.UnreachableError{Dst: server, Code: 3}}
		return conn, nil
	}
	if _, err := c.ReadFile(context.Background(), server, "f"); err == nil || len(conns) != 2 {
		t.Fatalf("err %v after %d transfers", err, len(conns))
	}
}

func TestProtocolViolations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		play    func(s *script)
		want    error
		errCode int // ERROR code the client must send (-1: none)
	}{
		{
			name: "block larger than blksize",
			play: func(s *script) {
				s.send(tid, oack("tsize", "2000"))
				s.expect(OpACK, 0, tid)
				s.send(tid, data(1, make([]byte, 513)))
			},
			want: ErrProtocol, errCode: ErrCodeIllegalOp,
		},
		{
			name: "block larger than requested without OACK",
			opts: Options{BlockSize: 1024},
			play: func(s *script) { s.send(tid, data(1, make([]byte, 600))) },
			want: ErrProtocol, errCode: ErrCodeIllegalOp,
		},
		{
			name: "unrequested option",
			play: func(s *script) { s.send(tid, oack("tsize", "5", "multicast", "1")) },
			want: ErrOptions, errCode: ErrCodeOptionRefused,
		},
		{
			name: "blksize above request",
			opts: Options{BlockSize: 1024},
			play: func(s *script) { s.send(tid, oack("blksize", "2048")) },
			want: ErrOptions, errCode: ErrCodeOptionRefused,
		},
		{
			name: "windowsize zero",
			opts: Options{WindowSize: 8},
			play: func(s *script) { s.send(tid, oack("windowsize", "0")) },
			want: ErrOptions, errCode: ErrCodeOptionRefused,
		},
		{
			name: "tsize not a number",
			play: func(s *script) { s.send(tid, oack("tsize", "-1")) },
			want: ErrOptions, errCode: ErrCodeOptionRefused,
		},
		{
			name: "announced size above the limit",
			opts: Options{MaxSize: 1000},
			play: func(s *script) { s.send(tid, oack("tsize", "1001")) },
			want: ErrTooLarge, errCode: ErrCodeDiskFull,
		},
		{
			name: "growing beyond the limit",
			opts: Options{MaxSize: 1000, NoTransferSize: true},
			play: func(s *script) {
				s.send(tid, data(1, make([]byte, 512)))
				s.expect(OpACK, 1, tid)
				s.send(tid, data(2, make([]byte, 512)))
			},
			want: ErrTooLarge, errCode: ErrCodeDiskFull,
		},
		{
			name: "more than announced",
			play: func(s *script) {
				s.send(tid, oack("tsize", "100"))
				s.expect(OpACK, 0, tid)
				s.send(tid, data(1, make([]byte, 200)))
			},
			want: ErrSize, errCode: ErrCodeIllegalOp,
		},
		{
			name: "less than announced",
			play: func(s *script) {
				s.send(tid, oack("tsize", "300"))
				s.expect(OpACK, 0, tid)
				s.send(tid, data(1, make([]byte, 200)))
				s.expect(OpACK, 1, tid)
			},
			want: ErrSize, errCode: -1,
		},
		{
			name: "malformed packet",
			play: func(s *script) {
				s.send(tid, data(1, make([]byte, 512)))
				s.expect(OpACK, 1, tid)
				s.sendRaw(tid, []byte{0, 9, 1})
			},
			want: ErrProtocol, errCode: ErrCodeIllegalOp,
		},
		{
			name: "ACK from the server",
			play: func(s *script) { s.send(tid, Packet{Op: OpACK, Block: 1}) },
			want: ErrProtocol, errCode: -1,
		},
		{
			name: "OACK in the middle",
			play: func(s *script) {
				s.send(tid, data(1, make([]byte, 512)))
				s.expect(OpACK, 1, tid)
				s.send(tid, oack("tsize", "5"))
			},
			want: ErrProtocol, errCode: ErrCodeIllegalOp,
		},
		{
			name: "oversized datagram",
			play: func(s *script) { s.sendRaw(tid, make([]byte, 2000)) },
			want: ErrProtocol, errCode: -1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := run(t, tc.opts, "f")
			s.expect(OpRRQ, -1, server)
			tc.play(s)
			if tc.errCode >= 0 {
				p := s.expect(OpERROR, -1, tid)
				if int(p.ErrCode) != tc.errCode {
					t.Fatalf("client sent ERROR %d, want %d", p.ErrCode, tc.errCode)
				}
			}
			s.wait()
			if !errors.Is(s.err, tc.want) {
				t.Fatalf("err = %v, want %v", s.err, tc.want)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	conn := newScriptConn()
	c := &Client{Listen: func() (ipv4.PacketConn, error) { return conn, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Get(ctx, server, "f", &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	select {
	case <-conn.closed:
	default:
		t.Fatal("conn not closed")
	}
}

func TestBadNames(t *testing.T) {
	c := &Client{Listen: func() (ipv4.PacketConn, error) { t.Fatal("listened"); return nil, nil }}
	for _, name := range []string{"", "a\x00b", string(make([]byte, 1025))} {
		if _, err := c.Get(context.Background(), server, name, &bytes.Buffer{}); !errors.Is(err, ErrBadName) {
			t.Errorf("%q: %v", name, err)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("out of memory") }

func TestWriterError(t *testing.T) {
	conn := newScriptConn()
	c := &Client{Listen: func() (ipv4.PacketConn, error) { return conn, nil }}
	conn.in <- dgram{b: data(1, []byte("x")).Append(nil), addr: tid}
	_, err := c.Get(context.Background(), server, "f", failWriter{})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("out of memory")) {
		t.Fatalf("err %v", err)
	}
}

func TestProgress(t *testing.T) {
	var calls [][2]int64
	s := run(t, Options{Progress: func(n, total int64) { calls = append(calls, [2]int64{n, total}) }}, "f")
	s.expect(OpRRQ, -1, server)
	s.send(tid, oack("tsize", "600"))
	s.expect(OpACK, 0, tid)
	s.send(tid, data(1, make([]byte, 512)))
	s.expect(OpACK, 1, tid)
	s.send(tid, data(2, make([]byte, 88)))
	s.expect(OpACK, 2, tid)
	s.wait()
	if fmt.Sprint(calls) != "[[512 600] [600 600]]" {
		t.Fatalf("progress %v", calls)
	}
}

// discardConn swallows what the client sends.
type discardConn struct{ sent int }

func (c *discardConn) ReadFrom(ctx context.Context, p []byte) (int, netip.AddrPort, error) {
	<-ctx.Done()
	return 0, netip.AddrPort{}, ctx.Err()
}
func (c *discardConn) WriteTo(context.Context, []byte, netip.AddrPort) error { c.sent++; return nil }
func (c *discardConn) Close() error                                          { return nil }

// FuzzTransfer feeds a server's packets, parsed from the fuzzer's bytes
// (each prefixed by a length byte), to the transfer state machine: it must
// never panic, never write more than MaxSize, never write a block twice,
// and every packet must leave it done, failed, or still consistent.
func FuzzTransfer(f *testing.F) {
	enc := func(ps ...Packet) []byte {
		var b []byte
		for _, p := range ps {
			e := p.Append(nil)
			b = append(append(b, byte(len(e))), e...)
		}
		return b
	}
	f.Add(enc(oack("blksize", "16", "windowsize", "2", "tsize", "40"), data(1, pattern(16)), data(2, pattern(16)), data(3, pattern(8))))
	f.Add(enc(data(1, pattern(512)), data(1, pattern(512)), data(3, nil), data(2, nil)))
	f.Add(enc(Packet{Op: OpERROR, ErrCode: 8}, data(1, []byte("x"))))
	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &discardConn{}
		var out bytes.Buffer
		tr := &transfer{
			opts: Options{BlockSize: 16, WindowSize: 4, MaxSize: 100}.withDefaults(),
			conn: conn, server: server, dest: server, name: "f", w: &out,
		}
		ctx := context.Background()
		if err := tr.start(ctx, true); err != nil {
			t.Fatal(err)
		}
		for len(in) > 0 {
			n := int(in[0])
			in = in[1:]
			if n > len(in) {
				n = len(in)
			}
			p, err := ParsePacket(in[:n])
			in = in[n:]
			if err != nil {
				continue
			}
			if p.Op == OpDATA && len(p.Data) > tr.blksize {
				continue // run() rejects these before handle
			}
			before := out.Len()
			_, done, err := tr.handle(ctx, tid, p)
			if out.Len() > 100 || int64(out.Len()) != tr.st.Bytes {
				t.Fatalf("wrote %d bytes, counted %d", out.Len(), tr.st.Bytes)
			}
			if out.Len() != before && (p.Op != OpDATA || out.Len()-before != len(p.Data)) {
				t.Fatalf("packet %+v wrote %d bytes", p, out.Len()-before)
			}
			if done || err != nil {
				return
			}
		}
	})
}

func TestEndlessDuplicatesDoNotKeepItAlive(t *testing.T) {
	// A server that repeats the same block forever makes no progress:
	// the retransmission timer is not reset by it, and the transfer
	// fails in bounded time.
	s := run(t, Options{Timeout: 20 * time.Millisecond, MaxTimeout: 20 * time.Millisecond, Retries: 2}, "f")
	s.expect(OpRRQ, -1, server)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-s.done:
				return
			case s.conn.in <- dgram{b: data(1, pattern(512)).Append(nil), addr: tid}:
			}
			// Drain what the client sends so it never blocks.
			for len(s.conn.out) > 0 {
				<-s.conn.out
			}
			time.Sleep(time.Millisecond)
		}
	}()
	start := time.Now()
	s.wait()
	if !errors.Is(s.err, ErrTimeout) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v", s.err, time.Since(start))
	}
	if s.st.Bytes != 512 || s.st.Duplicates == 0 {
		t.Fatalf("stats %+v", s.st)
	}
}
