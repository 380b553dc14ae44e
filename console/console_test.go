package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/ring"
)

// evchan is one end of a simulated event channel pair: Notify on one end
// makes Wait on the other return, with a counter so that no event is lost.
type evchan struct {
	mu      sync.Mutex
	pending int
	wake    chan struct{}
	peer    *evchan
}

func evpair() (*evchan, *evchan) {
	a := &evchan{wake: make(chan struct{}, 1)}
	b := &evchan{wake: make(chan struct{}, 1)}
	a.peer, b.peer = b, a
	return a, b
}

func (c *evchan) Port() xen.Port { return 1 }
func (c *evchan) Notify() error {
	p := c.peer
	p.mu.Lock()
	p.pending++
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}
func (c *evchan) Wait(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.pending > 0 {
			c.pending = 0
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
func (c *evchan) Mask() error   { return nil }
func (c *evchan) Unmask() error { return nil }
func (c *evchan) Close() error  { return nil }

// backend simulates xenconsoled's side of the in ring: it types bytes,
// waiting for room when the 1 KiB ring is full.
type backend struct {
	in ring.Stream // the same stream, producer side
	ev *evchan
}

func newConsole(t *testing.T) (*Device, *backend, *bytes.Buffer) {
	t.Helper()
	page := make([]byte, 4096)
	front, back := evpair()
	var out bytes.Buffer
	d, err := Open(page, front, &out)
	if err != nil {
		t.Fatal(err)
	}
	in, _, _ := ring.Console(page)
	return d, &backend{in: in, ev: back}, &out
}

func (b *backend) typeBytes(ctx context.Context, p []byte) error {
	for len(p) > 0 {
		n, err := b.in.Produce(p)
		if err != nil {
			return err
		}
		p = p[n:]
		if n > 0 {
			b.ev.Notify()
		}
		if len(p) > 0 {
			if err := b.ev.Wait(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func TestBackendSimulatorFlowControl(t *testing.T) {
	// The simulator itself: it must stop at a full ring and resume when
	// the guest consumes and notifies.
	page := make([]byte, 4096)
	front, back := evpair()
	in, _, _ := ring.Console(page)
	b := &backend{in: in, ev: back}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.typeBytes(ctx, make([]byte, 2000)); err == nil {
		t.Fatal("typing 2000 bytes into a 1 KiB ring nobody reads finished")
	}
	if n, _ := in.Pending(); n != ring.ConsoleInSize {
		t.Fatalf("ring holds %d bytes, want it full", n)
	}
	_ = front
}

func TestReadTypedInput(t *testing.T) {
	d, b, out := newConsole(t)
	// 4 KiB typed quickly, through a 1 KiB ring: nothing may be lost.
	typed := make([]byte, 4096)
	for i := range typed {
		typed[i] = byte('a' + i%26)
	}
	errc := make(chan error, 1)
	go func() { errc <- b.typeBytes(context.Background(), typed) }()
	var got []byte
	buf := make([]byte, 300)
	for len(got) < len(typed) {
		n, err := d.ReadTimeout(buf, 5*time.Second)
		if err != nil || n == 0 {
			t.Fatalf("read after %d bytes: %d, %v", len(got), n, err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(typed) {
		t.Fatal("typed input arrived changed")
	}
	if _, err := d.Write([]byte("menu")); err != nil || out.String() != "menu" {
		t.Fatalf("write: %v %q", err, out.String())
	}
}

func TestReadTimeout(t *testing.T) {
	d, _, _ := newConsole(t)
	start := time.Now()
	n, err := d.ReadTimeout(make([]byte, 8), 20*time.Millisecond)
	if n != 0 || err != nil {
		t.Fatalf("idle console read = %d, %v", n, err)
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("returned before the timeout")
	}
}

func TestCorruptRing(t *testing.T) {
	page := make([]byte, 4096)
	front, _ := evpair()
	d, err := Open(page, front, nil)
	if err != nil {
		t.Fatal(err)
	}
	page[3076] = 0xff // in_prod far ahead of in_cons: a broken backend
	page[3077] = 0xff
	if _, err := d.ReadTimeout(make([]byte, 8), time.Second); err == nil {
		t.Fatal("a corrupt ring read without error")
	}
	if _, err := Open(page[:10], front, nil); err == nil {
		t.Fatal("short page accepted")
	}
}
