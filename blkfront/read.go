package blkfront

import (
	"context"
	"fmt"
	"io"

	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
)

var _ io.ReaderAt = (*Device)(nil)

// ReadAt implements io.ReaderAt, bounded by Options.IOTimeout. Reads at
// any offset and of any length are served (the requests themselves are
// aligned to the sector size); a read past the end returns the bytes up
// to it and io.EOF.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.IOTimeout)
	defer cancel()
	return d.ReadAtContext(ctx, p, off)
}

// ReadAtContext is ReadAt bounded by ctx. Requests still in flight when
// ctx ends are left to complete in the background; their pages return
// to the pool then.
func (d *Device) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	d.st.reads.Add(1)
	n, err := d.onConn(func(c *conn) (int, error) { return c.readAt(ctx, p, off) })
	d.st.bytes.Add(uint64(n))
	return n, err
}

// onConn runs f on the open connection, which stays open meanwhile.
func (d *Device) onConn(f func(c *conn) (int, error)) (int, error) {
	d.mu.Lock()
	c, name := d.conn, d.name
	d.mu.Unlock()
	if c == nil {
		return 0, fmt.Errorf("blkfront: %s: %w", name, ErrClosed)
	}
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed {
		return 0, fmt.Errorf("blkfront: %s: %w", name, ErrClosed)
	}
	return f(c)
}

// chunk is one request of a transfer and the aligned byte range it
// covers.
type chunk struct {
	r      *request
	lo, hi int64
}

// call describes a ReadAt or WriteAt for errors.
type call struct {
	verb string
	n    int
	off  int64
}

func (k call) String() string { return fmt.Sprintf("%s %d bytes at %d", k.verb, k.n, k.off) }

func (c *conn) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, c.errorf("read at negative offset %d", off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= c.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > c.size-off {
		p, eof = p[:c.size-off], io.EOF
	}
	ss := int64(c.ss)
	pos := off - off%ss
	end := (off + int64(len(p)) + ss - 1) / ss * ss
	copied := 0
	err := c.transfer(ctx, call{"read", len(p), off}, blkif.OpRead, pos, end, nil, func(ch chunk) {
		copied += copyOut(p, off, ch)
	})
	if err != nil {
		return copied, err
	}
	return copied, eof
}

// transfer performs op (read or write) on the aligned bytes [pos, end)
// in requests of up to maxSegs pages, as many in flight as the ring and
// the pool allow. For a write, fill puts the data of [lo, lo+n) into a
// request's pages before it is submitted. done is handed each finished
// request in order, until one fails.
func (c *conn) transfer(ctx context.Context, k call, op uint8, pos, end int64, fill func(lo int64, data []*page), done func(chunk)) error {
	max := int64(c.maxSegs) * blkif.PageSize
	var queue []chunk
	defer func() {
		if len(queue) > 0 {
			c.abandon(queue)
		}
	}()
	var submitErr error
	for pos < end || len(queue) > 0 {
		c.mu.Lock()
		submitted := false
		for pos < end {
			n := min(max, end-pos)
			r, err := c.trySubmitLocked(op, pos, int(n), fill)
			if err != nil {
				// Finish what is in flight, then report.
				submitErr, end = err, pos
				break
			}
			if r == nil {
				break // no slot or no pages: wait below
			}
			queue = append(queue, chunk{r, pos, pos + n})
			pos += n
			submitted = true
		}
		notify := submitted && c.eng.ring.Push()
		changed := c.changed
		c.mu.Unlock()
		if notify {
			c.notify()
		}
		if len(queue) == 0 {
			if pos >= end {
				break
			}
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return c.errorf("%v: %w", k, ctx.Err())
			}
		}
		head := queue[0]
		var more <-chan struct{}
		if pos < end {
			more = changed // resources may come back before head is done
		}
		select {
		case <-head.r.done:
		case <-more:
			continue
		case <-ctx.Done():
			return c.errorf("%v: %w", k, ctx.Err())
		}
		if err := head.r.err; err != nil {
			return c.errorf("%v: %w", k, err)
		}
		done(head)
		c.mu.Lock()
		c.releaseLocked(head.r)
		c.mu.Unlock()
		queue = queue[1:]
	}
	return submitErr
}

// copyOut copies the part of chunk ch that falls in p (which starts at
// disk offset off) and returns how many bytes that was.
func copyOut(p []byte, off int64, ch chunk) int {
	lo := max(ch.lo, off)
	hi := min(ch.hi, off+int64(len(p)))
	n := 0
	for x := lo; x < hi; {
		rel := x - ch.lo
		pg := ch.r.data[rel/blkif.PageSize]
		in := rel % blkif.PageSize
		k := copy(p[x-off:hi-off], pg.buf[in:])
		x += int64(k)
		n += k
	}
	return n
}

// abandon gives up on requests a caller will not wait for: finished ones
// release their pages now, the others when they complete.
func (c *conn) abandon(queue []chunk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range queue {
		if ch.r.finished {
			c.releaseLocked(ch.r)
		} else {
			ch.r.orphan = true
		}
	}
}

// trySubmitLocked issues the op request for the aligned bytes [pos,
// pos+n) (none for a flush), calling fill first for a write. It returns
// nil and no error when the ring or the pool is full and the caller
// must wait for requests to finish.
func (c *conn) trySubmitLocked(op uint8, pos int64, n int, fill func(lo int64, data []*page)) (*request, error) {
	if err := c.eng.err; err != nil {
		return nil, err
	}
	if c.closing {
		return nil, c.errorf("%w", ErrClosed)
	}
	if !c.eng.canSubmit() {
		return nil, nil
	}
	np := (n + blkif.PageSize - 1) / blkif.PageSize
	indirect := np > blkif.MaxSegments
	ni := 0
	if indirect {
		ni = blkif.IndirectPages(np)
	}
	pages, err := c.pool.get(np + ni)
	if err != nil {
		return nil, c.errorf("%w", err)
	}
	if pages == nil {
		return nil, nil
	}
	data, ind := pages[:np:np], pages[np:]
	if !c.pool.persistent {
		// The backend only reads what we write: it gets no more.
		err := c.pool.grant(data, op != blkif.OpRead)
		if err == nil {
			err = c.pool.grant(ind, true)
		}
		if err != nil {
			c.pool.put(pages)
			if c.eng.count > 0 || c.pool.out > 0 {
				return nil, nil // grants come back as requests finish
			}
			return nil, c.errorf("%w: %v", ErrNoBuffers, err)
		}
	}
	if fill != nil {
		fill(pos, data)
	}
	r := &request{op: op, indirect: indirect, sector: uint64(pos) / blkif.SectorSize, nsect: n / blkif.SectorSize, data: data, ind: ind}
	if err := c.eng.submit(r, refs(data), refs(ind)); err != nil {
		c.pool.put(pages)
		return nil, c.errorf("%w", err)
	}
	if op == blkif.OpWrite {
		c.d.wgen.Add(1)
	}
	st := &c.d.st
	st.requests.Add(1)
	st.segments.Add(uint64(np))
	if indirect {
		st.indirect.Add(1)
	}
	if m := int64(c.eng.count); m > st.maxInFlight.Load() {
		st.maxInFlight.Store(m)
	}
	return r, nil
}
