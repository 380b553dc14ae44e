package blkfront_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/blkfront"
	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
	"github.com/gopvgrub/gopvgrub/xen/xenbus"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

// badSector is where the faulty backends below misbehave.
const badSector = 1024

func touches(r xentest.BlkRequest, sector uint64) bool {
	n := 0
	for _, s := range r.Segments {
		n += s.Sectors()
	}
	return r.Sector <= sector && sector < r.Sector+uint64(n)
}

// TestErrorStatus: an error status fails that read only; the device
// keeps working.
func TestErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		status int16
		want   error
	}{
		{blkif.RspError, blkfront.ErrIO},
		{blkif.RspEOPNOTSUPP, blkfront.ErrNotSupported},
		{5, blkfront.ErrIO},
		{-32768, blkfront.ErrIO},
	} {
		for _, persistent := range []bool{false, true} {
			t.Run(fmt.Sprintf("status%d/persistent=%v", tc.status, persistent), func(t *testing.T) {
				e := newEnv(t)
				want := image(1<<20, 31)
				bb := e.disk(t, xentest.BlkbackConfig{Image: want, Persistent: persistent, MaxIndirectSegments: 64,
					Status: func(r xentest.BlkRequest) int16 {
						if touches(r, badSector) {
							return tc.status
						}
						return 0
					}})
				d := e.open(t, bb, blkfront.Options{})
				buf := make([]byte, 64<<10)
				n, err := d.ReadAt(buf, badSector*512-1000)
				if !errors.Is(err, tc.want) || n != 0 {
					t.Fatalf("read over the bad sector: %d, %v", n, err)
				}
				// A read whose later chunk fails returns the good prefix.
				big := make([]byte, 700<<10)
				n, err = d.ReadAt(big, 0)
				if !errors.Is(err, tc.want) || n == 0 || n > badSector*512 || !bytes.Equal(big[:n], want[:n]) {
					t.Fatalf("read up to the bad sector: %d, %v", n, err)
				}
				for i := 0; i < 3; i++ {
					if n, err := d.ReadAt(buf, 0); err != nil || n != len(buf) || !bytes.Equal(buf, want[:len(buf)]) {
						t.Fatalf("good read after a failed one: %d, %v", n, err)
					}
				}
				if st := d.Stats(); st.Errors < 2 {
					t.Errorf("errors counted: %d", st.Errors)
				}
				e.closeAndCheck(t, d, bb)
			})
		}
	}
}

// TestProtocolViolations: responses that cannot be right break the
// connection, fail every request, and Close still cleans up.
func TestProtocolViolations(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(r xentest.BlkRequest, rsp *blkif.Response)
	}{
		{"bogus id", func(r xentest.BlkRequest, rsp *blkif.Response) { rsp.ID ^= 0xdead << 32 }},
		{"id of another slot", func(r xentest.BlkRequest, rsp *blkif.Response) { rsp.ID++ }},
		{"wrong operation", func(r xentest.BlkRequest, rsp *blkif.Response) { rsp.Op = blkif.OpWrite }},
		{"discard", func(r xentest.BlkRequest, rsp *blkif.Response) { rsp.Op = blkif.OpDiscard }},
	} {
		for _, persistent := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/persistent=%v", tc.name, persistent), func(t *testing.T) {
				e := newEnv(t)
				want := image(1<<20, 37)
				bb := e.disk(t, xentest.BlkbackConfig{Image: want, Persistent: persistent,
					Mangle: func(r xentest.BlkRequest, rsp *blkif.Response) {
						if touches(r, badSector) {
							tc.mangle(r, rsp)
						}
					}})
				d := e.open(t, bb, blkfront.Options{MaxSegments: 4})
				buf := make([]byte, 1<<20)
				n, err := d.ReadAt(buf, 0)
				if !errors.Is(err, blkfront.ErrProtocol) || !bytes.Equal(buf[:n], want[:n]) {
					t.Fatalf("read: %d, %v", n, err)
				}
				if _, err := d.ReadAt(buf[:10], 0); !errors.Is(err, blkfront.ErrProtocol) {
					t.Fatalf("read after the violation: %v", err)
				}
				e.closeAndCheck(t, d, bb)
				// Reopening gives a fresh connection.
				if err := d.Reopen(ctxFor(t, 20*time.Second)); err != nil {
					t.Fatal(err)
				}
				if _, err := d.ReadAt(buf[:10], 0); err != nil {
					t.Fatalf("read after reopen: %v", err)
				}
				d.Close(ctxFor(t, 20*time.Second))
			})
		}
	}
}

// TestTooManyResponses: a response index beyond the requests in flight.
func TestTooManyResponses(t *testing.T) {
	e := newEnv(t)
	want := image(1<<20, 41)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want})
	d := e.open(t, bb, blkfront.Options{})
	bb.Hold()
	done := make(chan error, 1)
	go func() {
		_, err := d.ReadAt(make([]byte, 4096), 0)
		done <- err
	}()
	if err := bb.WaitHeld(ctxFor(t, 20*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	if err := bb.InjectResponse(blkif.Response{ID: 12345, Op: blkif.OpRead}); err != nil {
		t.Fatal(err)
	}
	if err := bb.InjectResponse(blkif.Response{ID: 12346, Op: blkif.OpRead}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, blkfront.ErrProtocol) {
		t.Fatalf("read: %v", err)
	}
	if err := d.Close(ctxFor(t, 20*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if e.gnt.Active() != 0 || e.sys.Hyp.Mappings() != 0 {
		t.Errorf("grants %d mappings %d", e.gnt.Active(), e.sys.Hyp.Mappings())
	}
}

// TestDelayedReordered: responses held back and released out of order.
func TestDelayedReordered(t *testing.T) {
	e := newEnv(t)
	want := image(2<<20, 43)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want, Reorder: true, MaxRingPageOrder: 1})
	d := e.open(t, bb, blkfront.Options{MaxSegments: 3, BufferPages: 300})
	for round := 0; round < 3; round++ {
		bb.Hold()
		got := make([]byte, len(want))
		done := make(chan error, 1)
		go func() { _, err := d.ReadAt(got, 0); done <- err }()
		if err := bb.WaitHeld(ctxFor(t, 20*time.Second), 64); err != nil {
			t.Fatal(err)
		}
		bb.Release()
		if err := <-done; err != nil || !bytes.Equal(got, want) {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	e.closeAndCheck(t, d, bb)
}

// TestBackendClosesMidway: the backend gives up while requests are in
// flight; the reads fail promptly, Close and Reopen work.
func TestBackendClosesMidway(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprint("persistent=", persistent), func(t *testing.T) {
			e := newEnv(t)
			want := image(1<<20, 47)
			bb := e.disk(t, xentest.BlkbackConfig{Image: want, Persistent: persistent})
			d := e.open(t, bb, blkfront.Options{})
			buf := make([]byte, 100000)
			if _, err := d.ReadAt(buf, 0); err != nil { // some persistent mappings exist
				t.Fatal(err)
			}
			bb.Hold()
			done := make(chan error, 1)
			go func() {
				_, err := d.ReadAtContext(ctxFor(t, 20*time.Second), buf, 0)
				done <- err
			}()
			if err := bb.WaitHeld(ctxFor(t, 20*time.Second), 1); err != nil {
				t.Fatal(err)
			}
			if err := bb.Disconnect(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, blkfront.ErrBackendGone) {
					t.Fatalf("read: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("read did not notice the backend leaving")
			}
			if _, err := d.ReadAt(buf, 0); !errors.Is(err, blkfront.ErrBackendGone) {
				t.Fatalf("later read: %v", err)
			}
			bb.Release()
			e.closeAndCheck(t, d, bb)
			if err := d.Reopen(ctxFor(t, 20*time.Second)); err != nil {
				t.Fatal(err)
			}
			if n, err := d.ReadAt(buf, 0); err != nil || !bytes.Equal(buf[:n], want[:n]) {
				t.Fatalf("read after reopen: %v", err)
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestDroppedRequest: a request the backend never answers times the
// read out; Close abandons it after DrainTimeout and still cleans up.
func TestDroppedRequest(t *testing.T) {
	e := newEnv(t)
	want := image(1<<20, 53)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want, Drop: func(r xentest.BlkRequest) bool { return touches(r, badSector) }})
	d := e.open(t, bb, blkfront.Options{DrainTimeout: 200 * time.Millisecond, IOTimeout: 300 * time.Millisecond})
	buf := make([]byte, 4096)
	_, err := d.ReadAt(buf, badSector*512)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read of the dropped sector: %v", err)
	}
	// Other reads still work while the lost request stays in flight.
	if _, err := d.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, want[:4096]) {
		t.Fatalf("read after the lost one: %v", err)
	}
	if st := d.Stats(); st.InFlight != 1 {
		t.Errorf("%d in flight", st.InFlight)
	}
	err = d.Close(ctxFor(t, 20*time.Second))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("Close: %v", err)
	}
	e.checkIdle(t, bb)
}

// TestCancelledRead: a reader that gives up leaves its requests to
// finish; their pages come back to the pool.
func TestCancelledRead(t *testing.T) {
	e := newEnv(t)
	want := image(1<<20, 59)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want})
	d := e.open(t, bb, blkfront.Options{BufferPages: 16, MaxSegments: 8})
	bb.Hold()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := d.ReadAtContext(ctx, make([]byte, 1<<20), 0)
		done <- err
	}()
	if err := bb.WaitHeld(ctxFor(t, 20*time.Second), 2); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	bb.Release()
	if err := d.Sync(ctxFor(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	// All 16 pages are usable again: a read needing them all at once
	// (two 8-page requests) succeeds.
	buf := make([]byte, 64<<10)
	if _, err := d.ReadAt(buf, 4096); err != nil || !bytes.Equal(buf, want[4096:4096+len(buf)]) {
		t.Fatalf("read after cancel: %v", err)
	}
	e.closeAndCheck(t, d, bb)
}

// TestLeakReported: a grant the backend never unmaps is reported by
// Close and its page leaked, not freed.
func TestLeakReported(t *testing.T) {
	e := newEnv(t)
	bb := e.disk(t, xentest.BlkbackConfig{})
	d := e.open(t, bb, blkfront.Options{})
	ref, err := bb.Backend().ReadFrontendUint("ring-ref")
	if err != nil {
		t.Fatal(err)
	}
	// A second mapping of the ring, which the backend forgets.
	m, err := e.sys.Hyp.MapGrant(0, guest, uint32(ref), false)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Close(ctxFor(t, 20*time.Second))
	if !errors.Is(err, blkfront.ErrLeak) || !strings.Contains(err.Error(), fmt.Sprint(ref)) {
		t.Fatalf("Close: %v", err)
	}
	if l := e.gnt.Leaks(); len(l) != 1 || l[0] != gnttab.Ref(ref) {
		t.Fatalf("leaks %v", l)
	}
	if e.sys.Guest.Pages() != e.pages+1 {
		t.Errorf("%d pages, want the ring page kept", e.sys.Guest.Pages())
	}
	m.Unmap()
	if err := e.gnt.End(gnttab.Ref(ref)); err != nil {
		t.Fatal(err)
	}
}

// TestBackendNeverConnects: Open is bounded by its context and hands
// the device back.
func TestBackendNeverConnects(t *testing.T) {
	e := newEnv(t)
	bb := e.disk(t, xentest.BlkbackConfig{MaxRingPageOrder: 1})
	// The backend refuses our ring (order 2 > its max 1) if we lie to
	// it: rewrite its maximum after it was published.
	e.sys.Store.Write(bb.Backend().Dir()+"/max-ring-page-order", "2")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := blkfront.Open(ctx, e.config(blkfront.Options{}), e.device(bb))
	if !errors.Is(err, xenbus.ErrBackendGone) {
		t.Fatalf("Open: %v", err)
	}
	if n := e.gnt.Active(); n != 0 {
		t.Errorf("%d grants left", n)
	}
	if n := e.sys.Guest.Pages(); n != e.pages {
		t.Errorf("%d pages left", n-e.pages)
	}
	if len(bb.ProtocolErrors()) != 1 {
		t.Errorf("backend errors %v", bb.ProtocolErrors())
	}
	if s := bb.Backend().FrontendState(); s != xen.StateInitialising {
		t.Errorf("frontend state %v", s)
	}
}
