package blkfront_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/blkfront"
	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
	"github.com/gopvgrub/gopvgrub/xen/xenbus"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

const guest xen.DomID = 3

// env is a simulated machine with the guest's xenstore client and grant
// table, as the unikernel has them.
type env struct {
	sys   *xentest.System
	store *xenstore.Client
	gnt   *gnttab.Table
	// baseline resources, to check Close gives everything back
	pages, ports int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	sys, err := xentest.NewSystem(xentest.SystemConfig{GuestID: guest, Guest: xentest.DomainConfig{GrantFrames: 16}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := xenstore.New(sys.StorePage, sys.StoreChan)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gnttab.New(sys.Guest)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("xenstore Close: %v", err)
		}
		sys.Close()
	})
	return &env{sys: sys, store: c, gnt: g, pages: sys.Guest.Pages(), ports: sys.Guest.OpenPorts()}
}

func (e *env) config(o blkfront.Options) blkfront.Config {
	return blkfront.Config{Store: e.store, Platform: e.sys.Guest, Grants: e.gnt, Options: o}
}

// disk attaches a simulated disk to the guest.
func (e *env) disk(t testing.TB, cfg xentest.BlkbackConfig) *xentest.Blkback {
	t.Helper()
	cfg.Front = guest
	if cfg.Image == nil {
		cfg.Image = image(1<<20, 1)
	}
	bb, err := xentest.NewBlkback(e.sys.Hyp, e.sys.Store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bb.Close)
	return bb
}

func (e *env) device(bb *xentest.Blkback) xenbus.Device {
	id := bb.Backend().Config().DevID
	return xenbus.Device{Type: "vbd", ID: id, Dir: fmt.Sprintf("device/vbd/%d", id)}
}

func (e *env) open(t testing.TB, bb *xentest.Blkback, o blkfront.Options) *blkfront.Device {
	t.Helper()
	d, err := blkfront.Open(ctxFor(t, 20*time.Second), e.config(o), e.device(bb))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// closeAndCheck closes d and checks that it gave everything back: no
// grant, page, port or mapping left, backend in InitWait for the next
// frontend, our keys gone and our state Initialising.
func (e *env) closeAndCheck(t testing.TB, d *blkfront.Device, bb *xentest.Blkback) {
	t.Helper()
	if err := d.Close(ctxFor(t, 20*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	e.checkIdle(t, bb)
}

func (e *env) checkIdle(t testing.TB, bb *xentest.Blkback) {
	t.Helper()
	if n := e.gnt.Active(); n != 0 {
		t.Errorf("%d grants active after Close: %v", n, e.gnt.Leaks())
	}
	if n := e.sys.Guest.Pages(); n != e.pages {
		t.Errorf("%d pages allocated after Close, %d before Open", n, e.pages)
	}
	if n := e.sys.Guest.OpenPorts(); n != e.ports {
		t.Errorf("%d ports open after Close, %d before", n, e.ports)
	}
	if n := e.sys.Hyp.Mappings(); n != 0 {
		t.Errorf("%d grant mappings remain", n)
	}
	if s := bb.Backend().State(); s != xen.StateInitWait {
		t.Errorf("backend state %v after Close, want InitWait", s)
	}
	if s := bb.Backend().FrontendState(); s != xen.StateInitialising {
		t.Errorf("frontend state %v after Close", s)
	}
	for _, k := range []string{"ring-ref", "ring-ref0", "ring-page-order", "event-channel", "protocol", "feature-persistent"} {
		if v, err := bb.Backend().ReadFrontend(k); err == nil {
			t.Errorf("frontend key %s = %q left behind", k, v)
		}
	}
	if errs := bb.ProtocolErrors(); len(errs) != 0 {
		t.Errorf("backend saw protocol errors: %v", errs)
	}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// image returns n bytes in which every 8-byte word holds its own offset
// mixed with seed: any misplaced byte shows.
func image(n int, seed uint64) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i)*0x9e3779b97f4a7c15^seed)
	}
	return b
}

// parallel runs f(0) … f(n-1) in goroutines and reports their errors.
func parallel(t *testing.T, n int, f func(g int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[g] = f(g)
		}()
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", g, err)
		}
	}
}

// readAll reads the whole device in pieces of random (unaligned)
// offsets and lengths and compares with want.
func readAll(t testing.TB, d *blkfront.Device, want []byte, rng *rand.Rand) {
	t.Helper()
	got := make([]byte, len(want))
	for off := 0; off < len(want); {
		n := 1 + rng.IntN(200000)
		if rng.IntN(4) == 0 {
			n = 1 + rng.IntN(700)
		}
		n = min(n, len(want)-off)
		m, err := d.ReadAt(got[off:off+n], int64(off))
		if err != nil || m != n {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", n, off, m, err)
		}
		off += n
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("data differs from byte %d", i)
	}
}

func TestFeatureCombinations(t *testing.T) {
	for _, tc := range []struct {
		name string
		bb   xentest.BlkbackConfig
		opts blkfront.Options

		ringPages, maxSegs int
		persistent         bool
		indirect           bool
		ss, pss            int
	}{
		{name: "old backend: no features, no sector-size", bb: xentest.BlkbackConfig{},
			ringPages: 1, maxSegs: 11, ss: 512, pss: 512},
		{name: "sector-size 512", bb: xentest.BlkbackConfig{SectorSize: 512, PhysicalSectorSize: 4096},
			ringPages: 1, maxSegs: 11, ss: 512, pss: 4096},
		{name: "multi-page order 1", bb: xentest.BlkbackConfig{MaxRingPageOrder: 1},
			ringPages: 2, maxSegs: 11, ss: 512, pss: 512},
		{name: "multi-page order 4", bb: xentest.BlkbackConfig{MaxRingPageOrder: 4},
			ringPages: 16, maxSegs: 11, ss: 512, pss: 512},
		{name: "multi-page capped by options", bb: xentest.BlkbackConfig{MaxRingPageOrder: 4}, opts: blkfront.Options{MaxRingOrder: 2},
			ringPages: 4, maxSegs: 11, ss: 512, pss: 512},
		{name: "multi-page refused by options", bb: xentest.BlkbackConfig{MaxRingPageOrder: 3}, opts: blkfront.Options{SinglePage: true},
			ringPages: 1, maxSegs: 11, ss: 512, pss: 512},
		{name: "indirect", bb: xentest.BlkbackConfig{MaxIndirectSegments: 256},
			ringPages: 1, maxSegs: blkfront.DefaultMaxSegments, indirect: true, ss: 512, pss: 512},
		{name: "indirect, large requests", bb: xentest.BlkbackConfig{MaxIndirectSegments: 1024}, opts: blkfront.Options{MaxSegments: 600},
			ringPages: 1, maxSegs: 600, indirect: true, ss: 512, pss: 512},
		{name: "indirect capped by backend", bb: xentest.BlkbackConfig{MaxIndirectSegments: 20}, opts: blkfront.Options{MaxSegments: 128},
			ringPages: 1, maxSegs: 20, indirect: true, ss: 512, pss: 512},
		{name: "indirect offered, too few to matter", bb: xentest.BlkbackConfig{MaxIndirectSegments: 8},
			ringPages: 1, maxSegs: 11, ss: 512, pss: 512},
		{name: "indirect refused by options", bb: xentest.BlkbackConfig{MaxIndirectSegments: 256}, opts: blkfront.Options{MaxSegments: 4},
			ringPages: 1, maxSegs: 4, ss: 512, pss: 512},
		{name: "persistent", bb: xentest.BlkbackConfig{Persistent: true},
			ringPages: 1, maxSegs: 11, persistent: true, ss: 512, pss: 512},
		{name: "persistent refused by options", bb: xentest.BlkbackConfig{Persistent: true}, opts: blkfront.Options{NoPersistent: true},
			ringPages: 1, maxSegs: 11, ss: 512, pss: 512},
		{name: "4k sectors", bb: xentest.BlkbackConfig{SectorSize: 4096, PhysicalSectorSize: 4096},
			ringPages: 1, maxSegs: 11, ss: 4096, pss: 4096},
		{name: "everything", bb: xentest.BlkbackConfig{MaxRingPageOrder: 4, MaxIndirectSegments: 256, Persistent: true, SectorSize: 4096},
			opts:      blkfront.Options{MaxSegments: 64},
			ringPages: 16, maxSegs: 64, persistent: true, indirect: true, ss: 4096, pss: 4096},
		{name: "everything, small pool", bb: xentest.BlkbackConfig{MaxRingPageOrder: 2, MaxIndirectSegments: 64, Persistent: true},
			opts:      blkfront.Options{MaxSegments: 64, BufferPages: 8},
			ringPages: 4, maxSegs: 64, persistent: true, indirect: true, ss: 512, pss: 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			want := image(3<<20+4096, 7)
			tc.bb.Image = want
			bb := e.disk(t, tc.bb)
			d := e.open(t, bb, tc.opts)
			i := d.Info()
			if i.RingPages != tc.ringPages || i.MaxSegments != tc.maxSegs || i.Persistent != tc.persistent || i.Indirect != tc.indirect {
				t.Errorf("negotiated %+v", i)
			}
			if i.RingSlots != 32*tc.ringPages {
				t.Errorf("ring slots %d", i.RingSlots)
			}
			if d.SectorSize() != tc.ss || d.PhysicalSectorSize() != tc.pss {
				t.Errorf("sector sizes %d/%d, want %d/%d", d.SectorSize(), d.PhysicalSectorSize(), tc.ss, tc.pss)
			}
			if d.Size() != int64(len(want)) || i.Sectors != uint64(len(want)/512) {
				t.Errorf("size %d (%d sectors), want %d", d.Size(), i.Sectors, len(want))
			}
			if d.ReadOnly() || d.CDROM() || d.Name() != "xvda" {
				t.Errorf("ro %v cdrom %v name %q", d.ReadOnly(), d.CDROM(), d.Name())
			}
			readAll(t, d, want, rand.New(rand.NewPCG(1, 2)))
			// Between reads only the ring stays granted, unless the
			// grants are persistent.
			if n := e.gnt.Active(); !tc.persistent && n != i.RingPages || tc.persistent && n <= i.RingPages {
				t.Errorf("%d grants active between reads, ring has %d pages", n, i.RingPages)
			}
			st, bst := d.Stats(), bb.Stats()
			if tc.indirect != (st.Indirect > 0) || tc.indirect != (bst.Indirect > 0) {
				t.Errorf("indirect requests: front %d back %d", st.Indirect, bst.Indirect)
			}
			if tc.persistent != (bst.Persistent > 0) || bst.PersistentOn != tc.persistent {
				t.Errorf("persistent mappings %d (on %v)", bst.Persistent, bst.PersistentOn)
			}
			// Pages are reused LIFO: the backend maps no more than the
			// working set, read-ahead (half the default pool, 512
			// pages) plus the largest read (50 pages) and a request on
			// either side.
			if bound := 512 + 50 + 2*(i.MaxSegments+blkif.IndirectPages(i.MaxSegments)); tc.persistent && bst.Persistent > bound {
				t.Errorf("%d grants mapped persistently, working set at most %d: pages are not reused", bst.Persistent, bound)
			}
			if st.Requests != uint64(bst.Requests) || st.Bytes != uint64(len(want)) || st.Errors != 0 {
				t.Errorf("front stats %+v, back %+v", st, bst)
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

func TestDeviceProperties(t *testing.T) {
	e := newEnv(t)
	ro := e.disk(t, xentest.BlkbackConfig{DevID: 51728, ReadOnly: true, Params: "/srv/guest.img"})
	cd := e.disk(t, xentest.BlkbackConfig{DevID: 5632, CDROM: true, ReadOnly: true, Image: image(2048*10, 3), SectorSize: 2048})
	d1 := e.open(t, ro, blkfront.Options{})
	d2 := e.open(t, cd, blkfront.Options{})
	if d1.Name() != "xvdb" || !d1.ReadOnly() || d1.CDROM() || d1.Params() != "/srv/guest.img" || d1.Info().Mode != "r" || d1.Info().Type != "phy" {
		t.Errorf("xvdb: %q ro %v cdrom %v info %+v", d1.Name(), d1.ReadOnly(), d1.CDROM(), d1.Info())
	}
	if d2.Name() != "hdc" || !d2.CDROM() || !d2.ReadOnly() || d2.SectorSize() != 2048 || d2.Size() != 20480 || d2.ID() != 5632 {
		t.Errorf("hdc: %q cdrom %v ro %v ss %d size %d", d2.Name(), d2.CDROM(), d2.ReadOnly(), d2.SectorSize(), d2.Size())
	}
	if d2.Info().VDisk != blkif.VDiskCDROM|blkif.VDiskReadOnly || d2.Info().DeviceType != "cdrom" {
		t.Errorf("cdrom info %+v", d2.Info())
	}
	buf := make([]byte, 3000)
	if n, err := d2.ReadAt(buf, 1000); n != 3000 || err != nil || !bytes.Equal(buf, image(2048*10, 3)[1000:4000]) {
		t.Errorf("cdrom read: %d %v", n, err)
	}
	if !strings.Contains(d2.String(), "hdc") {
		t.Errorf("String %q", d2.String())
	}
	for _, d := range []*blkfront.Device{d1, d2} {
		if err := d.Close(ctxFor(t, 20*time.Second)); err != nil {
			t.Errorf("%s: Close: %v", d.Name(), err)
		}
	}
	e.checkIdle(t, ro)
	e.checkIdle(t, cd)
}

func TestReadAtEdges(t *testing.T) {
	e := newEnv(t)
	want := image(64<<10, 5)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want, SectorSize: 4096})
	d := e.open(t, bb, blkfront.Options{})
	defer e.closeAndCheck(t, d, bb)
	buf := make([]byte, 10000)
	for _, tc := range []struct {
		off, n int64
		wantN  int
		err    error
	}{
		{0, 1, 1, nil},
		{4095, 2, 2, nil},
		{1, 10000, 10000, nil},
		{65535, 1, 1, nil},
		{65535, 2, 1, io.EOF},
		{60000, 10000, 5536, io.EOF},
		{65536, 1, 0, io.EOF},
		{1 << 40, 1, 0, io.EOF},
		{100, 0, 0, nil},
	} {
		clear(buf)
		n, err := d.ReadAt(buf[:tc.n], tc.off)
		if n != tc.wantN || !errors.Is(err, tc.err) && !(err == nil && tc.err == nil) {
			t.Errorf("ReadAt(%d, %d) = %d, %v; want %d, %v", tc.n, tc.off, n, err, tc.wantN, tc.err)
			continue
		}
		if n > 0 && !bytes.Equal(buf[:n], want[tc.off:tc.off+int64(n)]) {
			t.Errorf("ReadAt(%d, %d): wrong data", tc.n, tc.off)
		}
	}
	if _, err := d.ReadAt(buf[:1], -1); err == nil {
		t.Error("negative offset accepted")
	}
}

func TestConcurrentReaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		bb   xentest.BlkbackConfig
		opts blkfront.Options
	}{
		{"plain", xentest.BlkbackConfig{Reorder: true}, blkfront.Options{MaxSegments: 2, BufferPages: 24}},
		{"everything", xentest.BlkbackConfig{Reorder: true, MaxRingPageOrder: 2, MaxIndirectSegments: 64, Persistent: true}, blkfront.Options{BufferPages: 96}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			want := image(4<<20, 11)
			tc.bb.Image = want
			bb := e.disk(t, tc.bb)
			d := e.open(t, bb, tc.opts)
			parallel(t, 16, func(g int) error {
				rng := rand.New(rand.NewPCG(uint64(g), 99))
				buf := make([]byte, 300000)
				for i := 0; i < 40; i++ {
					n := 1 + rng.IntN(len(buf))
					off := rng.Int64N(int64(len(want) - n))
					m, err := d.ReadAt(buf[:n], off)
					if err != nil || m != n {
						return fmt.Errorf("ReadAt(%d at %d) = %d, %v", n, off, m, err)
					}
					if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
						return fmt.Errorf("wrong data at %d+%d", off, n)
					}
				}
				return nil
			})
			st := d.Stats()
			if st.MaxInFlight < 2 || st.InFlight != 0 {
				t.Errorf("in flight: max %d now %d", st.MaxInFlight, st.InFlight)
			}
			t.Logf("stats %+v", st)
			e.closeAndCheck(t, d, bb)
		})
	}
}

// fillRing runs io (ReadAt or WriteAt) of p at offset 0 against a held
// backend: exactly as many requests as the ring has slots must be in
// flight before the backend is released, and io must then complete.
func fillRing(t *testing.T, d *blkfront.Device, bb *xentest.Blkback, p []byte, io func([]byte, int64) (int, error)) {
	t.Helper()
	slots := d.Info().RingSlots
	done := make(chan error, 1)
	go func() {
		n, err := io(p, 0)
		if err == nil && n != len(p) {
			err = fmt.Errorf("short transfer %d", n)
		}
		done <- err
	}()
	if err := bb.WaitHeld(ctxFor(t, 20*time.Second), slots); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.InFlight != slots {
		t.Errorf("%d in flight, ring has %d slots", st.InFlight, slots)
	}
	bb.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFillsTheRing: with a held backend, one big read puts exactly as
// many requests in flight as the ring has slots, and no more.
func TestFillsTheRing(t *testing.T) {
	for _, order := range []int{0, 1} {
		t.Run(fmt.Sprint("order", order), func(t *testing.T) {
			e := newEnv(t)
			want := image(2<<20, 13)
			bb := e.disk(t, xentest.BlkbackConfig{Image: want, MaxRingPageOrder: order})
			d := e.open(t, bb, blkfront.Options{MaxSegments: 1, BufferPages: 200})
			slots := d.Info().RingSlots
			bb.Hold()
			got := make([]byte, (slots+10)*4096)
			fillRing(t, d, bb, got, d.ReadAt)
			if !bytes.Equal(got, want[:len(got)]) {
				t.Fatal("wrong data")
			}
			if st := d.Stats(); st.MaxInFlight != slots || bb.Stats().MaxInFlight != slots {
				t.Errorf("max in flight: front %d back %d, want %d", st.MaxInFlight, bb.Stats().MaxInFlight, slots)
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestPoolLimitsInFlight: the bounce-page budget, not the ring, is the
// limit when it is smaller.
func TestPoolLimitsInFlight(t *testing.T) {
	e := newEnv(t)
	want := image(1<<20, 17)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want})
	d := e.open(t, bb, blkfront.Options{MaxSegments: 2, BufferPages: 6})
	bb.Hold()
	got := make([]byte, 64*4096)
	done := make(chan error, 1)
	go func() { _, err := d.ReadAt(got, 0); done <- err }()
	if err := bb.WaitHeld(ctxFor(t, 20*time.Second), 3); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.InFlight != 3 {
		t.Errorf("%d requests in flight with 6 pages of 2-page requests", st.InFlight)
	}
	bb.Release()
	if err := <-done; err != nil || !bytes.Equal(got, want[:len(got)]) {
		t.Fatalf("read: %v", err)
	}
	if st := d.Stats(); st.MaxInFlight != 3 {
		t.Errorf("max in flight %d", st.MaxInFlight)
	}
	e.closeAndCheck(t, d, bb)
}

func TestCloseAndReopen(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprint("persistent=", persistent), func(t *testing.T) {
			e := newEnv(t)
			want := image(1<<20, 23)
			bb := e.disk(t, xentest.BlkbackConfig{Image: want, Persistent: persistent, MaxRingPageOrder: 2, MaxIndirectSegments: 32})
			d := e.open(t, bb, blkfront.Options{})
			rng := rand.New(rand.NewPCG(3, 4))
			readAll(t, d, want, rng)
			e.closeAndCheck(t, d, bb)
			if err := d.Close(ctxFor(t, time.Second)); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := d.ReadAt(make([]byte, 10), 0); !errors.Is(err, blkfront.ErrClosed) {
				t.Errorf("read after Close: %v", err)
			}
			if err := d.Reopen(ctxFor(t, 20*time.Second)); err != nil {
				t.Fatal(err)
			}
			if err := d.Reopen(ctxFor(t, 20*time.Second)); err == nil {
				t.Error("Reopen of an open device succeeded")
			}
			readAll(t, d, want, rng)
			e.closeAndCheck(t, d, bb)
			// A brand-new frontend (the next kernel's) finds the
			// backend ready.
			d2 := e.open(t, bb, blkfront.Options{SinglePage: true})
			readAll(t, d2, want, rng)
			e.closeAndCheck(t, d2, bb)
			if st := d.Stats(); st.Connects != 2 {
				t.Errorf("connects %d", st.Connects)
			}
			if n := bb.Stats().Connects; n != 3 {
				t.Errorf("backend saw %d connections", n)
			}
		})
	}
}

// TestCloseWaitsForInFlight: Close lets requests in flight finish.
func TestCloseWaitsForInFlight(t *testing.T) {
	e := newEnv(t)
	want := image(1<<20, 29)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want})
	d := e.open(t, bb, blkfront.Options{})
	bb.Hold()
	got := make([]byte, 200000)
	done := make(chan error, 1)
	go func() { _, err := d.ReadAt(got, 0); done <- err }()
	if err := bb.WaitHeld(ctxFor(t, 20*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close(ctxFor(t, 20*time.Second)) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned with requests in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	bb.Release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The reader got its first requests' data or ErrClosed for the
	// rest; never garbage.
	if err := <-done; err != nil && !errors.Is(err, blkfront.ErrClosed) {
		t.Fatalf("read during Close: %v", err)
	}
	e.checkIdle(t, bb)
}

func TestOpenAll(t *testing.T) {
	e := newEnv(t)
	for _, id := range []uint32{51728, 768, 51712, 5632} {
		e.disk(t, xentest.BlkbackConfig{DevID: id, Image: image(8192, uint64(id))})
	}
	// A device whose backend publishes a sector size we cannot use.
	bad := e.disk(t, xentest.BlkbackConfig{DevID: 2049, Image: image(16384, 1)})
	e.sys.Store.Write(bad.Backend().Dir()+"/sector-size", "8192")
	devs, err := blkfront.OpenAll(ctxFor(t, 20*time.Second), e.config(blkfront.Options{}))
	var names []string
	for _, d := range devs {
		names = append(names, d.Name())
	}
	if got := strings.Join(names, " "); got != "hda hdc xvda xvdb" {
		t.Errorf("devices %q", got)
	}
	if !errors.Is(err, blkfront.ErrUnsupported) || !strings.Contains(fmt.Sprint(err), "sda1") {
		t.Errorf("OpenAll error: %v", err)
	}
	for _, d := range devs {
		buf := make([]byte, 100)
		if _, err := d.ReadAt(buf, 50); err != nil || !bytes.Equal(buf, image(8192, uint64(d.ID()))[50:150]) {
			t.Errorf("%s: %v", d.Name(), err)
		}
		if err := d.Close(ctxFor(t, 20*time.Second)); err != nil {
			t.Errorf("%s: Close: %v", d.Name(), err)
		}
	}
}

func TestUnsupportedSectorSize(t *testing.T) {
	e := newEnv(t)
	bb := e.disk(t, xentest.BlkbackConfig{Image: image(65536, 1), SectorSize: 8192})
	_, err := blkfront.Open(ctxFor(t, 20*time.Second), e.config(blkfront.Options{}), e.device(bb))
	if !errors.Is(err, blkfront.ErrUnsupported) {
		t.Fatalf("Open with 8192-byte sectors: %v", err)
	}
	// The failed Open handed the device back.
	e.checkIdle(t, bb)
}

// TestEmptyCDROM: a drive with no medium has zero sectors.
func TestEmptyCDROM(t *testing.T) {
	e := newEnv(t)
	bb := e.disk(t, xentest.BlkbackConfig{DevID: 5632, CDROM: true, ReadOnly: true, Image: []byte{}})
	d := e.open(t, bb, blkfront.Options{})
	if d.Size() != 0 || !d.CDROM() {
		t.Errorf("size %d cdrom %v", d.Size(), d.CDROM())
	}
	if n, err := d.ReadAt(make([]byte, 512), 0); n != 0 || err != io.EOF {
		t.Errorf("read: %d %v", n, err)
	}
	e.closeAndCheck(t, d, bb)
}

// TestDeprecatedMaxRingPages: a backend that only publishes the older
// max-ring-pages node still gets a multi-page ring.
func TestDeprecatedMaxRingPages(t *testing.T) {
	e := newEnv(t)
	want := image(1<<20, 61)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want, MaxRingPageOrder: 2})
	e.sys.Store.Rm(bb.Backend().Dir() + "/max-ring-page-order")
	e.sys.Store.Write(bb.Backend().Dir()+"/max-ring-pages", "6") // not a power of two: 4 pages
	d := e.open(t, bb, blkfront.Options{})
	if i := d.Info(); i.RingPages != 4 || bb.Stats().RingPages != 4 {
		t.Errorf("ring pages %d / backend %d", i.RingPages, bb.Stats().RingPages)
	}
	readAll(t, d, want, rand.New(rand.NewPCG(5, 6)))
	e.closeAndCheck(t, d, bb)
}
