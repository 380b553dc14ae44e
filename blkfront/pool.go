package blkfront

import (
	"errors"
	"fmt"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
)

// growPages is how many pages the pool allocates at a time.
const growPages = 32

// page is one bounce page: the backend writes into it, the reader copies
// out of it.
type page struct {
	buf     []byte // PageSize bytes
	mfn     xen.MFN
	ref     gnttab.Ref
	granted bool
	chunk   int // index of the allocation it belongs to
}

// pool hands out bounce pages, up to a limit, allocated from the
// platform in chunks and reused LIFO (the order blkif.h recommends for
// persistent grants: the backend keeps the recently used ones mapped).
// With persistent grants a page is granted once, when allocated, and
// stays granted until teardown; without, it is granted for each request
// and the grant ended when the request is done.
type pool struct {
	mem        xen.Memory
	gnt        *gnttab.Table
	dom        xen.DomID
	persistent bool
	limit      int

	chunks [][]byte
	all    []*page
	free   []*page
	stale  []*page // grants the backend had not let go of yet
	out    int     // pages handed to requests
	err    error   // why the pool last failed to grow
}

// get takes n pages. It returns nil (and no error) when the caller
// should wait for pages to come back, and an error when none will: the
// pool cannot grow and nothing is out.
func (p *pool) get(n int) ([]*page, error) {
	if n > p.limit {
		return nil, fmt.Errorf("blkfront: internal error: request of %d pages, pool limit %d", n, p.limit)
	}
	p.retryStale()
	if len(p.free) < n {
		p.grow(n - len(p.free))
	}
	if len(p.free) < n {
		if p.out > 0 {
			return nil, nil // pages come back as requests finish
		}
		err := p.err
		if err == nil {
			err = fmt.Errorf("%d pages held by grants the backend still maps", len(p.stale))
		}
		return nil, fmt.Errorf("%w: %d of %d bounce pages free: %v", ErrNoBuffers, len(p.free), p.limit, err)
	}
	pages := make([]*page, n)
	copy(pages, p.free[len(p.free)-n:])
	clear(p.free[len(p.free)-n:])
	p.free = p.free[:len(p.free)-n]
	p.out += n
	return pages, nil
}

// grow allocates at least k more pages if the limit allows.
func (p *pool) grow(k int) {
	room := p.limit - len(p.all)
	if room <= 0 {
		return
	}
	n := min(room, max(k, growPages))
	mem, mfns, err := p.mem.AllocPages(n)
	if err != nil {
		p.err = fmt.Errorf("allocate %d pages: %w", n, err)
		return
	}
	pages := make([]*page, n)
	for i := range pages {
		pages[i] = &page{buf: mem[i*xen.PageSize : (i+1)*xen.PageSize : (i+1)*xen.PageSize], mfn: mfns[i], chunk: len(p.chunks)}
	}
	if p.persistent {
		if err := p.grant(pages, false); err != nil {
			p.mem.FreePages(mem)
			p.err = err
			return
		}
	}
	p.chunks = append(p.chunks, mem)
	p.all = append(p.all, pages...)
	// LIFO: the first page of the chunk is handed out first.
	for i := len(pages) - 1; i >= 0; i-- {
		p.free = append(p.free, pages[i])
	}
	p.err = nil
}

// grant gives the backend access to pages; on failure none stays
// granted.
func (p *pool) grant(pages []*page, readonly bool) error {
	for i, pg := range pages {
		if pg.granted {
			continue
		}
		ref, err := p.gnt.Grant(p.dom, pg.mfn, readonly)
		if err != nil {
			for _, q := range pages[:i] {
				if q.granted && p.gnt.End(q.ref) == nil {
					q.granted = false
				}
			}
			return fmt.Errorf("grant page: %w", err)
		}
		pg.ref, pg.granted = ref, true
	}
	return nil
}

// refs lists the pages' grant references.
func refs(pages []*page) []uint32 {
	r := make([]uint32, len(pages))
	for i, pg := range pages {
		r[i] = uint32(pg.ref)
	}
	return r
}

// put returns pages after their request is done. Without persistent
// grants each grant is ended first; a grant the backend still maps
// keeps its page aside until it lets go.
func (p *pool) put(pages []*page) {
	p.out -= len(pages)
	for _, pg := range pages {
		if !p.persistent && pg.granted {
			if err := p.gnt.End(pg.ref); err != nil {
				p.stale = append(p.stale, pg)
				continue
			}
			pg.granted = false
		}
		p.free = append(p.free, pg)
	}
}

// retryStale ends the grants put could not end.
func (p *pool) retryStale() {
	kept := p.stale[:0]
	for _, pg := range p.stale {
		if err := p.gnt.End(pg.ref); err != nil {
			kept = append(kept, pg)
			continue
		}
		pg.granted = false
		p.free = append(p.free, pg)
	}
	clear(p.stale[len(kept):])
	p.stale = kept
}

// teardown ends every grant and frees every allocation whose pages are
// no longer granted. Grants the backend still maps are leaked with
// their memory, and reported.
func (p *pool) teardown() (leaks []gnttab.Ref, err error) {
	busy := make([]bool, len(p.chunks))
	for _, pg := range p.all {
		if !pg.granted {
			continue
		}
		if e := p.gnt.End(pg.ref); e != nil {
			if !errors.Is(e, gnttab.ErrInUse) {
				err = errors.Join(err, fmt.Errorf("end grant %d: %w", pg.ref, e))
			}
			leaks = append(leaks, pg.ref)
			busy[pg.chunk] = true
			continue
		}
		pg.granted = false
	}
	for i, mem := range p.chunks {
		if busy[i] {
			continue
		}
		if e := p.mem.FreePages(mem); e != nil {
			err = errors.Join(err, fmt.Errorf("free bounce pages: %w", e))
		}
	}
	p.chunks, p.all, p.free, p.stale, p.out = nil, nil, nil, nil, 0
	return leaks, err
}
