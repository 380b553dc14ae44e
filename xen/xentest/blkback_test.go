package xentest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
	"github.com/gopvgrub/gopvgrub/xen/sring"
)

// The tests drive the simulated blkback with a minimal frontend written
// here from sring, blkif and gnttab alone, so that the backend is
// checked independently of package blkfront.

const blkGuest xen.DomID = 5

type rawFront struct {
	t    *testing.T
	h    *Hypervisor
	x    *Xenstored
	g    *Domain
	gnt  *gnttab.Table
	bb   *Blkback
	ring *sring.Front
	mem  []byte
	refs []gnttab.Ref
	port xen.Channel
}

func blkImage(n int) []byte {
	b := make([]byte, n)
	for i := 0; i+4 <= n; i += 4 {
		binary.LittleEndian.PutUint32(b[i:], uint32(i)^0x5a5a0000)
	}
	return b
}

func newBlkback(t *testing.T, cfg BlkbackConfig) (*Hypervisor, *Xenstored, *Domain, *Blkback) {
	t.Helper()
	h := NewHypervisor()
	h.NewDomain(0, DomainConfig{})
	g := h.NewDomain(blkGuest, DomainConfig{GrantFrames: 8})
	x := NewXenstored()
	cfg.Front = blkGuest
	if cfg.Image == nil {
		cfg.Image = blkImage(1 << 20)
	}
	bb, err := NewBlkback(h, x, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bb.Close)
	return h, x, g, bb
}

// connectRaw publishes a ring of 2^order pages and waits for the backend
// to connect.
func connectRaw(t *testing.T, h *Hypervisor, x *Xenstored, g *Domain, bb *Blkback, order int, extra map[string]string) *rawFront {
	t.Helper()
	gnt, err := gnttab.New(g)
	if err != nil {
		t.Fatal(err)
	}
	f := &rawFront{t: t, h: h, x: x, g: g, gnt: gnt, bb: bb}
	mem, mfns, err := g.AllocPages(1 << order)
	if err != nil {
		t.Fatal(err)
	}
	f.mem = mem
	if f.ring, err = sring.NewFront(mem, blkif.SlotSize); err != nil {
		t.Fatal(err)
	}
	for _, m := range mfns {
		r, err := gnt.Grant(0, m, false)
		if err != nil {
			t.Fatal(err)
		}
		f.refs = append(f.refs, r)
	}
	if f.port, err = g.AllocUnbound(0); err != nil {
		t.Fatal(err)
	}
	dir := bb.Backend().FrontendDir()
	keys := map[string]string{
		"event-channel": strconv.Itoa(int(f.port.Port())),
		"protocol":      blkif.Protocol,
	}
	if order == 0 {
		keys["ring-ref"] = strconv.Itoa(int(f.refs[0]))
	} else {
		keys["ring-page-order"] = strconv.Itoa(order)
		for i, r := range f.refs {
			keys["ring-ref"+strconv.Itoa(i)] = strconv.Itoa(int(r))
		}
	}
	for k, v := range extra {
		keys[k] = v
	}
	for k, v := range keys {
		x.Write(dir+"/"+k, v)
	}
	x.Write(dir+"/state", strconv.Itoa(int(xen.StateInitialised)))
	waitState(t, bb.Backend(), xen.StateConnected)
	return f
}

// data returns a granted page for the backend to write into.
func (f *rawFront) data(readonly bool) ([]byte, uint32) {
	f.t.Helper()
	mem, mfns, err := f.g.AllocPages(1)
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := f.gnt.Grant(0, mfns[0], readonly)
	if err != nil {
		f.t.Fatal(err)
	}
	return mem, uint32(r)
}

// send pushes encoded requests and notifies.
func (f *rawFront) send(put ...func([]byte)) {
	f.t.Helper()
	for _, p := range put {
		s, err := f.ring.NextRequest()
		if err != nil {
			f.t.Fatal(err)
		}
		p(s)
	}
	if f.ring.Push() {
		f.port.Notify()
	}
}

// recv waits for n responses.
func (f *rawFront) recv(n int) []blkif.Response {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []blkif.Response
	slot := make([]byte, blkif.SlotSize)
	for len(out) < n {
		ok, err := f.ring.NextResponse(slot)
		if err != nil {
			f.t.Fatal(err)
		}
		if ok {
			r, _ := blkif.ParseResponse(slot)
			out = append(out, r)
			continue
		}
		if more, _ := f.ring.FinalCheck(); more {
			continue
		}
		if err := f.port.Wait(ctx); err != nil {
			f.t.Fatalf("waiting for %d responses, got %d: %v", n, len(out), err)
		}
	}
	return out
}

func direct(id, sector uint64, segs ...blkif.Segment) func([]byte) {
	return func(b []byte) {
		r := blkif.Request{Op: blkif.OpRead, NrSegments: uint8(len(segs)), Handle: 51712, ID: id, Sector: sector}
		copy(r.Seg[:], segs)
		r.Put(b)
	}
}

func TestBlkbackNodes(t *testing.T) {
	h, x, g, bb := newBlkback(t, BlkbackConfig{MaxRingPageOrder: 2, MaxIndirectSegments: 64, Persistent: true,
		SectorSize: 4096, PhysicalSectorSize: 4096, ReadOnly: true, CDROM: true, Params: "/img"})
	be := bb.Backend()
	for k, want := range map[string]string{
		be.Dir() + "/mode":                   "r",
		be.Dir() + "/params":                 "/img",
		be.Dir() + "/max-ring-page-order":    "2",
		be.Dir() + "/state":                  "2",
		be.FrontendDir() + "/device-type":    "cdrom",
		be.FrontendDir() + "/virtual-device": "51712",
	} {
		if v, err := x.Read(k); v != want || err != nil {
			t.Errorf("%s = %q, %v; want %q", k, v, err, want)
		}
	}
	if x.Exists(be.Dir() + "/sectors") {
		t.Error("sectors published before connect")
	}
	connectRaw(t, h, x, g, bb, 2, nil)
	for k, want := range map[string]string{
		"sectors": "2048", "info": "5", "sector-size": "4096", "physical-sector-size": "4096",
		"feature-persistent": "1", "feature-max-indirect-segments": "64",
	} {
		if v, err := x.Read(be.Dir() + "/" + k); v != want || err != nil {
			t.Errorf("%s = %q, %v; want %q", k, v, err, want)
		}
	}
	if st := bb.Stats(); st.RingPages != 4 || st.PersistentOn {
		t.Errorf("stats %+v (the frontend did not ask for persistent grants)", st)
	}
}

func TestBlkbackConfigErrors(t *testing.T) {
	h := NewHypervisor()
	h.NewDomain(0, DomainConfig{})
	x := NewXenstored()
	for _, cfg := range []BlkbackConfig{
		{Image: make([]byte, 1000)},
		{Image: make([]byte, 4096), SectorSize: 1000},
		{Image: make([]byte, 4096), SectorSize: 256},
		{Image: make([]byte, 6144), SectorSize: 4096},
		{Image: make([]byte, 4096), MaxRingPageOrder: 5},
		{Image: make([]byte, 4096), Back: 9},
	} {
		if _, err := NewBlkback(h, x, cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestBlkbackServesReads(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprint("persistent=", persistent), func(t *testing.T) {
			img := blkImage(1 << 20)
			h, x, g, bb := newBlkback(t, BlkbackConfig{Image: img, MaxIndirectSegments: 600, Persistent: true, MaxRingPageOrder: 1})
			extra := map[string]string{}
			if persistent {
				extra["feature-persistent"] = "1"
			}
			f := connectRaw(t, h, x, g, bb, 1, extra)
			// Direct: two segments, the first partial (sectors 2..5).
			p1, r1 := f.data(false)
			p2, r2 := f.data(false)
			f.send(direct(7, 100, blkif.Segment{Gref: r1, FirstSect: 2, LastSect: 5}, blkif.Segment{Gref: r2, FirstSect: 0, LastSect: 7}))
			rsp := f.recv(1)
			if rsp[0] != (blkif.Response{ID: 7, Op: blkif.OpRead, Status: blkif.RspOkay}) {
				t.Fatalf("response %+v", rsp[0])
			}
			if !bytes.Equal(p1[1024:3072], img[100*512:104*512]) || !bytes.Equal(p1[:1024], make([]byte, 1024)) || !bytes.Equal(p2, img[104*512:112*512]) {
				t.Fatal("direct request: data misplaced")
			}
			// Indirect: 520 one-sector segments over two descriptor pages.
			ind1, ir1 := f.data(true)
			ind2, ir2 := f.data(true)
			var pages [][]byte
			for i := 0; i < 520; i++ {
				p, r := f.data(false)
				pages = append(pages, p)
				var desc []byte
				if i < 512 {
					desc = ind1[i*8:]
				} else {
					desc = ind2[(i-512)*8:]
				}
				blkif.Segment{Gref: r, FirstSect: uint8(i % 8), LastSect: uint8(i % 8)}.Put(desc)
			}
			f.send(func(b []byte) {
				(&blkif.IndirectRequest{IndirectOp: blkif.OpRead, NrSegments: 520, ID: 8, Sector: 1000, Handle: 51712, Grefs: [8]uint32{ir1, ir2}}).Put(b)
			})
			rsp = f.recv(1)
			if rsp[0] != (blkif.Response{ID: 8, Op: blkif.OpRead, Status: blkif.RspOkay}) {
				t.Fatalf("indirect response %+v (%v)", rsp[0], bb.ProtocolErrors())
			}
			for i, p := range pages {
				o := (i % 8) * 512
				if !bytes.Equal(p[o:o+512], img[(1000+i)*512:(1001+i)*512]) {
					t.Fatalf("indirect segment %d misplaced", i)
				}
			}
			st := bb.Stats()
			if st.Requests != 2 || st.Indirect != 1 || st.Segments != 522 || st.Bytes != 532*512 || st.Errors != 0 || st.PersistentOn != persistent {
				t.Errorf("stats %+v", st)
			}
			// Persistent grants stay mapped until the frontend closes.
			if persistent != f.gnt.InUse(gnttab.Ref(r1)) || persistent != (st.Persistent == 522) {
				t.Errorf("r1 in use %v, %d persistent", f.gnt.InUse(gnttab.Ref(r1)), st.Persistent)
			}
			if f.gnt.InUse(gnttab.Ref(ir1)) {
				t.Error("descriptor page still mapped")
			}
			x.Write(bb.Backend().FrontendDir()+"/state", strconv.Itoa(int(xen.StateClosing)))
			waitState(t, bb.Backend(), xen.StateClosing)
			if n := h.Mappings(); n != 0 {
				t.Errorf("%d mappings after the frontend closed", n)
			}
			if f.port.(*Port).Bound() {
				t.Error("event channel still bound")
			}
			if errs := bb.ProtocolErrors(); len(errs) != 0 {
				t.Errorf("protocol errors %v", errs)
			}
		})
	}
}

func TestBlkbackRejects(t *testing.T) {
	img := blkImage(64 << 10) // 128 sectors
	for _, tc := range []struct {
		name      string
		cfg       BlkbackConfig
		req       func(f *rawFront) func([]byte)
		status    int16
		violation bool
	}{
		{"last before first", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			_, r := f.data(false)
			return direct(1, 0, blkif.Segment{Gref: r, FirstSect: 5, LastSect: 4})
		}, blkif.RspError, true},
		{"sector beyond the page", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			_, r := f.data(false)
			return direct(1, 0, blkif.Segment{Gref: r, FirstSect: 0, LastSect: 8})
		}, blkif.RspError, true},
		{"no segments", BlkbackConfig{}, func(f *rawFront) func([]byte) { return direct(1, 0) }, blkif.RspError, true},
		{"12 direct segments", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return func(b []byte) {
				direct(1, 0)(b)
				b[1] = 12
			}
		}, blkif.RspError, true},
		{"beyond the disk", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			_, r := f.data(false)
			return direct(1, 127, blkif.Segment{Gref: r, LastSect: 1})
		}, blkif.RspError, true},
		{"sector number overflow", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			_, r := f.data(false)
			return direct(1, 1<<63, blkif.Segment{Gref: r, LastSect: 1})
		}, blkif.RspError, true},
		{"misaligned for 4k sectors", BlkbackConfig{SectorSize: 4096}, func(f *rawFront) func([]byte) {
			_, r := f.data(false)
			return direct(1, 8, blkif.Segment{Gref: r, FirstSect: 1, LastSect: 7})
		}, blkif.RspError, true},
		{"unaligned sector for 4k sectors", BlkbackConfig{SectorSize: 4096}, func(f *rawFront) func([]byte) {
			_, r := f.data(false)
			return direct(1, 4, blkif.Segment{Gref: r, FirstSect: 0, LastSect: 7})
		}, blkif.RspError, true},
		{"ungranted page", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return direct(1, 0, blkif.Segment{Gref: 1000, LastSect: 7})
		}, blkif.RspError, true},
		{"read into a read-only grant", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			_, r := f.data(true)
			return direct(1, 0, blkif.Segment{Gref: r, LastSect: 7})
		}, blkif.RspError, true},
		{"indirect not offered", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return func(b []byte) {
				(&blkif.IndirectRequest{IndirectOp: blkif.OpRead, NrSegments: 1, ID: 1, Handle: 51712}).Put(b)
			}
		}, blkif.RspError, true},
		{"too many indirect segments", BlkbackConfig{MaxIndirectSegments: 16}, func(f *rawFront) func([]byte) {
			return func(b []byte) {
				(&blkif.IndirectRequest{IndirectOp: blkif.OpRead, NrSegments: 17, ID: 1, Handle: 51712}).Put(b)
			}
		}, blkif.RspError, true},
		{"write to a read-only disk", BlkbackConfig{ReadOnly: true}, func(f *rawFront) func([]byte) {
			_, r := f.data(true)
			return func(b []byte) {
				direct(1, 0, blkif.Segment{Gref: r, LastSect: 7})(b)
				b[0] = blkif.OpWrite
			}
		}, blkif.RspError, false},
		{"flush", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return func(b []byte) { direct(1, 0)(b); b[0] = blkif.OpFlushDiskcache }
		}, blkif.RspEOPNOTSUPP, false},
		{"unknown operation", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return func(b []byte) { direct(1, 0)(b); b[0] = 42 }
		}, blkif.RspError, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Image = img
			h, x, g, bb := newBlkback(t, tc.cfg)
			f := connectRaw(t, h, x, g, bb, 0, nil)
			f.send(tc.req(f))
			rsp := f.recv(1)
			if rsp[0].ID != 1 || rsp[0].Status != tc.status {
				t.Errorf("response %+v, want status %d", rsp[0], tc.status)
			}
			if got := len(bb.ProtocolErrors()) > 0; got != tc.violation {
				t.Errorf("violations %v", bb.ProtocolErrors())
			}
			if st := bb.Stats(); st.Errors != 1 {
				t.Errorf("errors counted %d", st.Errors)
			}
			// The backend still serves good requests.
			p, r := f.data(false)
			f.send(direct(2, 8, blkif.Segment{Gref: r, LastSect: 7}))
			if rsp := f.recv(1); rsp[0].Status != blkif.RspOkay || !bytes.Equal(p, img[4096:8192]) {
				t.Errorf("good request after a bad one: %+v", rsp[0])
			}
		})
	}
}

func TestBlkbackRingOverflow(t *testing.T) {
	h, x, g, bb := newBlkback(t, BlkbackConfig{})
	f := connectRaw(t, h, x, g, bb, 0, nil)
	f.ring.Shared().SetReqProd(33) // more than the 32 slots
	f.port.Notify()
	deadline := time.After(10 * time.Second)
	for len(bb.ProtocolErrors()) == 0 {
		select {
		case <-deadline:
			t.Fatal("overflow not noticed")
		case <-time.After(time.Millisecond):
		}
	}
}

func TestBlkbackRefusesRingOrder(t *testing.T) {
	h, x, g, bb := newBlkback(t, BlkbackConfig{MaxRingPageOrder: 1})
	_, mfns, _ := g.AllocPages(4)
	gnt, _ := gnttab.New(g)
	dir := bb.Backend().FrontendDir()
	x.Write(dir+"/ring-page-order", "2")
	for i, m := range mfns {
		r, _ := gnt.Grant(0, m, false)
		x.Write(dir+"/ring-ref"+strconv.Itoa(i), strconv.Itoa(int(r)))
	}
	p, _ := g.AllocUnbound(0)
	x.Write(dir+"/event-channel", strconv.Itoa(int(p.Port())))
	x.Write(dir+"/state", "3")
	waitState(t, bb.Backend(), xen.StateClosing)
	if len(bb.ProtocolErrors()) != 1 || h.Mappings() != 0 {
		t.Errorf("errors %v, mappings %d", bb.ProtocolErrors(), h.Mappings())
	}
}

func TestBlkbackFaultHooks(t *testing.T) {
	var seen []uint64
	h, x, g, bb := newBlkback(t, BlkbackConfig{
		Reorder: true,
		Status: func(r BlkRequest) int16 {
			if r.ID == 3 {
				return blkif.RspEOPNOTSUPP
			}
			return 0
		},
		Drop: func(r BlkRequest) bool { return r.ID == 4 },
		Mangle: func(r BlkRequest, rsp *blkif.Response) {
			seen = append(seen, r.ID)
			if r.ID == 2 {
				rsp.ID = 99
			}
		},
	})
	f := connectRaw(t, h, x, g, bb, 0, nil)
	bb.Hold()
	var reqs []func([]byte)
	for id := uint64(1); id <= 5; id++ {
		_, r := f.data(false)
		reqs = append(reqs, direct(id, id*8, blkif.Segment{Gref: r, LastSect: 7}))
	}
	f.send(reqs...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bb.WaitHeld(ctx, 4); err != nil { // 4 is dropped, not held
		t.Fatal(err)
	}
	if bb.Held() != 4 {
		t.Fatalf("held %d", bb.Held())
	}
	if n, _ := f.ring.Unconsumed(); n != 0 {
		t.Fatalf("%d responses while held", n)
	}
	bb.Release()
	rsp := f.recv(4)
	want := []blkif.Response{
		{ID: 5, Op: blkif.OpRead},
		{ID: 3, Op: blkif.OpRead, Status: blkif.RspEOPNOTSUPP},
		{ID: 99, Op: blkif.OpRead},
		{ID: 1, Op: blkif.OpRead},
	}
	for i := range want {
		if rsp[i] != want[i] {
			t.Errorf("response %d = %+v, want %+v", i, rsp[i], want[i])
		}
	}
	if fmt.Sprint(seen) != "[5 3 2 1]" {
		t.Errorf("Mangle saw %v", seen)
	}
	if st := bb.Stats(); st.MaxInFlight != 5 || st.Requests != 5 {
		t.Errorf("stats %+v", st)
	}
	// Two responses nobody asked for: one more than the request still
	// outstanding (the dropped one).
	for i := 0; i < 2; i++ {
		if err := bb.InjectResponse(blkif.Response{ID: 77, Op: blkif.OpRead, Status: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.ring.Unconsumed(); err == nil {
		t.Error("injected response not beyond the requests")
	}
	// Disconnect: unmapped, unbound, Closing.
	if err := bb.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if bb.Backend().State() != xen.StateClosing || h.Mappings() != 0 || f.port.(*Port).Bound() {
		t.Errorf("after Disconnect: state %v mappings %d bound %v", bb.Backend().State(), h.Mappings(), f.port.(*Port).Bound())
	}
	if err := bb.InjectResponse(blkif.Response{}); err == nil {
		t.Error("InjectResponse while disconnected")
	}
}
