package blkfront

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen/sring"
)

// alignedPages returns n page-aligned pages of Go memory.
func alignedPages(n int) []byte {
	words := make([]uint64, (n+1)*blkif.PageSize/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & (blkif.PageSize - 1))
	return b[off : off+n*blkif.PageSize : off+n*blkif.PageSize]
}

// testEngine is an engine and the back end of its ring.
func testEngine(t testing.TB, order int) (*engine, *sring.Back, []byte) {
	t.Helper()
	mem := alignedPages(1 << order)
	f, err := sring.NewFront(mem, blkif.SlotSize)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sring.NewBack(mem, blkif.SlotSize)
	if err != nil {
		t.Fatal(err)
	}
	return newEngine(f, 0xca00), b, mem
}

// fakeRequest is a request with n data pages (refs 100, 101…).
func fakeRequest(sector uint64, n int, indirect bool) (*request, []uint32, []uint32) {
	r := &request{sector: sector, nsect: n * 8, indirect: indirect}
	refs := make([]uint32, n)
	for i := range refs {
		r.data = append(r.data, &page{buf: make([]byte, blkif.PageSize)})
		refs[i] = 100 + uint32(i)
	}
	var ind []uint32
	if indirect {
		for i := 0; i < blkif.IndirectPages(n); i++ {
			r.ind = append(r.ind, &page{buf: make([]byte, blkif.PageSize)})
			ind = append(ind, 900+uint32(i))
		}
	}
	return r, refs, ind
}

func TestSubmitEncodes(t *testing.T) {
	e, b, _ := testEngine(t, 0)
	r1, refs1, _ := fakeRequest(64, 3, false)
	r1.nsect = 20 // 8 + 8 + 4
	if err := e.submit(r1, refs1, nil); err != nil {
		t.Fatal(err)
	}
	r2, refs2, ind2 := fakeRequest(1024, 600, true)
	if err := e.submit(r2, refs2, ind2); err != nil {
		t.Fatal(err)
	}
	e.ring.Push()
	slot := make([]byte, blkif.SlotSize)
	b.NextRequest(slot)
	q, _ := blkif.ParseRequest(slot)
	want := blkif.Request{Op: blkif.OpRead, NrSegments: 3, Handle: 0xca00, ID: r1.id, Sector: 64}
	want.Seg[0] = blkif.Segment{Gref: 100, LastSect: 7}
	want.Seg[1] = blkif.Segment{Gref: 101, LastSect: 7}
	want.Seg[2] = blkif.Segment{Gref: 102, LastSect: 3}
	if q != want {
		t.Errorf("direct request\n got %+v\nwant %+v", q, want)
	}
	b.NextRequest(slot)
	iq, err := blkif.ParseIndirectRequest(slot)
	if err != nil {
		t.Fatal(err)
	}
	if iq.IndirectOp != blkif.OpRead || iq.NrSegments != 600 || iq.ID != r2.id || iq.Sector != 1024 || iq.Handle != 0xca00 ||
		iq.Grefs[0] != 900 || iq.Grefs[1] != 901 || iq.Grefs[2] != 0 {
		t.Errorf("indirect request %+v", iq)
	}
	// Descriptors: 512 in the first page, 88 in the second.
	s0, _ := blkif.ParseSegment(r2.ind[0].buf[511*blkif.SegmentSize:])
	s1, _ := blkif.ParseSegment(r2.ind[1].buf[87*blkif.SegmentSize:])
	s2, _ := blkif.ParseSegment(r2.ind[1].buf[88*blkif.SegmentSize:])
	if s0 != (blkif.Segment{Gref: 100 + 511, LastSect: 7}) || s1 != (blkif.Segment{Gref: 100 + 599, LastSect: 7}) || s2 != (blkif.Segment{}) {
		t.Errorf("descriptors %+v %+v %+v", s0, s1, s2)
	}
	if r1.id == r2.id || e.count != 2 {
		t.Errorf("ids %#x %#x, count %d", r1.id, r2.id, e.count)
	}
}

// TestSubmitOps: writes, direct and indirect, and data-less flushes
// carry their operation.
func TestSubmitOps(t *testing.T) {
	e, b, _ := testEngine(t, 0)
	w, wrefs, _ := fakeRequest(8, 2, false)
	w.op = blkif.OpWrite
	iw, iwrefs, iwind := fakeRequest(64, 20, true)
	iw.op = blkif.OpWrite
	fl := &request{op: blkif.OpFlushDiskcache}
	br := &request{op: blkif.OpWriteBarrier}
	for _, r := range []struct {
		r         *request
		refs, ind []uint32
	}{{w, wrefs, nil}, {iw, iwrefs, iwind}, {fl, nil, nil}, {br, nil, nil}} {
		if err := e.submit(r.r, r.refs, r.ind); err != nil {
			t.Fatal(err)
		}
	}
	e.ring.Push()
	slot := make([]byte, blkif.SlotSize)
	b.NextRequest(slot)
	if q, _ := blkif.ParseRequest(slot); q.Op != blkif.OpWrite || q.NrSegments != 2 || q.Sector != 8 || q.ID != w.id {
		t.Errorf("write %+v", q)
	}
	b.NextRequest(slot)
	if q, err := blkif.ParseIndirectRequest(slot); err != nil || q.IndirectOp != blkif.OpWrite || q.NrSegments != 20 || q.ID != iw.id {
		t.Errorf("indirect write %+v, %v", q, err)
	}
	for _, r := range []*request{fl, br} {
		b.NextRequest(slot)
		q, _ := blkif.ParseRequest(slot)
		if q.Op != r.op || q.NrSegments != 0 || q.Sector != 0 || q.ID != r.id || q.Handle != 0xca00 {
			t.Errorf("%v: %+v", r, q)
		}
	}
}

// TestCompleteMatchesOp: a response must carry its request's operation
// (or, for an indirect one, BLKIF_OP_INDIRECT); an error status names
// the operation and sectors.
func TestCompleteMatchesOp(t *testing.T) {
	for _, tc := range []struct {
		op       uint8
		indirect bool
		rspOp    uint8
		ok       bool
	}{
		{blkif.OpWrite, false, blkif.OpWrite, true},
		{blkif.OpWrite, false, blkif.OpRead, false},
		{blkif.OpRead, false, blkif.OpWrite, false},
		{blkif.OpWrite, true, blkif.OpWrite, true},
		{blkif.OpWrite, true, blkif.OpIndirect, true},
		{blkif.OpWrite, true, blkif.OpRead, false},
		{blkif.OpWrite, false, blkif.OpIndirect, false},
		{blkif.OpFlushDiskcache, false, blkif.OpFlushDiskcache, true},
		{blkif.OpFlushDiskcache, false, blkif.OpWriteBarrier, false},
		{blkif.OpFlushDiskcache, false, blkif.OpWrite, false},
		{blkif.OpWriteBarrier, false, blkif.OpWriteBarrier, true},
	} {
		t.Run(fmt.Sprintf("%s/indirect=%v/answered %d", opName(tc.op), tc.indirect, tc.rspOp), func(t *testing.T) {
			e, b, _ := testEngine(t, 0)
			r, refs, ind := fakeRequest(16, 1, false)
			if tc.indirect {
				r, refs, ind = fakeRequest(16, 12, true)
			}
			if tc.op == blkif.OpFlushDiskcache || tc.op == blkif.OpWriteBarrier {
				r, refs, ind = &request{}, nil, nil
			}
			r.op = tc.op
			e.submit(r, refs, ind)
			e.ring.Push()
			respond(t, b, func(_ []byte, rsp *blkif.Response) { rsp.Op, rsp.Status = tc.rspOp, blkif.RspError })
			done, err := e.complete()
			if !tc.ok {
				if !errors.Is(err, ErrProtocol) || len(done) != 1 || !r.tainted {
					t.Fatalf("accepted: %v", err)
				}
				return
			}
			if err != nil || len(done) != 1 || !errors.Is(r.err, ErrIO) {
				t.Fatalf("complete: %v, request error %v", err, r.err)
			}
			want := opName(tc.op)
			if r.nsect > 0 {
				want += fmt.Sprintf(" of sectors 16+%d", r.nsect)
			}
			if !strings.HasSuffix(r.err.Error(), ": "+want) {
				t.Errorf("error %q does not end in %q", r.err, want)
			}
		})
	}
}

// respond makes the back end answer the next request with rsp, after f
// rewrites it.
func respond(t testing.TB, b *sring.Back, f func(req []byte, rsp *blkif.Response)) {
	t.Helper()
	req := make([]byte, blkif.SlotSize)
	if ok, err := b.NextRequest(req); !ok || err != nil {
		t.Fatalf("no request to answer: %v", err)
	}
	op, _ := blkif.Op(req)
	if op == blkif.OpIndirect {
		op = blkif.OpRead
	}
	rsp := blkif.Response{ID: binary.LittleEndian.Uint64(req[8:]), Op: op}
	if f != nil {
		f(req, &rsp)
	}
	s, err := b.NextResponse()
	if err != nil {
		t.Fatal(err)
	}
	rsp.Put(s)
	b.Push()
}

func TestCompleteMatchesOutOfOrder(t *testing.T) {
	e, b, _ := testEngine(t, 0)
	var rs []*request
	for i := 0; i < 5; i++ {
		r, refs, _ := fakeRequest(uint64(i*8), 1, false)
		if err := e.submit(r, refs, nil); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	e.ring.Push()
	// Answer in the order 4, 0, 3, 1, 2 by consuming all and
	// responding with chosen ids.
	req := make([]byte, blkif.SlotSize)
	for i := 0; i < 5; i++ {
		b.NextRequest(req)
	}
	for _, i := range []int{4, 0, 3, 1, 2} {
		s, _ := b.NextResponse()
		st := int16(blkif.RspOkay)
		if i == 3 {
			st = blkif.RspError
		}
		if i == 1 {
			st = blkif.RspEOPNOTSUPP
		}
		if i == 2 {
			st = 7
		}
		blkif.Response{ID: rs[i].id, Op: blkif.OpRead, Status: st}.Put(s)
	}
	b.Push()
	done, err := e.complete()
	if err != nil || len(done) != 5 {
		t.Fatalf("complete: %d, %v", len(done), err)
	}
	for k, i := range []int{4, 0, 3, 1, 2} {
		if done[k] != rs[i] {
			t.Errorf("completion %d is not request %d", k, i)
		}
	}
	if rs[0].err != nil || rs[4].err != nil {
		t.Errorf("ok requests failed: %v %v", rs[0].err, rs[4].err)
	}
	if !errors.Is(rs[3].err, ErrIO) || !errors.Is(rs[1].err, ErrNotSupported) || !errors.Is(rs[2].err, ErrIO) {
		t.Errorf("statuses: %v / %v / %v", rs[3].err, rs[1].err, rs[2].err)
	}
	if e.err != nil || e.count != 0 || len(e.free) != e.ring.Size() || e.ring.Free() != e.ring.Size() {
		t.Errorf("engine not idle: err %v count %d free %d ring free %d", e.err, e.count, len(e.free), e.ring.Free())
	}
}

func TestCompleteRejects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		indirect bool
		mangle   func(req []byte, rsp *blkif.Response)
		ok       bool
	}{
		{"good", false, nil, true},
		{"indirect answered with inner op", true, nil, true},
		{"indirect answered with outer op", true, func(_ []byte, r *blkif.Response) { r.Op = blkif.OpIndirect }, true},
		{"direct answered as indirect", false, func(_ []byte, r *blkif.Response) { r.Op = blkif.OpIndirect }, false},
		{"write", false, func(_ []byte, r *blkif.Response) { r.Op = blkif.OpWrite }, false},
		{"unknown slot", false, func(_ []byte, r *blkif.Response) { r.ID = 1<<32 | 31 }, false},
		{"slot beyond the table", false, func(_ []byte, r *blkif.Response) { r.ID = 1<<32 | 1000 }, false},
		{"stale generation", false, func(_ []byte, r *blkif.Response) { r.ID += 1 << 32 }, false},
		{"zero id", false, func(_ []byte, r *blkif.Response) { r.ID = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, b, _ := testEngine(t, 0)
			r, refs, ind := fakeRequest(0, 12, tc.indirect)
			if !tc.indirect {
				r, refs, ind = fakeRequest(0, 2, false)
			}
			other, orefs, _ := fakeRequest(8, 1, false)
			e.submit(r, refs, ind)
			e.submit(other, orefs, nil)
			e.ring.Push()
			respond(t, b, tc.mangle)
			done, err := e.complete()
			if tc.ok {
				if err != nil || len(done) != 1 || done[0] != r || r.err != nil {
					t.Fatalf("done %d, err %v, r.err %v", len(done), err, r.err)
				}
				return
			}
			if !errors.Is(err, ErrProtocol) || !errors.Is(e.err, ErrProtocol) {
				t.Fatalf("err %v, engine err %v", err, e.err)
			}
			// Both requests fail, tainted: the backend may still use
			// their pages.
			if len(done) != 2 || !r.tainted || !other.tainted || !errors.Is(other.err, ErrProtocol) || e.count != 0 {
				t.Fatalf("done %d, tainted %v %v, count %d", len(done), r.tainted, other.tainted, e.count)
			}
			if e.canSubmit() {
				t.Fatal("a broken engine accepts requests")
			}
			if again, err := e.complete(); len(again) != 0 || !errors.Is(err, ErrProtocol) {
				t.Fatalf("second complete: %d %v", len(again), err)
			}
		})
	}
}

func TestCompleteRejectsTooManyResponses(t *testing.T) {
	e, b, _ := testEngine(t, 0)
	r, refs, _ := fakeRequest(0, 1, false)
	e.submit(r, refs, nil)
	e.ring.Push()
	respond(t, b, nil)
	b.Shared().SetRspProd(b.Shared().RspProd() + 1) // a response nobody asked for
	done, err := e.complete()
	if !errors.Is(err, ErrProtocol) || !errors.Is(err, sring.ErrCorrupt) {
		t.Fatalf("err %v", err)
	}
	if len(done) != 1 || !r.tainted {
		t.Fatalf("the request was not failed: %d done, tainted %v", len(done), r.tainted)
	}
}

func TestDuplicateResponse(t *testing.T) {
	e, b, _ := testEngine(t, 0)
	r, refs, _ := fakeRequest(0, 1, false)
	e.submit(r, refs, nil)
	r2, refs2, _ := fakeRequest(8, 1, false)
	e.submit(r2, refs2, nil)
	e.ring.Push()
	respond(t, b, nil)
	if done, err := e.complete(); err != nil || len(done) != 1 {
		t.Fatal(done, err)
	}
	// The backend answers the same id again in the next slot.
	respond(t, b, func(_ []byte, rsp *blkif.Response) { rsp.ID = r.id })
	if _, err := e.complete(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("duplicate accepted: %v", err)
	}
	if !r2.tainted {
		t.Fatal("the other request was not failed")
	}
}

func TestSegments(t *testing.T) {
	for _, tc := range []struct {
		nsect int
		refs  int
		last  []uint8
	}{
		{8, 1, []uint8{7}},
		{1, 1, []uint8{0}},
		{9, 2, []uint8{7, 0}},
		{88, 11, []uint8{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}},
	} {
		refs := make([]uint32, tc.refs)
		segs := segments(tc.nsect, refs)
		if len(segs) != len(tc.last) {
			t.Fatalf("%d sectors: %d segments", tc.nsect, len(segs))
		}
		for i, s := range segs {
			if s.FirstSect != 0 || s.LastSect != tc.last[i] {
				t.Errorf("%d sectors: segment %d = %+v", tc.nsect, i, s)
			}
		}
	}
}

// FuzzResponses lets the input play the backend: it consumes requests
// and writes whatever it likes into response slots and the response
// index. The engine must never panic, complete a request twice, lose
// count, or accept a response after breaking.
func FuzzResponses(f *testing.F) {
	good := make([]byte, 0, 64)
	for i := 0; i < 4; i++ {
		good = append(good, 1, byte(i), 0, 0) // answer request i properly
	}
	f.Add(uint8(4), good)
	f.Add(uint8(2), []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(3), []byte{3, 0xff, 0xff, 0xff, 1, 1, 0, 0})
	f.Add(uint8(1), []byte{1, 0, 0xfe, 0xff, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, n uint8, prog []byte) {
		e, b, mem := testEngine(t, 0)
		var reqs []*request
		for i := 0; i < int(n%33); i++ {
			r, refs, ind := fakeRequest(uint64(i)*8, 1+i%14, i%14 >= 11)
			switch i % 5 {
			case 1, 3:
				r.op = blkif.OpWrite
			case 4:
				r, refs, ind = &request{op: blkif.OpFlushDiskcache}, nil, nil
			}
			if err := e.submit(r, refs, ind); err != nil {
				t.Fatal(err)
			}
			reqs = append(reqs, r)
		}
		e.ring.Push()
		finished := map[*request]bool{}
		slot := make([]byte, blkif.SlotSize)
		for len(prog) >= 4 {
			op, a, c, d := prog[0], prog[1], prog[2], prog[3]
			prog = prog[4:]
			switch op % 4 {
			case 0: // raw bytes into the next response slot and publish
				prod := b.Shared().RspProd()
				off := sring.HeaderSize + int(prod%uint32(e.ring.Size()))*blkif.SlotSize
				for i := 0; i < 16; i++ {
					mem[off+i] = a ^ byte(i)*c
				}
				b.Shared().SetRspProd(prod + uint32(d%3))
			case 1: // a well-formed answer to request a, status c; d&1 gives another operation
				if int(a) >= len(reqs) {
					continue
				}
				if ok, _ := b.NextRequest(slot); !ok {
					continue
				}
				s, err := b.NextResponse()
				if err != nil {
					continue
				}
				blkif.Response{ID: reqs[a].id, Op: reqs[a].op ^ d&1, Status: int16(int8(c))}.Put(s)
				b.Push()
			case 2: // a response index anywhere
				b.Shared().SetRspProd(uint32(a) | uint32(c)<<8 | uint32(d)<<24)
			case 3:
				for b.Unanswered() < e.ring.Size() {
					if ok, _ := b.NextRequest(slot); !ok {
						break
					}
				}
			}
			before := e.err
			done, err := e.complete()
			if before != nil && (len(done) != 0 || err == nil) {
				t.Fatalf("broken engine completed %d requests (err %v)", len(done), err)
			}
			for _, r := range done {
				if finished[r] {
					t.Fatalf("request %#x completed twice", r.id)
				}
				finished[r] = true
				if !r.finished {
					t.Fatalf("completed request not marked finished")
				}
			}
			if err != nil && (e.err == nil || e.count != 0) {
				t.Fatalf("error %v but engine err %v count %d", err, e.err, e.count)
			}
			if e.count+len(finished) != len(reqs) {
				t.Fatalf("count %d + finished %d != submitted %d", e.count, len(finished), len(reqs))
			}
		}
	})
}
