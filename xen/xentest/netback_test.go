package xentest

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/netfront/netif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
	"github.com/gopvgrub/gopvgrub/xen/sring"
)

// The tests drive the simulated netback with a minimal frontend written
// here from sring, netif and gnttab alone, independently of netfront.

const nbGuest xen.DomID = 7

type nbFront struct {
	t      *testing.T
	h      *Hypervisor
	g      *Domain
	gnt    *gnttab.Table
	nb     *Netback
	tx, rx *sring.Front
	port   xen.Channel
	// rx buffers posted, by slot
	rxPages map[uint32][]byte
	rxProd  uint32
	rxCons  uint32

	mu   sync.Mutex
	sent [][]byte // frames the backend's Tx hook saw
}

func newNetback(t *testing.T, cfg NetbackConfig, keys map[string]string) *nbFront {
	t.Helper()
	h := NewHypervisor()
	h.NewDomain(0, DomainConfig{})
	g := h.NewDomain(nbGuest, DomainConfig{GrantFrames: 8})
	x := NewXenstored()
	f := &nbFront{t: t, h: h, g: g, rxPages: map[uint32][]byte{}}
	cfg.Front = nbGuest
	cfg.Tx = func(b []byte) {
		f.mu.Lock()
		f.sent = append(f.sent, b)
		f.mu.Unlock()
	}
	nb, err := NewNetback(h, x, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nb.Close)
	f.nb = nb
	if f.gnt, err = gnttab.New(g); err != nil {
		t.Fatal(err)
	}
	ring := func(slot int) (*sring.Front, gnttab.Ref) {
		mem, mfns, err := g.AllocPages(1)
		if err != nil {
			t.Fatal(err)
		}
		r, err := sring.NewFront(mem, slot)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := f.gnt.Grant(0, mfns[0], false)
		if err != nil {
			t.Fatal(err)
		}
		return r, ref
	}
	var txRef, rxRef gnttab.Ref
	f.tx, txRef = ring(netif.TxSlotSize)
	f.rx, rxRef = ring(netif.RxSlotSize)
	if f.port, err = g.AllocUnbound(0); err != nil {
		t.Fatal(err)
	}
	k := map[string]string{
		"tx-ring-ref":       strconv.Itoa(int(txRef)),
		"rx-ring-ref":       strconv.Itoa(int(rxRef)),
		"event-channel":     strconv.Itoa(int(f.port.Port())),
		"request-rx-copy":   "1",
		"feature-rx-notify": "1",
	}
	for key, v := range keys {
		if v == "" {
			delete(k, key)
		} else {
			k[key] = v
		}
	}
	dir := nb.Backend().FrontendDir()
	for key, v := range k {
		x.Write(dir+"/"+key, v)
	}
	waitState(t, nb.Backend(), xen.StateInitWait)
	x.Write(dir+"/state", strconv.Itoa(int(xen.StateConnected)))
	return f
}

func (f *nbFront) connected() *nbFront {
	waitState(f.t, f.nb.Backend(), xen.StateConnected)
	return f
}

func (f *nbFront) kick() {
	if f.port.Notify() != nil {
		f.t.Fatal("notify")
	}
}

// post gives the backend n receive pages.
func (f *nbFront) post(n int) {
	f.t.Helper()
	mem, mfns, err := f.g.AllocPages(n)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := range n {
		ref, err := f.gnt.Grant(0, mfns[i], false)
		if err != nil {
			f.t.Fatal(err)
		}
		slot, err := f.rx.NextRequest()
		if err != nil {
			f.t.Fatal(err)
		}
		id := f.rxProd & uint32(f.rx.Size()-1)
		netif.RxRequest{ID: uint16(id), Gref: uint32(ref)}.Put(slot)
		f.rxPages[id] = mem[i*xen.PageSize : (i+1)*xen.PageSize]
		f.rxProd++
	}
	f.rx.Push()
	f.kick()
}

// rxSlot is one receive response and the page it came with.
type rxSlot struct {
	raw  []byte
	rsp  netif.RxResponse
	page []byte
}

// recv waits for n receive response slots.
func (f *nbFront) recv(n int) []rxSlot {
	f.t.Helper()
	var out []rxSlot
	deadline := time.Now().Add(5 * time.Second)
	for len(out) < n {
		b := make([]byte, netif.RxSlotSize)
		ok, err := f.rx.NextResponse(b)
		if err != nil {
			f.t.Fatal(err)
		}
		if !ok {
			if time.Now().After(deadline) {
				f.t.Fatalf("%d of %d rx responses; stats %+v", len(out), n, f.nb.Stats())
			}
			time.Sleep(time.Millisecond)
			continue
		}
		id := f.rxCons & uint32(f.rx.Size()-1)
		f.rxCons++
		out = append(out, rxSlot{raw: b, rsp: netif.ParseRxResponse(b), page: f.rxPages[id]})
	}
	return out
}

// send transmits one frame from a fresh read-only grant.
func (f *nbFront) send(frame []byte, id uint16, mod func(*netif.TxRequest)) {
	f.t.Helper()
	mem, mfns, err := f.g.AllocPages(1)
	if err != nil {
		f.t.Fatal(err)
	}
	ref, err := f.gnt.Grant(0, mfns[0], true)
	if err != nil {
		f.t.Fatal(err)
	}
	slot, err := f.tx.NextRequest()
	if err != nil {
		f.t.Fatal(err)
	}
	r := netif.TxRequest{Gref: uint32(ref), ID: id, Size: uint16(len(frame))}
	if mod != nil {
		mod(&r)
	}
	if int(r.Offset) < len(mem) {
		copy(mem[r.Offset:], frame)
	}
	r.Put(slot)
	f.tx.Push()
	f.kick()
}

func (f *nbFront) txResponses(n int) []netif.TxResponse {
	f.t.Helper()
	var out []netif.TxResponse
	deadline := time.Now().Add(5 * time.Second)
	for len(out) < n {
		b := make([]byte, netif.TxSlotSize)
		ok, err := f.tx.NextResponse(b)
		if err != nil {
			f.t.Fatal(err)
		}
		if !ok {
			if time.Now().After(deadline) {
				f.t.Fatalf("%d of %d tx responses", len(out), n)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		out = append(out, netif.ParseTxResponse(b))
	}
	return out
}

func nbFrame(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

func TestNetbackNodes(t *testing.T) {
	f := newNetback(t, NetbackConfig{MAC: [6]byte{0, 0x16, 0x3e, 1, 2, 3}, MTU: 1400}, nil).connected()
	be := f.nb.Backend()
	if v, _ := be.ReadFrontend("mac"); v != "00:16:3e:01:02:03" {
		t.Fatalf("mac %q", v)
	}
	if v, _ := be.ReadFrontend("mtu"); v != "1400" {
		t.Fatalf("mtu %q", v)
	}
	for k, want := range NetbackFeatures {
		if v, err := be.x.Read(be.Dir() + "/" + k); err != nil || v != want {
			t.Errorf("%s = %q %v", k, v, err)
		}
	}
	if k := f.nb.FrontendKeys(); k["request-rx-copy"] != "1" || k["feature-rx-notify"] != "1" {
		t.Fatalf("keys %v", k)
	}
	if !f.nb.Connected() || f.nb.Stats().Connects != 1 || len(f.nb.ProtocolErrors()) != 0 {
		t.Fatalf("stats %+v, errors %v", f.nb.Stats(), f.nb.ProtocolErrors())
	}
}

func TestNetbackTransmit(t *testing.T) {
	f := newNetback(t, NetbackConfig{}, nil).connected()
	f.send(nbFrame(60, 1), 3, nil)
	f.send(nbFrame(1514, 2), 4, func(r *netif.TxRequest) { r.Offset = 100 })
	rs := f.txResponses(2)
	if rs[0] != (netif.TxResponse{ID: 3}) || rs[1] != (netif.TxResponse{ID: 4}) {
		t.Fatalf("responses %+v", rs)
	}
	f.mu.Lock()
	sent := f.sent
	f.mu.Unlock()
	if len(sent) != 2 || !bytes.Equal(sent[0], nbFrame(60, 1)) || !bytes.Equal(sent[1], nbFrame(1514, 2)) {
		t.Fatalf("sent %d frames", len(sent))
	}
	if st := f.nb.Stats(); st.TxFrames != 2 || st.TxSlots != 2 || len(f.nb.ProtocolErrors()) != 0 {
		t.Fatalf("stats %+v, errors %v", st, f.nb.ProtocolErrors())
	}

	// A bad grant and a runt are refused with RspError and recorded.
	f.send(nbFrame(60, 3), 5, func(r *netif.TxRequest) { r.Gref = 4000 })
	f.send(nbFrame(10, 3), 6, nil)
	f.send(nbFrame(100, 3), 7, func(r *netif.TxRequest) { r.Offset = 4090 })
	rs = f.txResponses(3)
	for _, r := range rs {
		if r.Status != netif.RspError {
			t.Fatalf("responses %+v", rs)
		}
	}
	if n := len(f.nb.ProtocolErrors()); n != 3 {
		t.Fatalf("%d violations", n)
	}
}

func TestNetbackReceive(t *testing.T) {
	f := newNetback(t, NetbackConfig{QueueLen: 4}, nil).connected()
	// Before buffers are posted, frames wait (up to QueueLen).
	for i := range 6 {
		f.nb.Inject(nbFrame(100+i, byte(i)))
	}
	if st := f.nb.Stats(); st.RxWaiting != 4 || st.RxDropped != 2 {
		t.Fatalf("stats %+v", st)
	}
	f.post(8)
	got := f.recv(4)
	for i, s := range got {
		if s.rsp.Status != int16(100+i) || s.rsp.Flags != 0 || s.rsp.Offset != 0 || uint32(s.rsp.ID) != uint32(i) ||
			!bytes.Equal(s.page[:100+i], nbFrame(100+i, byte(i))) {
			t.Fatalf("slot %d: %+v", i, s.rsp)
		}
	}
	if st := f.nb.Stats(); st.RxFrames != 4 || st.RxWaiting != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNetbackReceiveShapes(t *testing.T) {
	frame := nbFrame(1000, 9)
	f := newNetback(t, NetbackConfig{SplitRx: 400, RxExtra: true, RxOffset: 64}, nil).connected()
	f.post(8)
	f.nb.Inject(frame)
	got := f.recv(4) // 400, extra, 400, 200
	if got[0].rsp.Flags != netif.RxMoreData|netif.RxExtraInfo || got[0].rsp.Status != 400 || got[0].rsp.Offset != 64 {
		t.Fatalf("first %+v", got[0].rsp)
	}
	if x := netif.ParseExtra(got[1].raw); x.Type != netif.ExtraTypeGSO || x.Flags != 0 {
		t.Fatalf("extra %+v", x)
	}
	if got[2].rsp.Flags != netif.RxMoreData || got[3].rsp.Flags != 0 || got[3].rsp.Status != 200 {
		t.Fatalf("rest %+v %+v", got[2].rsp, got[3].rsp)
	}
	var re []byte
	for _, i := range []int{0, 2, 3} {
		s := got[i]
		re = append(re, s.page[s.rsp.Offset:int(s.rsp.Offset)+int(s.rsp.Status)]...)
	}
	if !bytes.Equal(re, frame) {
		t.Fatal("reassembled frame differs")
	}
}

func TestNetbackCsumBlank(t *testing.T) {
	// An IPv4 UDP frame: the checksum field is left with the
	// pseudo-header sum.
	frame := make([]byte, 14+20+8+4)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	ip := frame[14:]
	ip[0], ip[9] = 0x45, 17
	binary.BigEndian.PutUint16(ip[2:], 32)
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[20+4:], 12)
	binary.BigEndian.PutUint16(ip[20+6:], 0xbeef)
	f := newNetback(t, NetbackConfig{CsumBlank: true}, nil).connected()
	f.post(2)
	f.nb.Inject(frame)
	s := f.recv(1)[0]
	if s.rsp.Flags != netif.RxCsumBlank|netif.RxDataValidated {
		t.Fatalf("flags %#x", s.rsp.Flags)
	}
	// 0x0a00+0x0001+0x0a00+0x0002 + 17 (UDP) + 12 (its length) = 0x1420
	if c := binary.BigEndian.Uint16(s.page[14+20+6:]); c != 0x1420 {
		t.Fatalf("partial checksum %#x", c)
	}
	if binary.BigEndian.Uint16(frame[14+20+6:]) != 0xbeef {
		t.Fatal("the caller's frame was modified")
	}
}

func TestNetbackRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys map[string]string
	}{
		{"no request-rx-copy", map[string]string{"request-rx-copy": ""}},
		{"bad ring ref", map[string]string{"tx-ring-ref": "x"}},
		{"ungranted ring", map[string]string{"rx-ring-ref": "3000"}},
		{"multi-queue", map[string]string{"multi-queue-num-queues": "2"}},
		{"split channels", map[string]string{"event-channel-tx": "5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newNetback(t, NetbackConfig{}, tc.keys)
			waitState(t, f.nb.Backend(), xen.StateClosing)
			if len(f.nb.ProtocolErrors()) == 0 || f.nb.Connected() {
				t.Fatal("not refused")
			}
		})
	}
}

func TestNetbackDisconnectUnmaps(t *testing.T) {
	f := newNetback(t, NetbackConfig{}, nil).connected()
	if f.h.Mappings() != 2 {
		t.Fatalf("%d mappings", f.h.Mappings())
	}
	if err := f.nb.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if f.h.Mappings() != 0 || f.nb.Connected() || f.nb.Stats().Disconnects != 1 {
		t.Fatalf("%d mappings, stats %+v", f.h.Mappings(), f.nb.Stats())
	}
	if err := f.nb.Inject(nbFrame(60, 0)); err != ErrNetbackNotConnected {
		t.Fatalf("Inject: %v", err)
	}
}

func TestNetbackInjectResponses(t *testing.T) {
	f := newNetback(t, NetbackConfig{}, nil).connected()
	f.post(1)
	if err := f.nb.InjectRxResponses(netif.RxResponse{ID: 9, Status: 5}, netif.RxResponse{ID: 10, Status: 5}); err != nil {
		t.Fatal(err)
	}
	// Two responses for one request: the frontend's ring sees it.
	if _, err := f.rx.Unconsumed(); err == nil {
		t.Fatal("overflow not visible")
	}
	if err := f.nb.InjectTxResponse(netif.TxResponse{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tx.Unconsumed(); err == nil {
		t.Fatal("tx overflow not visible")
	}
}
