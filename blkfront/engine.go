package blkfront

import (
	"fmt"
	"strconv"

	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen/sring"
)

// engine is the pure protocol half of a connection: the ring, the table
// of requests in flight (Linux's "shadow") and the checks on what the
// backend answers. It makes no hypercall and takes no lock; conn holds
// its lock around every call, which is also what lets the fuzz target
// drive it directly.
type engine struct {
	ring   *sring.Front
	handle uint16 // blkif_vdev_t: the low 16 bits of the device id
	shadow []*request
	gens   []uint32 // generation of each shadow slot, part of the id
	free   []uint32 // free shadow slots
	count  int      // requests in flight
	err    error    // set once the backend broke the protocol
	rsp    []byte   // scratch: the response slot being decoded
}

// request is one ring request and the buffers it uses.
type request struct {
	id       uint64
	slot     uint32
	op       uint8 // blkif.OpRead, OpWrite, OpFlushDiskcache or OpWriteBarrier
	indirect bool
	sector   uint64 // first 512-byte sector
	nsect    int    // 512-byte sectors
	data     []*page
	ind      []*page // indirect descriptor pages

	done     chan struct{} // closed on completion
	err      error         // set before done is closed
	finished bool          // response consumed or request failed
	tainted  bool          // failed without a response: the backend may still use the pages
	orphan   bool          // the reader gave up; the completion releases the pages
}

// opName names a request operation for messages.
func opName(op uint8) string {
	switch op {
	case blkif.OpRead:
		return "read"
	case blkif.OpWrite:
		return "write"
	case blkif.OpFlushDiskcache:
		return "flush"
	case blkif.OpWriteBarrier:
		return "barrier"
	}
	return "operation " + strconv.Itoa(int(op))
}

// String describes r for errors: the operation and the sectors.
func (r *request) String() string {
	if r.nsect == 0 {
		return opName(r.op)
	}
	return fmt.Sprintf("%s of sectors %d+%d", opName(r.op), r.sector, r.nsect)
}

func newEngine(ring *sring.Front, handle uint16) *engine {
	n := ring.Size()
	e := &engine{
		ring:   ring,
		handle: handle,
		shadow: make([]*request, n),
		gens:   make([]uint32, n),
		free:   make([]uint32, 0, n),
		rsp:    make([]byte, blkif.SlotSize),
	}
	for i := n - 1; i >= 0; i-- {
		e.free = append(e.free, uint32(i))
	}
	return e
}

// canSubmit reports whether a request slot is free.
func (e *engine) canSubmit() bool {
	return e.err == nil && e.ring.Free() > 0 && len(e.free) > 0
}

// submit writes r into the next ring slot and registers it in flight.
// The caller checked canSubmit, granted r's pages and, for a write,
// filled them; refs holds the grant of each data page and ind of each
// indirect page (a flush has neither). It does not push.
func (e *engine) submit(r *request, refs, ind []uint32) error {
	if !e.canSubmit() {
		return fmt.Errorf("blkfront: internal error: submit without a free slot")
	}
	slot, err := e.ring.NextRequest()
	if err != nil {
		return err
	}
	s := e.free[len(e.free)-1]
	e.free = e.free[:len(e.free)-1]
	e.gens[s]++
	r.slot = s
	r.id = uint64(e.gens[s])<<32 | uint64(s)
	r.done = make(chan struct{})
	e.shadow[s] = r
	e.count++

	segs := segments(r.nsect, refs)
	if !r.indirect {
		q := blkif.Request{Op: r.op, NrSegments: uint8(len(segs)), Handle: e.handle, ID: r.id, Sector: r.sector}
		copy(q.Seg[:], segs)
		q.Put(slot)
		return nil
	}
	// Descriptors go into the indirect pages, 512 to a page.
	for i, sg := range segs {
		p := r.ind[i/blkif.SegmentsPerIndirectPage]
		sg.Put(p.buf[(i%blkif.SegmentsPerIndirectPage)*blkif.SegmentSize:])
	}
	q := blkif.IndirectRequest{IndirectOp: r.op, NrSegments: uint16(len(segs)), ID: r.id, Sector: r.sector, Handle: e.handle}
	copy(q.Grefs[:], ind)
	q.Put(slot)
	return nil
}

// segments covers nsect sectors with whole pages, the last one partly.
func segments(nsect int, refs []uint32) []blkif.Segment {
	segs := make([]blkif.Segment, 0, len(refs))
	for _, ref := range refs {
		n := min(nsect, blkif.SectorsPerPage)
		segs = append(segs, blkif.Segment{Gref: ref, FirstSect: 0, LastSect: uint8(n - 1)})
		nsect -= n
	}
	return segs
}

// complete consumes every response the backend has published and
// takes the requests they answer out of flight; it returns them.
// A response that answers no request in flight, or answers it with the
// wrong operation, or a response index the ring cannot hold, is a
// protocol violation: the engine fails, with every request in flight
// (fail), and complete returns the error.
func (e *engine) complete() ([]*request, error) {
	if e.err != nil {
		return nil, e.err
	}
	var done []*request
	for {
		ok, err := e.ring.NextResponse(e.rsp)
		if err == nil && !ok {
			var more bool
			if more, err = e.ring.FinalCheck(); err == nil && !more {
				return done, nil
			}
		}
		if err != nil {
			err = fmt.Errorf("%w: response ring: %w", ErrProtocol, err)
			return append(done, e.fail(err)...), err
		}
		if !ok {
			continue // FinalCheck found one
		}
		rsp, _ := blkif.ParseResponse(e.rsp)
		r, err := e.match(rsp)
		if err != nil {
			return append(done, e.fail(err)...), err
		}
		switch rsp.Status {
		case blkif.RspOkay:
		case blkif.RspError:
			r.err = fmt.Errorf("%w: %v", ErrIO, r)
		case blkif.RspEOPNOTSUPP:
			r.err = fmt.Errorf("%w: %v", ErrNotSupported, r)
		default:
			r.err = fmt.Errorf("%w: %v: unknown status %d", ErrIO, r, rsp.Status)
		}
		e.retire(r)
		done = append(done, r)
	}
}

// match finds the request a response answers.
func (e *engine) match(rsp blkif.Response) (*request, error) {
	s := uint32(rsp.ID)
	if uint64(s) >= uint64(len(e.shadow)) || e.shadow[s] == nil || e.shadow[s].id != rsp.ID {
		return nil, fmt.Errorf("%w: response for unknown id %#x", ErrProtocol, rsp.ID)
	}
	r := e.shadow[s]
	// Linux blkback answers an indirect request with the inner
	// operation; the header's wording allows the outer one too.
	if rsp.Op != r.op && !(r.indirect && rsp.Op == blkif.OpIndirect) {
		return nil, fmt.Errorf("%w: response %#x has operation %d for a %s", ErrProtocol, rsp.ID, rsp.Op, opName(r.op))
	}
	return r, nil
}

// retire takes r out of the table.
func (e *engine) retire(r *request) {
	e.shadow[r.slot] = nil
	e.free = append(e.free, r.slot)
	e.count--
	r.finished = true
}

// fail marks the connection broken with err and fails every request in
// flight; their pages are tainted, since the backend may still use
// them. It returns the requests it failed.
func (e *engine) fail(err error) []*request {
	if e.err == nil {
		e.err = err
	}
	var failed []*request
	for _, r := range e.shadow {
		if r == nil {
			continue
		}
		r.err = e.err
		r.tainted = true
		e.retire(r)
		failed = append(failed, r)
	}
	return failed
}
