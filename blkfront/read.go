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
// covers; gen is conn.gen when it was submitted (see readahead).
type chunk struct {
	r      *request
	lo, hi int64
	gen    uint64
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
	k := call{"read", len(p), off}
	var n int
	var err error
	if c.cache != nil && len(p) < cacheBlock {
		n, err = c.cachedRead(ctx, k, p, off)
	} else {
		n, err = c.read(ctx, k, p, off)
	}
	if err != nil {
		return n, err
	}
	return n, eof
}

// read reads p at off (within the device) through the read-ahead.
func (c *conn) read(ctx context.Context, k call, p []byte, off int64) (int, error) {
	ss := int64(c.ss)
	s := span{pos: off - off%ss, end: (off + int64(len(p)) + ss - 1) / ss * ss}
	s.limit = s.end
	c.mu.Lock()
	owner := c.startStreamLocked(&s)
	c.mu.Unlock()
	copied := 0
	out := func(ch chunk) { copied += copyOut(p, off, ch) }
	rest, err := c.run(ctx, k, blkif.OpRead, s, nil, out)
	c.mu.Lock()
	if owner {
		c.parkLocked(rest, err)
	} else {
		c.abandonLocked(rest)
	}
	c.mu.Unlock()
	return copied, err
}

// span is what run transfers: the aligned bytes [pos, end) the caller
// asked for, and up to limit (>= end) read ahead; queue holds requests
// already in flight for the start of [pos, limit), in order.
type span struct {
	pos, end, limit int64
	queue           []chunk
}

// transfer performs op (read or write) on the aligned bytes [pos, end)
// in requests of up to maxSegs pages, as many in flight as the ring and
// the pool allow. For a write, fill puts the data of [lo, lo+n) into a
// request's pages before it is submitted. done is handed each finished
// request in order, until one fails.
func (c *conn) transfer(ctx context.Context, k call, op uint8, pos, end int64, fill func(lo int64, data []*page), done func(chunk)) error {
	_, err := c.run(ctx, k, op, span{pos: pos, end: end, limit: end}, fill, done)
	return err
}

// run is transfer of s. Past s.end it goes on submitting reads up to
// s.limit, without waiting for resources; the requests reaching past
// s.end that are left when [pos, end) is done (finished or still in
// flight) are returned, and the caller owns them. A failure returns
// none: they are abandoned.
func (c *conn) run(ctx context.Context, k call, op uint8, s span, fill func(lo int64, data []*page), done func(chunk)) (rest []chunk, err error) {
	most := int64(c.maxSegs) * blkif.PageSize
	queue, end, limit := s.queue, s.end, s.limit
	sub := s.pos // submitted up to here
	if n := len(queue); n > 0 {
		sub = queue[n-1].hi
	}
	// A read that reads ahead keeps the requests holding its last cache
	// block: the next read may start there (it goes over the end of an
	// unaligned read again, or reads the cache block holding it).
	var kept []chunk
	keep := (end - 1) / cacheBlock * cacheBlock
	defer func() {
		if err != nil {
			c.abandon(append(kept, queue...))
		}
	}()
	var submitErr error
	for len(queue) > 0 && queue[0].lo < end || len(queue) == 0 && sub < end {
		c.mu.Lock()
		submitted := false
		for sub < limit {
			n := min(most, limit-sub)
			gen := c.gen
			r, err := c.trySubmitLocked(op, sub, int(n), fill)
			if err != nil {
				if sub < end {
					// Finish what is in flight, then report.
					submitErr, end = err, sub
				}
				limit = sub
				break
			}
			if r == nil {
				break // no slot or no pages: wait below
			}
			if sub+n > end {
				c.d.st.readAhead.Add(uint64(sub + n - max(sub, end)))
			}
			queue = append(queue, chunk{r, sub, sub + n, gen})
			sub += n
			submitted = true
		}
		notify := submitted && c.eng.ring.Push()
		changed := c.changed
		c.mu.Unlock()
		if notify {
			c.notify()
		}
		if len(queue) == 0 {
			if sub >= end {
				break
			}
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil, c.errorf("%v: %w", k, ctx.Err())
			}
		}
		head := queue[0]
		var more <-chan struct{}
		if sub < limit {
			more = changed // resources may come back before head is done
		}
		select {
		case <-head.r.done:
		case <-more:
			continue
		case <-ctx.Done():
			return nil, c.errorf("%v: %w", k, ctx.Err())
		}
		if err := head.r.err; err != nil {
			return nil, c.errorf("%v: %w", k, err)
		}
		done(head)
		queue = queue[1:]
		if limit > end && head.hi > keep {
			kept = append(kept, head)
			continue
		}
		c.mu.Lock()
		c.releaseLocked(head.r)
		c.mu.Unlock()
	}
	if submitErr != nil {
		return nil, submitErr
	}
	return append(kept, queue...), nil
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
	c.abandonLocked(queue)
}

func (c *conn) abandonLocked(queue []chunk) {
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
	if op == blkif.OpWrite {
		c.dropLocked() // what was read ahead may be overwritten
	}
	pages, err := c.pool.get(np + ni)
	if pages == nil && err == nil && len(c.ra.queue) > 0 {
		// Read-ahead nobody is reading yet must not starve a request.
		c.dropLocked()
		pages, err = c.pool.get(np + ni)
	}
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
		c.gen++
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
