package xenstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// maxQueued bounds the events held for a watch whose reader is slow.
// Beyond it the queue collapses into one event for the watched path
// itself, meaning "something below changed: re-read". Watch consumers
// must re-read state on every event anyway (xenstored may fire watches
// spuriously and coalesces nothing), so no information is lost.
const maxQueued = 256

// Watch is a registered xenstore watch.
type Watch struct {
	// C delivers the path of each changed node (relative if the watch
	// path was). The first event is the one xenstored fires when the
	// watch is set up, so a consumer can read the current state on
	// every event, including the first. C is closed by Close.
	C <-chan string

	c     *Client
	path  string
	token string

	mu     sync.Mutex
	queue  []string
	notify chan struct{} // capacity 1
	done   chan struct{}
	once   sync.Once
}

// Path is the watched path, as given to Watch.
func (w *Watch) Path() string { return w.path }

// Watch registers a watch on path and everything below it.
func (c *Client) Watch(ctx context.Context, path string) (*Watch, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	out := make(chan string)
	w := &Watch{C: out, c: c, path: path, notify: make(chan struct{}, 1), done: make(chan struct{})}
	c.mu.Lock()
	c.nextToken++
	w.token = "gopvgrub-" + strconv.FormatUint(c.nextToken, 10)
	// Registered before the request: xenstored may send the initial
	// event before its reply.
	c.watches[w.token] = w
	c.mu.Unlock()
	go w.run(out)

	_, err := c.roundTrip(ctx, TypeWatch, 0, 0, appendStrings(nil, path, w.token), false)
	if err != nil {
		w.stopDelivery()
		if ctx.Err() == nil {
			c.mu.Lock()
			delete(c.watches, w.token)
			c.mu.Unlock()
		}
		// Otherwise xenstored may have set the watch up: it stays
		// listed, delivering nowhere, until Close removes it.
		return nil, fmt.Errorf("xenstore: watch %s: %w", path, err)
	}
	return w, nil
}

// run hands queued events to the consumer, never blocking the reader.
func (w *Watch) run(out chan<- string) {
	defer close(out)
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.mu.Unlock()
			select {
			case <-w.notify:
				continue
			case <-w.done:
				return
			}
		}
		p := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		select {
		case out <- p:
		case <-w.done:
			return
		}
	}
}

// deliver queues an event; called by the reader.
func (w *Watch) deliver(path string) {
	w.mu.Lock()
	select {
	case <-w.done:
		w.mu.Unlock()
		return
	default:
	}
	if len(w.queue) >= maxQueued {
		w.queue = append(w.queue[:0], w.path)
	} else {
		w.queue = append(w.queue, path)
	}
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *Watch) stopDelivery() {
	w.once.Do(func() { close(w.done) })
}

// Close removes the watch from xenstored and closes C.
func (w *Watch) Close(ctx context.Context) error {
	return w.close(ctx, false)
}

func (w *Watch) close(ctx context.Context, internal bool) error {
	w.stopDelivery()
	c := w.c
	c.mu.Lock()
	if c.watches[w.token] != w {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	_, err := c.roundTrip(ctx, TypeUnwatch, 0, 0, appendStrings(nil, w.path, w.token), internal)
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// Still possibly registered: Close of the client retries.
		return fmt.Errorf("xenstore: unwatch %s: %w", w.path, err)
	}
	c.mu.Lock()
	delete(c.watches, w.token)
	c.mu.Unlock()
	var e Errno
	if err != nil && !errors.As(err, &e) && !errors.Is(err, ErrReset) {
		return fmt.Errorf("xenstore: unwatch %s: %w", w.path, err)
	}
	// xenstored refusing means it has no such watch: it is gone.
	return nil
}

// rewatch registers the watch again after a ring reset.
func (w *Watch) rewatch() {
	c := w.c
	c.mu.Lock()
	still := c.watches[w.token] == w && !c.closing
	c.mu.Unlock()
	if !still {
		return
	}
	// A failure here (another reset, or closing) leaves the watch to
	// the next reset or to Close.
	c.roundTrip(context.Background(), TypeWatch, 0, 0, appendStrings(nil, w.path, w.token), false)
}
