package netfront

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gopvgrub/gopvgrub/netfront/netif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/sring"
)

// The engines are driven here by an sring.Back over the same memory,
// written by hand or by the fuzzer: no hypervisor, no grants.

func rxFixture(t testing.TB, n int) (*rxEngine, *sring.Back) {
	mem := make([]byte, xen.PageSize)
	f, err := sring.NewFront(mem, netif.RxSlotSize)
	if err != nil {
		t.Fatal(err)
	}
	var pages [][]byte
	var refs []uint32
	for i := range n {
		p := bytes.Repeat([]byte{byte(i + 1)}, xen.PageSize)
		pages = append(pages, p)
		refs = append(refs, uint32(100+i))
	}
	e := newRxEngine(f, pages, refs)
	e.post()
	b, err := sring.NewBack(mem, netif.RxSlotSize)
	if err != nil {
		t.Fatal(err)
	}
	return e, b
}

// answer consumes the next request and writes a response (or extra) in
// its slot.
func answer(t testing.TB, b *sring.Back, put func(req netif.RxRequest, slot []byte)) {
	req := make([]byte, netif.RxSlotSize)
	ok, err := b.NextRequest(req)
	if err != nil || !ok {
		t.Fatalf("no request: %v", err)
	}
	slot, err := b.NextResponse()
	if err != nil {
		t.Fatal(err)
	}
	put(netif.ParseRxRequest(req), slot)
}

func data(status int16, flags uint16) func(netif.RxRequest, []byte) {
	return func(r netif.RxRequest, s []byte) {
		netif.RxResponse{ID: r.ID, Offset: 10, Flags: flags, Status: status}.Put(s)
	}
}

func TestRxEnginePosting(t *testing.T) {
	_, b := rxFixture(t, 4)
	if n, _ := b.Unconsumed(); n != 4 {
		t.Fatalf("%d requests posted", n)
	}
	req := make([]byte, netif.RxSlotSize)
	for i := range 4 {
		b.NextRequest(req)
		r := netif.ParseRxRequest(req)
		if r.ID != uint16(i) || r.Gref < 100 || r.Gref > 103 {
			t.Fatalf("request %d: %+v", i, r)
		}
	}
}

func TestRxEngineAssembly(t *testing.T) {
	e, b := rxFixture(t, 8)
	var got [][]byte
	deliver := func(p []byte) { got = append(got, p) }

	// A two-fragment packet with an extra slot in between, delivered
	// in two polls (the rest arrives later).
	answer(t, b, data(100, netif.RxMoreData|netif.RxExtraInfo))
	b.Push()
	e.poll(deliver)
	answer(t, b, func(_ netif.RxRequest, s []byte) { netif.GSO(1448, 1, 0).Put(s) })
	answer(t, b, data(50, 0))
	b.Push()
	if _, err := e.poll(deliver); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0]) != 150 || got[0][0] == got[0][149] {
		t.Fatalf("got %d packets", len(got))
	}
	// All three buffers came back and were posted again.
	e.post()
	if len(e.free) != 0 {
		t.Fatalf("%d buffers not posted", len(e.free))
	}
	// An error status in a chain drops the whole packet.
	answer(t, b, data(100, netif.RxMoreData))
	answer(t, b, data(netif.RspError, netif.RxMoreData))
	answer(t, b, data(10, 0))
	// Beyond the page: dropped.
	answer(t, b, func(r netif.RxRequest, s []byte) {
		netif.RxResponse{ID: r.ID, Offset: 4090, Status: 10}.Put(s)
	})
	// Id not echoed: tolerated, counted.
	answer(t, b, func(r netif.RxResponse) func(netif.RxRequest, []byte) {
		return func(_ netif.RxRequest, s []byte) { r.Put(s) }
	}(netif.RxResponse{ID: 999, Status: 20}))
	b.Push()
	got = nil
	if _, err := e.poll(deliver); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0]) != 20 || e.st.errors != 2 || e.st.idMismatch != 1 {
		t.Fatalf("got %d packets, stats %+v", len(got), e.st)
	}
}

func TestRxEngineLimits(t *testing.T) {
	e, b := rxFixture(t, 64)
	var got [][]byte
	deliver := func(p []byte) { got = append(got, p) }
	// More fragments than maxSlots: dropped.
	for range maxSlots {
		answer(t, b, data(1000, netif.RxMoreData))
	}
	answer(t, b, data(1000, 0))
	// Chained extras: skipped, up to the last.
	answer(t, b, data(30, netif.RxExtraInfo))
	for i := range 3 {
		answer(t, b, func(_ netif.RxRequest, s []byte) {
			x := netif.GSO(0, 1, 0)
			if i < 2 {
				x.Flags = netif.ExtraFlagMore
			}
			x.Put(s)
		})
	}
	// A zero-length packet: dropped.
	answer(t, b, data(0, 0))
	b.Push()
	if _, err := e.poll(deliver); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0]) != 30 || e.st.errors != 2 || e.st.extras != 3 {
		t.Fatalf("got %d, stats %+v", len(got), e.st)
	}
	// Ring indices beyond what was posted: a protocol error.
	b.Shared().SetRspProd(b.Shared().RspProd() + 100)
	if _, err := e.poll(deliver); !errors.Is(err, ErrProtocol) {
		t.Fatalf("poll = %v", err)
	}
}

func TestFixChecksum(t *testing.T) {
	// Not IPv4, fragments, short: untouched.
	for _, f := range [][]byte{
		make([]byte, 10),
		append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd}, make([]byte, 40)...),
	} {
		c := bytes.Clone(f)
		if fixChecksum(c) || !bytes.Equal(c, f) {
			t.Fatalf("touched %x", f)
		}
	}
}

func txFixture(t testing.TB, n int) (*txEngine, *sring.Back) {
	mem := make([]byte, xen.PageSize)
	f, err := sring.NewFront(mem, netif.TxSlotSize)
	if err != nil {
		t.Fatal(err)
	}
	var pages [][]byte
	var refs []uint32
	for i := range n {
		pages = append(pages, make([]byte, xen.PageSize))
		refs = append(refs, uint32(200+i))
	}
	b, err := sring.NewBack(mem, netif.TxSlotSize)
	if err != nil {
		t.Fatal(err)
	}
	return newTxEngine(f, pages, refs), b
}

func TestTxEngine(t *testing.T) {
	e, b := txFixture(t, 2)
	if _, err := e.send(make([]byte, 60)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.send(make([]byte, 1514)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.send(make([]byte, 60)); err == nil {
		t.Fatal("sent without a free page")
	}
	if e.outstanding() != 2 {
		t.Fatal(e.outstanding())
	}
	req := make([]byte, netif.TxSlotSize)
	var ids []uint16
	for range 2 {
		b.NextRequest(req)
		r := netif.ParseTxRequest(req)
		if r.Gref < 200 || r.Offset != 0 || r.Flags != 0 {
			t.Fatalf("%+v", r)
		}
		ids = append(ids, r.ID)
	}
	for i, id := range ids {
		s, _ := b.NextResponse()
		st := int16(netif.RspOkay)
		if i == 1 {
			st = netif.RspDropped
		}
		netif.TxResponse{ID: id, Status: st}.Put(s)
	}
	b.Push()
	freed, _, err := e.reap()
	if err != nil || freed != 2 || e.outstanding() != 0 || e.st.errors != 1 {
		t.Fatalf("reap = %d %v, stats %+v", freed, err, e.st)
	}
	// A response for an id not in flight: a protocol error.
	e.send(make([]byte, 60))
	b.NextRequest(req)
	s, _ := b.NextResponse()
	netif.TxResponse{ID: 1 - netif.ParseTxRequest(req).ID}.Put(s)
	b.Push()
	if _, _, err := e.reap(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("reap = %v", err)
	}
}

// FuzzRxEngine lets the fuzzer be the backend of the receive ring: each
// round it answers some requests with slots of its choosing (or moves the
// producer index anywhere). The engine must never panic, never deliver
// more than maxPacket bytes, keep every buffer either posted or free, and
// report anything impossible as ErrProtocol.
func FuzzRxEngine(f *testing.F) {
	f.Add([]byte{2, 100, 0, 10, 0, 4, 0, 200, 0, 0, 0, 0, 0, 0, 0, 50, 0})
	f.Add([]byte{3, 0, 0, 0, 0, 12, 0, 10, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 7, 0})
	f.Add([]byte{0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		const n = 8
		e, b := rxFixture(t, n)
		req := make([]byte, netif.RxSlotSize)
		deliver := func(p []byte) {
			if len(p) == 0 || len(p) > maxPacket {
				t.Fatalf("delivered %d bytes", len(p))
			}
		}
		for len(in) > 0 {
			k := int(in[0])
			in = in[1:]
			if k == 0xff && len(in) >= 4 {
				// Adversarial: an arbitrary producer index.
				b.Shared().SetRspProd(uint32(in[0]) | uint32(in[1])<<8 | uint32(in[2])<<16 | uint32(in[3])<<24)
				in = in[4:]
			} else {
				for range k % (n + 1) {
					if len(in) < netif.RxSlotSize {
						break
					}
					if ok, err := b.NextRequest(req); err != nil || !ok {
						break
					}
					s, err := b.NextResponse()
					if err != nil {
						break
					}
					copy(s, in[:netif.RxSlotSize])
					in = in[netif.RxSlotSize:]
				}
				b.Push()
			}
			if _, err := e.poll(deliver); err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("poll = %v", err)
				}
				return
			}
			e.post()
			posted := 0
			for _, s := range e.slots {
				if s >= 0 {
					posted++
				}
			}
			if posted+len(e.free) != n || posted != n {
				t.Fatalf("%d posted, %d free", posted, len(e.free))
			}
		}
	})
}

// FuzzTxEngine lets the fuzzer answer the transmit ring.
func FuzzTxEngine(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 0, 1, 0, 0, 0})
	f.Add([]byte{1, 9, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		const n = 4
		e, b := txFixture(t, n)
		req := make([]byte, netif.TxSlotSize)
		for len(in) > 0 {
			k := int(in[0]) % (n + 1)
			in = in[1:]
			for len(e.free) > 0 && e.outstanding() < k {
				if _, err := e.send(make([]byte, 60)); err != nil {
					t.Fatal(err)
				}
			}
			for range k {
				if len(in) < 4 {
					break
				}
				if ok, _ := b.NextRequest(req); !ok {
					break
				}
				s, err := b.NextResponse()
				if err != nil {
					break
				}
				copy(s, in[:4])
				in = in[4:]
			}
			b.Push()
			if _, _, err := e.reap(); err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("reap = %v", err)
				}
				return
			}
			busy := 0
			for _, x := range e.busy {
				if x {
					busy++
				}
			}
			if busy+len(e.free) != n || busy != e.outstanding() {
				t.Fatalf("%d busy, %d free", busy, len(e.free))
			}
		}
	})
}
