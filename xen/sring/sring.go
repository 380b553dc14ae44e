// Package sring implements the fixed-slot shared rings of Xen's split
// drivers (xen/include/public/io/ring.h, DEFINE_RING_TYPES), used by
// blkif (io/blkif.h) and netif (io/netif.h).
//
// A ring occupies 2^order pages shared with another domain. The first 64
// bytes hold four free-running 32-bit indices, then padding:
//
//	req_prod@0  req_event@4  rsp_prod@8  rsp_event@12  pvt@16  pad@20..63
//
// followed by the slots: a power of two of them, each as large as the
// bigger of a request and a response (__RING_SIZE). The front end produces
// requests and consumes responses; the back end does the reverse, writing
// each response into a slot whose request it has already consumed. A
// *_event index asks the producer to notify once its producer index
// passes it, which is how both sides suppress needless event-channel
// notifications.
//
// What goes into a slot is the caller's business: NextRequest and
// NextResponse hand out []byte views of slots; consumers get copies, never
// views, because the peer may rewrite shared memory while it is being
// parsed.
//
// The peer is not trusted. Every index it publishes is checked: a back
// end that claims more responses than requests are outstanding, or a
// front end that claims more requests than the ring holds, gets
// ErrCorrupt rather than being followed.
//
// Memory ordering is done with sync/atomic on the shared indices: slot
// contents are written before the producer index is stored, and read
// after it is loaded. Go's atomics are sequentially consistent (on amd64
// the store is an XCHG), which also gives the full barrier ring.h's
// xen_mb() provides between publishing an index and reading the peer's
// event index.
//
// The ring.h macros are C preprocessor code; this is a hand-written
// equivalent for Go, used by blkfront, netfront and the simulated back
// ends of package xentest.
package sring

import (
	"sync/atomic"
	"unsafe"
)

// Error is the type of this package's sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Errors.
const (
	// ErrSize: the ring is not 2^order pages (order 0..MaxPageOrder),
	// or the slot size leaves no room for a slot.
	ErrSize = Error("sring: ring is not 1, 2, 4, 8 or 16 pages, or bad slot size")
	// ErrAlign: the ring memory is not 4-byte aligned (it is
	// page-aligned when it comes from xen.Memory or a grant mapping).
	ErrAlign = Error("sring: ring memory is not aligned")
	// ErrFull: every slot holds a request whose response has not been
	// consumed yet.
	ErrFull = Error("sring: no free request slot")
	// ErrNoRequest: a back end tried to produce a response with no
	// consumed request left to answer.
	ErrNoRequest = Error("sring: response without an unanswered request")
	// ErrCorrupt: the peer published an impossible index (more
	// responses than outstanding requests, or more requests than the
	// ring holds). Only a misbehaving peer causes it.
	ErrCorrupt = Error("sring: peer published an impossible ring index")
)

// Layout of the shared page header (struct *_sring).
const (
	OffReqProd  = 0
	OffReqEvent = 4
	OffRspProd  = 8
	OffRspEvent = 12
	HeaderSize  = 64 // offsetof(struct *_sring, ring)
)

// PageSize is the unit of ring sizes (XEN_PAGE_SIZE).
const PageSize = 4096

// MaxPageOrder is the largest ring this package accepts: 2^4 = 16 pages
// (Linux's XENBUS_MAX_RING_GRANT_ORDER, the cap of blkback and netback).
const MaxPageOrder = 4

// Slots is the number of slots in a ring of ringBytes bytes whose slots
// are slotSize bytes long: what is left after the header, in slots,
// rounded down to a power of two (ring.h __RING_SIZE). It is 0 if not
// even one slot fits.
func Slots(ringBytes, slotSize int) int {
	if slotSize <= 0 || ringBytes < HeaderSize+slotSize {
		return 0
	}
	n := (ringBytes - HeaderSize) / slotSize
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}

// Order returns k if n is 2^k pages with k <= MaxPageOrder.
func Order(n int) (int, bool) {
	for k := 0; k <= MaxPageOrder; k++ {
		if n == PageSize<<k {
			return k, true
		}
	}
	return 0, false
}

// Header is the index block of a shared ring. Every access is atomic.
// Drivers use Front and Back; Header is for diagnostics, tests and
// simulated peers that misbehave on purpose.
type Header struct {
	p *[4]uint32 // req_prod, req_event, rsp_prod, rsp_event
}

// The four indices, read and written atomically.
func (h Header) ReqProd() uint32  { return atomic.LoadUint32(&h.p[0]) }
func (h Header) ReqEvent() uint32 { return atomic.LoadUint32(&h.p[1]) }
func (h Header) RspProd() uint32  { return atomic.LoadUint32(&h.p[2]) }
func (h Header) RspEvent() uint32 { return atomic.LoadUint32(&h.p[3]) }

func (h Header) SetReqProd(v uint32)  { atomic.StoreUint32(&h.p[0], v) }
func (h Header) SetReqEvent(v uint32) { atomic.StoreUint32(&h.p[1], v) }
func (h Header) SetRspProd(v uint32)  { atomic.StoreUint32(&h.p[2], v) }
func (h Header) SetRspEvent(v uint32) { atomic.StoreUint32(&h.p[3], v) }

// ring is what both ends share: the header, the slots and the geometry.
type ring struct {
	hdr   Header
	slots []byte
	slot  int    // bytes per slot
	size  uint32 // number of slots, a power of two
}

func newRing(mem []byte, slotSize int) (ring, error) {
	if _, ok := Order(len(mem)); !ok || slotSize <= 0 {
		return ring{}, ErrSize
	}
	n := Slots(len(mem), slotSize)
	if n == 0 {
		return ring{}, ErrSize
	}
	if uintptr(unsafe.Pointer(&mem[0]))%4 != 0 {
		return ring{}, ErrAlign
	}
	return ring{
		hdr:   Header{(*[4]uint32)(unsafe.Pointer(&mem[0]))},
		slots: mem[HeaderSize : HeaderSize+n*slotSize : HeaderSize+n*slotSize],
		slot:  slotSize,
		size:  uint32(n),
	}, nil
}

// at returns the slot for free-running index i.
func (r *ring) at(i uint32) []byte {
	off := int(i&(r.size-1)) * r.slot
	return r.slots[off : off+r.slot : off+r.slot]
}

// notify is the RING_PUSH_*_AND_CHECK_NOTIFY rule: the peer asked to be
// told when the producer index passes event; did old..new pass it?
func notify(old, new, event uint32) bool {
	return new-event < new-old
}

// Front is the front end of a ring: it produces requests and consumes
// responses. It is not safe for concurrent use; drivers hold a lock.
type Front struct {
	ring
	reqProd uint32 // req_prod_pvt: requests produced, pushed or not
	pushed  uint32 // the last req_prod we published
	rspCons uint32 // responses consumed
}

// NewFront initialises a shared ring in mem (SHARED_RING_INIT: indices 0,
// event indices 1, padding cleared) and returns its front end
// (FRONT_RING_INIT). mem is 2^order pages, order <= MaxPageOrder.
func NewFront(mem []byte, slotSize int) (*Front, error) {
	return NewFrontAt(mem, slotSize, 0)
}

// NewFrontAt is NewFront with every index starting at start instead of
// 0, which lets tests exercise the wrap of the free-running indices.
// A back end attaches wherever the front end started (NewBack).
func NewFrontAt(mem []byte, slotSize int, start uint32) (*Front, error) {
	r, err := newRing(mem, slotSize)
	if err != nil {
		return nil, err
	}
	clear(mem[16:HeaderSize])
	r.hdr.SetReqProd(start)
	r.hdr.SetRspProd(start)
	r.hdr.SetReqEvent(start + 1)
	r.hdr.SetRspEvent(start + 1)
	return &Front{ring: r, reqProd: start, pushed: start, rspCons: start}, nil
}

// Size is the number of slots.
func (f *Front) Size() int { return int(f.size) }

// Shared returns the ring's shared indices.
func (f *Front) Shared() Header { return f.hdr }

// Outstanding is the number of requests produced (pushed or not) whose
// responses have not been consumed.
func (f *Front) Outstanding() int { return int(f.reqProd - f.rspCons) }

// Free is the number of requests that can be produced now
// (RING_FREE_REQUESTS).
func (f *Front) Free() int { return int(f.size) - f.Outstanding() }

// NextRequest returns the next free slot, cleared, for the caller to
// fill in, and counts it as produced. The back end sees it after Push.
// It fails with ErrFull when every slot is taken.
func (f *Front) NextRequest() ([]byte, error) {
	if f.Free() <= 0 {
		return nil, ErrFull
	}
	s := f.at(f.reqProd)
	clear(s)
	f.reqProd++
	return s, nil
}

// Push publishes the requests produced since the last Push and reports
// whether the back end must be notified
// (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY).
func (f *Front) Push() bool {
	old, new := f.pushed, f.reqProd
	if old == new {
		return false
	}
	f.hdr.SetReqProd(new) // release: slots before the index; full barrier
	f.pushed = new
	return notify(old, new, f.hdr.ReqEvent())
}

// Unconsumed is the number of responses waiting to be consumed. A back
// end that claims more responses than there are pushed, unanswered
// requests gets ErrCorrupt.
func (f *Front) Unconsumed() (int, error) {
	n := f.hdr.RspProd() - f.rspCons // acquire: slots before it are visible
	if n > f.pushed-f.rspCons {
		return 0, ErrCorrupt
	}
	return int(n), nil
}

// NextResponse copies the next response slot into dst (as much as fits)
// and consumes it. It reports false when there is no response.
func (f *Front) NextResponse(dst []byte) (bool, error) {
	n, err := f.Unconsumed()
	if err != nil || n == 0 {
		return false, err
	}
	copy(dst, f.at(f.rspCons))
	f.rspCons++
	return true, nil
}

// FinalCheck reports whether responses are waiting; if none are, it
// first asks the back end to notify on the next one and checks again,
// closing the race with a response published in between
// (RING_FINAL_CHECK_FOR_RESPONSES). Call it before sleeping on the event
// channel.
func (f *Front) FinalCheck() (bool, error) {
	n, err := f.Unconsumed()
	if err != nil || n > 0 {
		return n > 0, err
	}
	f.hdr.SetRspEvent(f.rspCons + 1) // full barrier before the re-check
	n, err = f.Unconsumed()
	return n > 0, err
}

// Back is the back end of a ring: it consumes requests and produces
// responses. Package xentest's simulated back ends use it. It is not safe
// for concurrent use.
type Back struct {
	ring
	rspProd uint32 // rsp_prod_pvt: responses produced, pushed or not
	pushed  uint32 // the last rsp_prod we published
	reqCons uint32 // requests consumed
}

// NewBack attaches to a ring the front end initialised, at its current
// response index (BACK_RING_ATTACH with rsp_prod, as Linux's backends
// do): requests the front end pushed before the back end attached are
// consumed normally.
func NewBack(mem []byte, slotSize int) (*Back, error) {
	r, err := newRing(mem, slotSize)
	if err != nil {
		return nil, err
	}
	start := r.hdr.RspProd()
	return &Back{ring: r, rspProd: start, pushed: start, reqCons: start}, nil
}

// Size is the number of slots.
func (b *Back) Size() int { return int(b.size) }

// Shared returns the ring's shared indices.
func (b *Back) Shared() Header { return b.hdr }

// Unconsumed is the number of requests waiting to be consumed. A front
// end that claims more requests than the ring can hold gets ErrCorrupt
// (RING_REQUEST_PROD_OVERFLOW).
func (b *Back) Unconsumed() (int, error) {
	prod := b.hdr.ReqProd()
	// Both differences are taken modulo 2^32: an index that went
	// backwards shows up as a huge count.
	if prod-b.rspProd > b.size || prod-b.reqCons > b.size {
		return 0, ErrCorrupt
	}
	return int(prod - b.reqCons), nil
}

// NextRequest copies the next request slot into dst (as much as fits)
// and consumes it. It reports false when there is no request.
func (b *Back) NextRequest(dst []byte) (bool, error) {
	n, err := b.Unconsumed()
	if err != nil || n == 0 {
		return false, err
	}
	copy(dst, b.at(b.reqCons))
	b.reqCons++
	return true, nil
}

// Unanswered is the number of consumed requests no response has been
// produced for.
func (b *Back) Unanswered() int { return int(b.reqCons - b.rspProd) }

// NextResponse returns the next response slot, cleared, for the caller
// to fill in. It fails with ErrNoRequest unless a consumed request is
// still unanswered: each response reuses such a request's slot.
func (b *Back) NextResponse() ([]byte, error) {
	if b.Unanswered() <= 0 {
		return nil, ErrNoRequest
	}
	s := b.at(b.rspProd)
	clear(s)
	b.rspProd++
	return s, nil
}

// Push publishes the responses produced since the last Push and reports
// whether the front end must be notified
// (RING_PUSH_RESPONSES_AND_CHECK_NOTIFY).
func (b *Back) Push() bool {
	old, new := b.pushed, b.rspProd
	if old == new {
		return false
	}
	b.hdr.SetRspProd(new)
	b.pushed = new
	return notify(old, new, b.hdr.RspEvent())
}

// FinalCheck reports whether requests are waiting; if none are, it first
// asks the front end to notify on the next one and checks again
// (RING_FINAL_CHECK_FOR_REQUESTS).
func (b *Back) FinalCheck() (bool, error) {
	n, err := b.Unconsumed()
	if err != nil || n > 0 {
		return n > 0, err
	}
	b.hdr.SetReqEvent(b.reqCons + 1)
	n, err = b.Unconsumed()
	return n > 0, err
}
