// Package console is the domain's PV console (xen/include/public/io/console.h,
// struct xencons_interface): what `xl console` shows and types into.
//
// Output goes through the shim (standard output, fd 1), which owns the out
// ring: the shim's own messages and the program's then never interleave in
// the middle of a write, and a full ring blocks the writer until
// xenconsoled drains it. Input is read here from the in ring, waiting on the
// console's event channel, so a goroutine waiting for a key holds no
// thread. The terminal layer (package console/term) decodes the bytes into
// keys.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/ring"
)

// Device is the PV console.
type Device struct {
	mu  sync.Mutex // one reader at a time
	in  ring.Stream
	ch  xen.Channel
	out io.Writer
}

// Open returns the console on its ring page and event channel; output goes
// to out (os.Stdout in the unikernel).
func Open(page []byte, ch xen.Channel, out io.Writer) (*Device, error) {
	in, _, err := ring.Console(page)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return &Device{in: in, ch: ch, out: out}, nil
}

// ErrTimeout is returned by ReadContext when its context ends first.
var ErrTimeout = errors.New("console: no input before the deadline")

// Write sends p to the console.
func (d *Device) Write(p []byte) (int, error) { return d.out.Write(p) }

// Read blocks until at least one byte of input is available.
func (d *Device) Read(p []byte) (int, error) { return d.ReadContext(context.Background(), p) }

// ReadContext reads what input is available, waiting for some until ctx
// ends.
func (d *Device) ReadContext(ctx context.Context, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		n, err := d.in.Consume(p)
		if err != nil {
			return 0, fmt.Errorf("console: input ring: %w", err)
		}
		if n > 0 {
			// Tell xenconsoled there is room again.
			if err := d.ch.Notify(); err != nil {
				return n, fmt.Errorf("console: notify: %w", err)
			}
			return n, nil
		}
		// Events that arrive between Consume and Wait are counted by the
		// channel, so Wait returns at once for them: nothing is lost.
		if err := d.ch.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return 0, ErrTimeout
			}
			return 0, fmt.Errorf("console: wait for input: %w", err)
		}
	}
}

// ReadTimeout implements term.Source: wait at most t for the first byte
// (t < 0: forever); 0, nil when t elapses.
func (d *Device) ReadTimeout(p []byte, t time.Duration) (int, error) {
	ctx := context.Background()
	if t >= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	n, err := d.ReadContext(ctx, p)
	if errors.Is(err, ErrTimeout) {
		return 0, nil
	}
	return n, err
}
