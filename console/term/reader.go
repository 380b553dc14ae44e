package term

import (
	"time"
)

// Source is a console byte stream that can wait with a deadline, as the PV
// console (ring + event channel) can.
type Source interface {
	// ReadTimeout reads into p, waiting at most d for the first byte
	// (d < 0: wait forever). It returns 0, nil when d elapses first.
	ReadTimeout(p []byte, d time.Duration) (int, error)
}

// Clock tells the time; tests use a fake one so they never sleep.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// EscDelay is how long the Reader waits for the rest of a sequence before a
// lone ESC counts as the Esc key. Serial-style consoles deliver a sequence's
// bytes together, so a short delay suffices; 100ms also covers a PV console
// whose backend batches output.
const EscDelay = 100 * time.Millisecond

// Reader reads keys from a Source, resolving lone ESCs by timing.
type Reader struct {
	src   Source
	clock Clock
	dec   Decoder
	queue []Key
	buf   [256]byte
	// EscDelay is the ESC timeout; NewReader sets it to EscDelay.
	EscDelay time.Duration
}

// NewReader returns a Reader on src; clock may be nil for the system clock.
func NewReader(src Source, clock Clock) *Reader {
	if clock == nil {
		clock = SystemClock{}
	}
	return &Reader{src: src, clock: clock, EscDelay: EscDelay}
}

// ReadKey returns the next key, waiting at most d for it (d < 0: forever).
// ok is false if d elapsed with no complete key.
func (r *Reader) ReadKey(d time.Duration) (k Key, ok bool, err error) {
	var deadline time.Time
	if d >= 0 {
		deadline = r.clock.Now().Add(d)
	}
	for {
		if len(r.queue) > 0 {
			k = r.queue[0]
			r.queue = r.queue[1:]
			if len(r.queue) == 0 {
				r.queue = nil
			}
			return k, true, nil
		}
		wait := d
		if d >= 0 {
			wait = deadline.Sub(r.clock.Now())
			if wait < 0 {
				wait = 0
			}
		}
		if r.dec.Pending() > 0 && (wait < 0 || wait > r.EscDelay) {
			wait = r.EscDelay
		}
		n, err := r.src.ReadTimeout(r.buf[:], wait)
		if n > 0 {
			r.queue = r.dec.Feed(r.queue, r.buf[:n])
			continue
		}
		if err != nil {
			r.queue = r.dec.Flush(r.queue)
			if len(r.queue) > 0 {
				continue
			}
			return Key{}, false, err
		}
		// Nothing arrived within wait: a held sequence is complete as
		// it is (and a later '\n' is no longer half of "\r\n").
		r.queue = r.dec.Flush(r.queue)
		if len(r.queue) > 0 {
			continue
		}
		if d >= 0 && !r.clock.Now().Before(deadline) {
			return Key{}, false, nil
		}
	}
}
