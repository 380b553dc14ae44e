package blkfront

import (
	"context"
	"io"

	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
)

var _ io.WriterAt = (*Device)(nil)

// WriteAt implements io.WriterAt, bounded by Options.IOTimeout. Writes
// at any offset and of any length are served: whole sectors are written
// from p, a partial first or last sector is read, merged and written
// back. A write reaching past the end writes what fits and returns an
// error wrapping ErrPastEnd; a read-only device or a CD-ROM refuses
// every write with ErrReadOnly, before anything is sent. Concurrent
// writes of disjoint ranges may share a sector: its read-modify-writes
// are serialised. Written data is with the backend, not necessarily on
// stable storage: see Sync.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.IOTimeout)
	defer cancel()
	return d.WriteAtContext(ctx, p, off)
}

// WriteAtContext is WriteAt bounded by ctx. Requests still in flight
// when ctx ends are left to complete in the background (the data they
// carry may or may not reach the disk); their pages return to the pool
// then.
func (d *Device) WriteAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	d.st.writes.Add(1)
	n, err := d.onConn(func(c *conn) (int, error) { return c.writeAt(ctx, p, off) })
	d.st.written.Add(uint64(n))
	return n, err
}

func (c *conn) writeAt(ctx context.Context, p []byte, off int64) (int, error) {
	k := call{"write", len(p), off}
	if off < 0 {
		return 0, c.errorf("write at negative offset %d", off)
	}
	if err := c.info.writable(); err != nil {
		return 0, c.errorf("%v: %w", k, err)
	}
	if len(p) == 0 {
		return 0, nil
	}
	var short error
	if off >= c.size || int64(len(p)) > c.size-off {
		fit := max(0, c.size-off)
		short = c.errorf("%v: %w (%d bytes): %d bytes not written", k, detail{ErrPastEnd}, c.size, int64(len(p))-fit)
		if fit == 0 {
			return 0, short
		}
		p = p[:fit]
	}
	ss := int64(c.ss)
	pos := off - off%ss
	end := (off + int64(len(p)) + ss - 1) / ss * ss
	src := wsource{p: p, off: off, pos: pos, end: end}
	if pos != off || end != off+int64(len(p)) {
		secs := src.partial(ss)
		if err := c.lockSectors(ctx, secs); err != nil {
			return 0, c.errorf("%v: %w", k, err)
		}
		defer c.unlockSectors(secs)
		if err := src.merge(ctx, c, ss); err != nil {
			return 0, c.errorf("%v: read-modify-write: %w", k, err)
		}
	}
	written := 0
	err := c.transfer(ctx, k, blkif.OpWrite, pos, end, src.fill, func(ch chunk) {
		written += int(min(ch.hi, off+int64(len(p))) - max(ch.lo, off))
	})
	if err != nil {
		return written, err
	}
	return written, short
}

// wsource is the sector-aligned data of a write of p at off, covering
// [pos, end): p itself, except a partial first sector (head, at pos)
// and a partial last one (tail, ending at end), read from the disk and
// merged with p. A write within one sector has only head.
type wsource struct {
	p          []byte
	off        int64
	pos, end   int64
	head, tail []byte
}

// partial lists the byte offsets of the sectors to read-modify-write.
func (s *wsource) partial(ss int64) []int64 {
	headPart := s.off != s.pos
	tailPart := s.end != s.off+int64(len(s.p))
	var secs []int64
	if headPart || tailPart && s.end-s.pos == ss {
		secs = append(secs, s.pos)
	}
	if tailPart && s.end-s.pos > ss {
		secs = append(secs, s.end-ss)
	}
	return secs
}

// merge reads the partial sectors and copies p's part into them.
func (s *wsource) merge(ctx context.Context, c *conn, ss int64) error {
	secs := s.partial(ss)
	// Adjacent first and last sectors are read together.
	if len(secs) == 2 && secs[1] == secs[0]+ss {
		buf := make([]byte, 2*ss)
		if _, err := c.readAt(ctx, buf, secs[0]); err != nil {
			return err
		}
		s.head, s.tail = buf[:ss], buf[ss:]
	} else {
		for _, sec := range secs {
			buf := make([]byte, ss)
			if _, err := c.readAt(ctx, buf, sec); err != nil {
				return err
			}
			if sec == s.pos {
				s.head = buf
			} else {
				s.tail = buf
			}
		}
	}
	if s.head != nil {
		copy(s.head[s.off-s.pos:], s.p)
	}
	if s.tail != nil {
		copy(s.tail, s.p[s.end-ss-s.off:])
	}
	return nil
}

// at returns the data from disk offset x (in [pos, end)) to the end of
// the piece holding it.
func (s *wsource) at(x int64) []byte {
	if x < s.pos+int64(len(s.head)) {
		return s.head[x-s.pos:]
	}
	t := s.end - int64(len(s.tail))
	if x >= t {
		return s.tail[x-t:]
	}
	return s.p[x-s.off : t-s.off]
}

// fill copies the data of the request starting at lo into its pages.
func (s *wsource) fill(lo int64, data []*page) {
	hi := min(s.end, lo+int64(len(data))*blkif.PageSize)
	for x := lo; x < hi; {
		rel := x - lo
		pg := data[rel/blkif.PageSize]
		in := rel % blkif.PageSize
		lim := min(blkif.PageSize-in, hi-x)
		x += int64(copy(pg.buf[in:in+lim], s.at(x)))
	}
}

// lockSectors waits until no other write is read-modify-writing any of
// secs, then claims them all at once (so two writers cannot deadlock).
func (c *conn) lockSectors(ctx context.Context, secs []int64) error {
	for {
		c.mu.Lock()
		var busy chan struct{}
		for _, s := range secs {
			if ch := c.rmw[s]; ch != nil {
				busy = ch
				break
			}
		}
		if busy == nil {
			ch := make(chan struct{})
			for _, s := range secs {
				c.rmw[s] = ch
			}
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *conn) unlockSectors(secs []int64) {
	c.mu.Lock()
	ch := c.rmw[secs[0]]
	for _, s := range secs {
		delete(c.rmw, s)
	}
	c.mu.Unlock()
	close(ch)
}

// flush sends a flush or barrier request, which carries no data, and
// waits for its answer.
func (c *conn) flush(ctx context.Context, op uint8) error {
	what := opName(op)
	var r *request
	for r == nil {
		c.mu.Lock()
		var err error
		r, err = c.trySubmitLocked(op, 0, 0, nil)
		notify := r != nil && c.eng.ring.Push()
		changed := c.changed
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if notify {
			c.notify()
		}
		if r == nil {
			select {
			case <-changed:
			case <-ctx.Done():
				return c.errorf("sync: %s: %w", what, ctx.Err())
			}
		}
	}
	c.d.st.flushes.Add(1)
	select {
	case <-r.done:
	case <-ctx.Done():
		c.abandon([]chunk{{r: r}})
		return c.errorf("sync: %s: %w", what, ctx.Err())
	}
	c.mu.Lock()
	c.releaseLocked(r)
	c.mu.Unlock()
	if r.err != nil {
		return c.errorf("sync: %w", r.err) // r.err names the operation
	}
	return nil
}
