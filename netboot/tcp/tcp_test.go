package tcp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/gopvgrub/gopvgrub/netboot/nettest"
	"github.com/gopvgrub/gopvgrub/netboot/tcp"
)

var (
	srvAddr = netip.MustParsePrefix("10.0.0.1/24")
	cliAddr = netip.MustParsePrefix("10.0.0.10/24")
)

// pair is two stations on one simulated segment, each with TCP.
type pair struct {
	hub      *nettest.Hub
	srv, cli *nettest.Station
	st, ct   *tcp.Stack
}

func newPair(t testing.TB) *pair {
	t.Helper()
	p := &pair{hub: nettest.NewHub()}
	var err error
	if p.srv, err = p.hub.NewStation([6]byte{2, 0, 0, 0, 0, 1}, srvAddr); err != nil {
		t.Fatal(err)
	}
	if p.cli, err = p.hub.NewStation([6]byte{2, 0, 0, 0, 0, 2}, cliAddr); err != nil {
		t.Fatal(err)
	}
	if p.st, err = tcp.New(p.srv.Stack); err != nil {
		t.Fatal(err)
	}
	if p.ct, err = tcp.New(p.cli.Stack); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.ct.Close()
		p.st.Close()
		p.cli.Close()
		p.srv.Close()
	})
	return p
}

// serve sends data to every connection on port, then closes it.
func serve(t testing.TB, s *tcp.Stack, port uint16, data []byte) {
	t.Helper()
	l, err := s.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(data)
			}()
		}
	}()
}

func fetch(t *testing.T, s *tcp.Stack, to netip.AddrPort) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := s.Dial(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func random(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	r.Read(b)
	return b
}

func TestTransfer(t *testing.T) {
	p := newPair(t)
	data := random(4 << 20)
	serve(t, p.st, 80, data)
	got := fetch(t, p.ct, netip.AddrPortFrom(srvAddr.Addr(), 80))
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("got %d bytes, want the %d sent", len(got), len(data))
	}
	if st := p.cli.Stack.Stats(); st.Handled == 0 {
		t.Fatalf("the IP stack passed no packet to TCP: %+v", st)
	}
}

// TestLossyWire drops, duplicates and reorders frames: TCP must still
// deliver every byte in order.
func TestLossyWire(t *testing.T) {
	p := newPair(t)
	var n, dropped atomic.Int64
	var held []byte
	p.hub.SetFault(func(from *nettest.Port, f []byte) [][]byte {
		switch k := n.Add(1); {
		case k%23 == 0:
			dropped.Add(1)
			return nil
		case k%31 == 0:
			return [][]byte{f, f}
		case k%37 == 0 && held == nil:
			held = f
			return nil
		case held != nil:
			h := held
			held = nil
			return [][]byte{f, h}
		}
		return [][]byte{f}
	})
	data := random(1 << 20)
	serve(t, p.st, 8080, data)
	got := fetch(t, p.ct, netip.AddrPortFrom(srvAddr.Addr(), 8080))
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want the %d sent, in order", len(got), len(data))
	}
	if dropped.Load() == 0 {
		t.Fatal("the fault hook dropped nothing: the test did not test loss")
	}
}

func TestDialErrors(t *testing.T) {
	p := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Nobody listens: the peer resets.
	if _, err := p.ct.Dial(ctx, netip.AddrPortFrom(srvAddr.Addr(), 81)); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	if _, err := p.ct.Dial(ctx, netip.MustParseAddrPort("[::1]:80")); !errors.Is(err, ipv4.ErrBadAddress) {
		t.Fatalf("IPv6 dial: %v", err)
	}
	// Nobody at that address: ARP fails, the dial ends with the context.
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, err := p.ct.Dial(short, netip.MustParseAddrPort("10.0.0.99:80")); err == nil {
		t.Fatal("dial to an absent host succeeded")
	}
	// ARP gives up after its 3 requests (3 s).
	for deadline := time.Now().Add(5 * time.Second); p.ct.SendErrors() == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if p.ct.SendErrors() == 0 {
		t.Fatal("no send error counted for an unresolvable next hop")
	}
}

func TestNeedsAddress(t *testing.T) {
	hub := nettest.NewHub()
	s, err := hub.NewStation([6]byte{2, 0, 0, 0, 0, 3}, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := tcp.New(s.Stack); !errors.Is(err, ipv4.ErrNoAddress) {
		t.Fatalf("New before DHCP: %v", err)
	}
}

// TestClose: after Close, Dial fails, open connections end, and the IP
// stack (still working for UDP) no longer takes TCP.
func TestClose(t *testing.T) {
	p := newPair(t)
	l, err := p.st.Listen(90)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.ct.Dial(ctx, netip.AddrPortFrom(srvAddr.Addr(), 90))
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	defer sc.Close()
	p.ct.Close()
	if _, err := p.ct.Dial(ctx, netip.AddrPortFrom(srvAddr.Addr(), 90)); !errors.Is(err, tcp.ErrClosed) {
		t.Fatalf("Dial after Close: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a connection of a closed stack succeeded")
	}
	// The server's side sees the reset the close sent.
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := sc.Read(make([]byte, 1)); err == nil {
		t.Fatal("the peer did not see the connection end")
	}
	if err := p.cli.Stack.Err(); err != nil {
		t.Fatalf("the IP stack stopped with TCP: %v", err)
	}
}
