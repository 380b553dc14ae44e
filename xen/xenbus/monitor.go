package xenbus

import (
	"context"
	"errors"
	"time"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
)

// monitorReadTimeout bounds each re-read of the backend's state.
const monitorReadTimeout = 5 * time.Second

// Monitor watches a connected device's backend on its own goroutine and
// reports every time it is seen outside Connected (a vanished backend
// reads as StateUnknown), so that a driver fails its requests instead of
// waiting for them to time out.
type Monitor struct {
	w    *xenstore.Watch
	done chan struct{}
}

// Monitor starts watching the backend's state; gone is called, from the
// monitor's goroutine, with each state other than Connected it sees. It
// returns nil when the watch cannot be set: the driver then notices a
// vanished backend only by its silence.
func (f *Frontend) Monitor(ctx context.Context, gone func(xen.XenbusState)) *Monitor {
	path := f.Backend + "/state"
	w, err := f.store.Watch(ctx, path)
	if err != nil {
		return nil
	}
	m := &Monitor{w: w, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for range w.C {
			rctx, cancel := context.WithTimeout(context.Background(), monitorReadTimeout)
			n, err := xenstore.ReadUint(rctx, f.store, path, uint64(xen.StateReconfigured))
			cancel()
			s := xen.XenbusState(n)
			switch {
			case errors.Is(err, xenstore.ErrNotExist):
				s = xen.StateUnknown
			case err != nil:
				continue // the store is busy or closing; the next event re-reads
			}
			if s != xen.StateConnected {
				gone(s)
			}
		}
	}()
	return m
}

// Close removes the watch (bounded by CleanupTimeout, even if ctx is
// done) and waits for the monitor's goroutine. A nil Monitor is a no-op.
func (m *Monitor) Close(ctx context.Context) error {
	if m == nil {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	err := m.w.Close(wctx)
	cancel()
	<-m.done
	return err
}
