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

// op rewrites the operation of an encoded direct request.
func op(o uint8, put func([]byte)) func([]byte) {
	return func(b []byte) {
		put(b)
		b[0] = o
	}
}

func TestBlkbackNodes(t *testing.T) {
	h, x, g, bb := newBlkback(t, BlkbackConfig{MaxRingPageOrder: 2, MaxIndirectSegments: 64, Persistent: true,
		SectorSize: 4096, PhysicalSectorSize: 4096, ReadOnly: true, CDROM: true, Params: "/img", FlushCache: true, Barrier: true})
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
		"feature-flush-cache": "1", "feature-barrier": "1",
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
		{"write beyond the disk", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			_, r := f.data(true)
			return op(blkif.OpWrite, direct(1, 127, blkif.Segment{Gref: r, LastSect: 1}))
		}, blkif.RspError, true},
		{"write from an ungranted page", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return op(blkif.OpWrite, direct(1, 0, blkif.Segment{Gref: 1000, LastSect: 7}))
		}, blkif.RspError, true},
		{"write without segments", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return op(blkif.OpWrite, direct(1, 0))
		}, blkif.RspError, true},
		{"persistent write from a read-only grant", BlkbackConfig{Persistent: true}, func(f *rawFront) func([]byte) {
			// Linux maps persistent grants writable, whatever the operation.
			_, r := f.data(true)
			return op(blkif.OpWrite, direct(1, 0, blkif.Segment{Gref: r, LastSect: 7}))
		}, blkif.RspError, true},
		{"flush not offered", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return op(blkif.OpFlushDiskcache, direct(1, 0))
		}, blkif.RspEOPNOTSUPP, false},
		{"barrier not offered", BlkbackConfig{FlushCache: true}, func(f *rawFront) func([]byte) {
			return op(blkif.OpWriteBarrier, direct(1, 0))
		}, blkif.RspEOPNOTSUPP, false},
		{"flush of a read-only disk", BlkbackConfig{FlushCache: true, ReadOnly: true}, func(f *rawFront) func([]byte) {
			return op(blkif.OpFlushDiskcache, direct(1, 0))
		}, blkif.RspError, false},
		{"indirect flush", BlkbackConfig{FlushCache: true, MaxIndirectSegments: 16}, func(f *rawFront) func([]byte) {
			return func(b []byte) {
				(&blkif.IndirectRequest{IndirectOp: blkif.OpFlushDiskcache, NrSegments: 1, ID: 1, Handle: 51712}).Put(b)
			}
		}, blkif.RspError, true},
		{"discard", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return op(blkif.OpDiscard, direct(1, 0))
		}, blkif.RspEOPNOTSUPP, false},
		{"unknown operation", BlkbackConfig{}, func(f *rawFront) func([]byte) {
			return func(b []byte) { direct(1, 0)(b); b[0] = 42 }
		}, blkif.RspError, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Image = img
			h, x, g, bb := newBlkback(t, tc.cfg)
			var extra map[string]string
			if tc.cfg.Persistent {
				extra = map[string]string{"feature-persistent": "1"}
			}
			f := connectRaw(t, h, x, g, bb, 0, extra)
			f.send(tc.req(f))
			rsp := f.recv(1)
			if rsp[0].ID != 1 || rsp[0].Status != tc.status {
				t.Errorf("response %+v, want status %d", rsp[0], tc.status)
			}
			if got := len(bb.ProtocolErrors()) > 0; got != tc.violation {
				t.Errorf("violations %v", bb.ProtocolErrors())
			}
			if st := bb.Stats(); st.Errors != 1 || st.Writes != 0 || st.Flushes != 0 {
				t.Errorf("stats %+v", st)
			}
			if !bytes.Equal(bb.Image(), img) || !bytes.Equal(bb.Durable(), img) {
				t.Error("a refused request changed the image")
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

func TestBlkbackServesWrites(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprint("persistent=", persistent), func(t *testing.T) {
			img := blkImage(1 << 20)
			orig := bytes.Clone(img)
			h, x, g, bb := newBlkback(t, BlkbackConfig{Image: img, MaxIndirectSegments: 600, Persistent: true})
			extra := map[string]string{}
			if persistent {
				extra["feature-persistent"] = "1"
			}
			f := connectRaw(t, h, x, g, bb, 0, extra)
			want := bytes.Clone(img)
			// Without persistent grants the data pages can be read-only:
			// the backend only reads them.
			ro := !persistent
			// Direct: sectors 2..5 of one page, then a whole page.
			p1, r1 := f.data(ro)
			p2, r2 := f.data(ro)
			for i := range p1 {
				p1[i], p2[i] = byte(i*7+1), byte(i*13+2)
			}
			f.send(op(blkif.OpWrite, direct(7, 100, blkif.Segment{Gref: r1, FirstSect: 2, LastSect: 5}, blkif.Segment{Gref: r2, LastSect: 7})))
			if rsp := f.recv(1); rsp[0] != (blkif.Response{ID: 7, Op: blkif.OpWrite, Status: blkif.RspOkay}) {
				t.Fatalf("response %+v (%v)", rsp[0], bb.ProtocolErrors())
			}
			copy(want[100*512:], p1[1024:3072])
			copy(want[104*512:], p2)
			if !bytes.Equal(bb.Image(), want) {
				t.Fatal("direct write: image differs")
			}
			// Indirect: 520 one-sector segments over two descriptor pages.
			ind1, ir1 := f.data(true)
			ind2, ir2 := f.data(true)
			for i := 0; i < 520; i++ {
				p, r := f.data(ro)
				o := (i % 8) * 512
				for j := 0; j < 512; j++ {
					p[o+j] = byte(i + j)
				}
				copy(want[(1000+i)*512:], p[o:o+512])
				desc := ind1
				if i >= 512 {
					desc = ind2
				}
				blkif.Segment{Gref: r, FirstSect: uint8(i % 8), LastSect: uint8(i % 8)}.Put(desc[(i%512)*8:])
			}
			f.send(func(b []byte) {
				(&blkif.IndirectRequest{IndirectOp: blkif.OpWrite, NrSegments: 520, ID: 8, Sector: 1000, Handle: 51712, Grefs: [8]uint32{ir1, ir2}}).Put(b)
			})
			if rsp := f.recv(1); rsp[0] != (blkif.Response{ID: 8, Op: blkif.OpWrite, Status: blkif.RspOkay}) {
				t.Fatalf("indirect response %+v (%v)", rsp[0], bb.ProtocolErrors())
			}
			if !bytes.Equal(bb.Image(), want) {
				t.Fatal("indirect write: image differs")
			}
			// Reads see the writes.
			p3, r3 := f.data(false)
			f.send(direct(9, 1000, blkif.Segment{Gref: r3, LastSect: 7}))
			if rsp := f.recv(1); rsp[0].Status != blkif.RspOkay || !bytes.Equal(p3, want[1000*512:1008*512]) {
				t.Fatalf("read back: %+v", rsp[0])
			}
			st := bb.Stats()
			if st.Requests != 3 || st.Writes != 2 || st.Written != 532*512 || st.Unflushed != 2 || st.Indirect != 1 || st.Errors != 0 {
				t.Errorf("stats %+v", st)
			}
			if !bytes.Equal(img, orig) {
				t.Error("the caller's Image was modified")
			}
			if !bytes.Equal(bb.Durable(), orig) {
				t.Error("writes durable without a flush")
			}
			if errs := bb.ProtocolErrors(); len(errs) != 0 {
				t.Errorf("protocol errors %v", errs)
			}
		})
	}
}

// TestBlkbackFlush: flushes and barriers, with or without data, make
// the writes before them durable.
func TestBlkbackFlush(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   uint8
		data bool
	}{
		{"flush", blkif.OpFlushDiskcache, false},
		{"flush with data", blkif.OpFlushDiskcache, true},
		{"barrier", blkif.OpWriteBarrier, false},
		{"barrier with data", blkif.OpWriteBarrier, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := blkImage(64 << 10)
			h, x, g, bb := newBlkback(t, BlkbackConfig{Image: img, FlushCache: true, Barrier: true})
			f := connectRaw(t, h, x, g, bb, 0, nil)
			p, r := f.data(true)
			for i := range p {
				p[i] = 0xaa
			}
			f.send(op(blkif.OpWrite, direct(1, 8, blkif.Segment{Gref: r, LastSect: 7})))
			f.recv(1)
			want := bytes.Clone(img)
			copy(want[4096:], p)
			var segs []blkif.Segment
			if tc.data {
				q, rq := f.data(true)
				for i := range q {
					q[i] = 0x55
				}
				segs = append(segs, blkif.Segment{Gref: rq, LastSect: 7})
				copy(want[8192:], q)
			}
			f.send(op(tc.op, direct(2, 16, segs...)))
			if rsp := f.recv(1); rsp[0] != (blkif.Response{ID: 2, Op: tc.op}) {
				t.Fatalf("response %+v (%v)", rsp[0], bb.ProtocolErrors())
			}
			if !bytes.Equal(bb.Image(), want) || !bytes.Equal(bb.Durable(), want) {
				t.Fatal("not durable after the flush")
			}
			if st := bb.Stats(); st.Flushes != 1 || st.Unflushed != 0 {
				t.Errorf("stats %+v", st)
			}
			// A later write is volatile again.
			f.send(op(blkif.OpWrite, direct(3, 0, blkif.Segment{Gref: r, LastSect: 0})))
			f.recv(1)
			if bytes.Equal(bb.Durable(), bb.Image()) || bb.Stats().Unflushed != 1 {
				t.Error("write after the flush already durable")
			}
			if errs := bb.ProtocolErrors(); len(errs) != 0 {
				t.Errorf("protocol errors %v", errs)
			}
		})
	}
}

// TestBlkbackSetReadOnly: a disk turned read-only underneath refuses
// writes without a protocol violation, and accepts them again after.
func TestBlkbackSetReadOnly(t *testing.T) {
	img := blkImage(64 << 10)
	h, x, g, bb := newBlkback(t, BlkbackConfig{Image: img})
	f := connectRaw(t, h, x, g, bb, 0, nil)
	p, r := f.data(true)
	p[0] = 0xff
	bb.SetReadOnly(true)
	f.send(op(blkif.OpWrite, direct(1, 0, blkif.Segment{Gref: r, LastSect: 0})))
	if rsp := f.recv(1); rsp[0].Status != blkif.RspError || !bytes.Equal(bb.Image(), img) {
		t.Fatalf("write to a read-only disk: %+v", rsp[0])
	}
	if v, _ := x.Read(bb.Backend().Dir() + "/mode"); v != "w" {
		t.Errorf("mode %q changed", v)
	}
	bb.SetReadOnly(false)
	f.send(op(blkif.OpWrite, direct(2, 0, blkif.Segment{Gref: r, LastSect: 0})))
	if rsp := f.recv(1); rsp[0].Status != blkif.RspOkay || bb.Image()[0] != 0xff {
		t.Fatalf("write after SetReadOnly(false): %+v", rsp[0])
	}
	if st := bb.Stats(); st.Errors != 1 || st.Writes != 1 || len(bb.ProtocolErrors()) != 0 {
		t.Errorf("stats %+v, violations %v", st, bb.ProtocolErrors())
	}
}

// TestBlkbackWriteFaults: the fault hooks apply to writes: a write
// answered with an injected status or dropped never reaches the image;
// held writes reach it on Release, in reverse with Reorder.
func TestBlkbackWriteFaults(t *testing.T) {
	img := blkImage(64 << 10)
	h, x, g, bb := newBlkback(t, BlkbackConfig{
		Image:   img,
		Reorder: true,
		Status: func(r BlkRequest) int16 {
			if r.ID == 2 {
				return blkif.RspError
			}
			return 0
		},
		Drop: func(r BlkRequest) bool { return r.ID == 3 },
		Mangle: func(r BlkRequest, rsp *blkif.Response) {
			if r.ID == 4 {
				rsp.Op = blkif.OpRead
			}
		},
	})
	f := connectRaw(t, h, x, g, bb, 0, nil)
	bb.Hold()
	want := bytes.Clone(img)
	var reqs []func([]byte)
	for id := uint64(1); id <= 5; id++ {
		p, r := f.data(true)
		for i := range p {
			p[i] = byte(id)
		}
		// 1 and 5 write the same sector: Reorder makes 1 win.
		sector := id * 8
		if id == 5 {
			sector = 8
		}
		if id == 1 || id == 4 {
			copy(want[sector*512:], p)
		}
		reqs = append(reqs, op(blkif.OpWrite, direct(id, sector, blkif.Segment{Gref: r, LastSect: 7})))
	}
	f.send(reqs...)
	if err := bb.WaitHeld(ctxFor(t, 10*time.Second), 4); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bb.Image(), img) {
		t.Fatal("held writes reached the image")
	}
	bb.Release()
	rsp := f.recv(4)
	wantRsp := []blkif.Response{
		{ID: 5, Op: blkif.OpWrite},
		{ID: 4, Op: blkif.OpRead}, // mangled
		{ID: 2, Op: blkif.OpWrite, Status: blkif.RspError},
		{ID: 1, Op: blkif.OpWrite},
	}
	for i := range wantRsp {
		if rsp[i] != wantRsp[i] {
			t.Errorf("response %d = %+v, want %+v", i, rsp[i], wantRsp[i])
		}
	}
	if !bytes.Equal(bb.Image(), want) {
		t.Error("image differs: a refused or dropped write was applied, or the order was not kept")
	}
	if st := bb.Stats(); st.Writes != 3 || st.Errors != 1 {
		t.Errorf("stats %+v", st)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
