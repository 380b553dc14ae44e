package blkfront_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/blkfront"
	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

func isWrite(r xentest.BlkRequest) bool {
	return r.Op == blkif.OpWrite || r.Op == blkif.OpIndirect && r.IndirectOp == blkif.OpWrite
}

// grantChecker records, from the backend's Status hook, write requests
// whose data grants are writable although grants are not persistent:
// the backend only reads them, so it should get no more.
type grantChecker struct {
	guest *xentest.Domain
	mu    sync.Mutex
	bad   []string
}

func (g *grantChecker) status(r xentest.BlkRequest) int16 {
	if !isWrite(r) {
		return 0
	}
	for _, s := range r.Segments {
		flags, _, _, err := g.guest.GrantEntry(s.Gref)
		if err != nil || flags&xen.GTFReadonly == 0 {
			g.mu.Lock()
			if len(g.bad) < 3 {
				g.bad = append(g.bad, fmt.Sprintf("request %#x ref %d flags %#x %v", r.ID, s.Gref, flags, err))
			}
			g.mu.Unlock()
		}
	}
	return 0
}

func TestWriteAt(t *testing.T) {
	const size = 3<<20 + 4096
	cases := []struct {
		name string
		off  int64
		n    int
	}{
		{"one sector", 512, 512},
		{"two pages", 4096, 8192},
		{"unaligned start", 100, 1000},
		{"unaligned end", 512, 700},
		{"within one sector", 1030, 20},
		{"adjacent partial sectors", 1000, 100},
		{"both ends partial, apart", 20000, 9000},
		{"unaligned, many requests", 12345, 700000},
		{"aligned, many requests", 1 << 20, 1 << 20},
		{"first byte", 0, 1},
		{"last byte", size - 1, 1},
		{"up to the end", size - 3000, 3000},
	}
	for _, tc := range []struct {
		name       string
		bb         xentest.BlkbackConfig
		opts       blkfront.Options
		persistent bool
		indirect   bool
	}{
		{name: "direct", bb: xentest.BlkbackConfig{}},
		{name: "direct, persistent", bb: xentest.BlkbackConfig{Persistent: true}, persistent: true},
		{name: "indirect", bb: xentest.BlkbackConfig{MaxIndirectSegments: 256}, opts: blkfront.Options{MaxSegments: 64}, indirect: true},
		{name: "indirect, persistent, multi-page ring", bb: xentest.BlkbackConfig{MaxIndirectSegments: 256, Persistent: true, MaxRingPageOrder: 2},
			opts: blkfront.Options{MaxSegments: 64}, persistent: true, indirect: true},
		{name: "4k sectors", bb: xentest.BlkbackConfig{SectorSize: 4096, MaxIndirectSegments: 64}, indirect: true},
		{name: "4k sectors, persistent", bb: xentest.BlkbackConfig{SectorSize: 4096, Persistent: true}, persistent: true},
		{name: "small requests, small pool, reordered", bb: xentest.BlkbackConfig{Reorder: true}, opts: blkfront.Options{MaxSegments: 2, BufferPages: 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			want := image(size, 71)
			tc.bb.Image = want
			gc := &grantChecker{guest: e.sys.Guest}
			if !tc.persistent {
				tc.bb.Status = gc.status
			}
			bb := e.disk(t, tc.bb)
			d := e.open(t, bb, tc.opts)
			if i := d.Info(); i.Persistent != tc.persistent || i.Indirect != tc.indirect {
				t.Fatalf("negotiated %+v", i)
			}
			want = bytes.Clone(want)
			rng := rand.New(rand.NewPCG(7, 8))
			var total uint64
			for _, c := range cases {
				p := make([]byte, c.n)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				n, err := d.WriteAt(p, c.off)
				if n != c.n || err != nil {
					t.Fatalf("%s: WriteAt(%d bytes at %d) = %d, %v", c.name, c.n, c.off, n, err)
				}
				total += uint64(n)
				copy(want[c.off:], p)
				if got := bb.Image(); !bytes.Equal(got, want) {
					i := 0
					for got[i] == want[i] {
						i++
					}
					t.Fatalf("%s: image differs from byte %d", c.name, i)
				}
				back := make([]byte, c.n)
				if n, err := d.ReadAt(back, c.off); n != c.n || err != nil || !bytes.Equal(back, p) {
					t.Fatalf("%s: read back: %d, %v", c.name, n, err)
				}
			}
			readAll(t, d, want, rng)
			st, bst := d.Stats(), bb.Stats()
			if st.Writes != uint64(len(cases)) || st.Written != total || st.Errors != 0 {
				t.Errorf("front stats %+v", st)
			}
			if tc.indirect != (bst.Indirect > 0) || bst.Writes == 0 || bst.Errors != 0 {
				t.Errorf("back stats %+v", bst)
			}
			if st.MaxInFlight < 2 {
				t.Errorf("at most %d requests in flight", st.MaxInFlight)
			}
			if len(gc.bad) != 0 {
				t.Errorf("writable grants for writes: %v", gc.bad)
			}
			// Between writes only the ring stays granted, unless the
			// grants are persistent.
			if n := e.gnt.Active(); !tc.persistent && n != d.Info().RingPages {
				t.Errorf("%d grants active between writes", n)
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestWriteManyInFlight: one big write fills the ring.
func TestWriteManyInFlight(t *testing.T) {
	e := newEnv(t)
	want := image(2<<20, 73)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want, MaxRingPageOrder: 1})
	d := e.open(t, bb, blkfront.Options{MaxSegments: 1, BufferPages: 200})
	slots := d.Info().RingSlots
	bb.Hold()
	p := image((slots+10)*4096, 74)
	fillRing(t, d, bb, p, d.WriteAt)
	if !bytes.Equal(bb.Image()[:len(p)], p) {
		t.Fatal("wrong data")
	}
	e.closeAndCheck(t, d, bb)
}

// TestConcurrentWriters: disjoint writes that share sectors (each 300
// bytes, so most sectors hold pieces of two writers) all land: the
// read-modify-writes of a shared sector do not undo one another.
func TestConcurrentWriters(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint("sector size ", ss), func(t *testing.T) {
			e := newEnv(t)
			want := image(1<<20, 79)
			bb := e.disk(t, xentest.BlkbackConfig{Image: want, SectorSize: ss, Reorder: true, Persistent: true})
			d := e.open(t, bb, blkfront.Options{})
			want = bytes.Clone(want)
			const writers, piece, rounds = 8, 300, 40
			pieceOf := func(g int) []byte { return bytes.Repeat([]byte{byte(g + 1)}, piece) }
			for g := 0; g < writers; g++ {
				for k := 0; k < rounds; k++ {
					copy(want[(k*writers+g)*piece:], pieceOf(g))
				}
			}
			parallel(t, writers, func(g int) error {
				p := pieceOf(g)
				for k := 0; k < rounds; k++ {
					off := int64((k*writers + g) * piece)
					if n, err := d.WriteAt(p, off); n != piece || err != nil {
						return fmt.Errorf("WriteAt at %d: %d, %v", off, n, err)
					}
				}
				return nil
			})
			if !bytes.Equal(bb.Image(), want) {
				t.Fatal("a write was lost")
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestWriteReadOnly: read-only devices and CD-ROMs refuse writes
// before anything reaches the ring.
func TestWriteReadOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		bb   xentest.BlkbackConfig
		mode string // rewrites the backend's "mode" before Open
		msg  string
	}{
		{"mode r and VDISK_READONLY", xentest.BlkbackConfig{ReadOnly: true}, "", "device is read-only"},
		{"mode r only", xentest.BlkbackConfig{}, "r", "device is read-only"},
		{"VDISK_READONLY only", xentest.BlkbackConfig{ReadOnly: true}, "w", "device is read-only"},
		{"CD-ROM", xentest.BlkbackConfig{CDROM: true}, "", "device is read-only (CD-ROM)"},
		{"read-only CD-ROM", xentest.BlkbackConfig{CDROM: true, ReadOnly: true}, "", "device is read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.bb.DevID = 51728 // xvdb
			tc.bb.FlushCache = true
			bb := e.disk(t, tc.bb)
			if tc.mode != "" {
				e.sys.Store.Write(bb.Backend().Dir()+"/mode", tc.mode)
			}
			d := e.open(t, bb, blkfront.Options{})
			for _, w := range []struct {
				off int64
				n   int
			}{{0, 512}, {1000, 3}, {0, 0}, {1 << 40, 512}} {
				n, err := d.WriteAt(make([]byte, w.n), w.off)
				wantMsg := fmt.Sprintf("blkfront: xvdb: write %d bytes at %d: %s", w.n, w.off, tc.msg)
				if n != 0 || !errors.Is(err, blkfront.ErrReadOnly) || err.Error() != wantMsg {
					t.Errorf("WriteAt(%d bytes at %d) = %d, %v; want %q", w.n, w.off, n, err, wantMsg)
				}
			}
			if err := d.Sync(ctxFor(t, 20*time.Second)); err != nil {
				t.Errorf("Sync: %v", err)
			}
			if st, bst := d.Stats(), bb.Stats(); st.Requests != 0 || bst.Requests != 0 || st.Written != 0 {
				t.Errorf("requests sent: front %+v back %+v", st, bst)
			}
			// Reads still work.
			buf := make([]byte, 100)
			if _, err := d.ReadAt(buf, 10); err != nil {
				t.Errorf("read: %v", err)
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestWriteBackendErrors: a write the backend refuses (an injected
// status, or a disk turned read-only underneath) fails with an error
// naming the device and sectors; nothing past the failure is counted
// as written, and the device keeps working.
func TestWriteBackendErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int16 // injected on writes touching badSector; 0: SetReadOnly
		want     error
		indirect bool
	}{
		{"error", blkif.RspError, blkfront.ErrIO, false},
		{"error, indirect", blkif.RspError, blkfront.ErrIO, true},
		{"not supported", blkif.RspEOPNOTSUPP, blkfront.ErrNotSupported, false},
		{"unknown status", 7, blkfront.ErrIO, false},
		{"disk read-only underneath", 0, blkfront.ErrIO, false},
		{"disk read-only underneath, indirect", 0, blkfront.ErrIO, true},
	} {
		for _, persistent := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/persistent=%v", tc.name, persistent), func(t *testing.T) {
				e := newEnv(t)
				img := image(1<<20, 83)
				cfg := xentest.BlkbackConfig{Image: img, Persistent: persistent}
				if tc.indirect {
					cfg.MaxIndirectSegments = 64
				}
				if tc.status != 0 {
					cfg.Status = func(r xentest.BlkRequest) int16 {
						if isWrite(r) && touches(r, badSector) {
							return tc.status
						}
						return 0
					}
				}
				bb := e.disk(t, cfg)
				d := e.open(t, bb, blkfront.Options{})
				if tc.status == 0 {
					bb.SetReadOnly(true)
				}
				p := image(700<<10, 84)
				n, err := d.WriteAt(p, 0)
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "blkfront: xvda: write 716800 bytes at 0: ") ||
					!strings.Contains(err.Error(), "write of sectors ") {
					t.Fatalf("write: %d, %v", n, err)
				}
				if tc.status != 0 && (n == 0 || n > badSector*512) || tc.status == 0 && n != 0 {
					t.Fatalf("write over the bad sector wrote %d bytes", n)
				}
				if got := bb.Image(); !bytes.Equal(got[:n], p[:n]) {
					t.Fatal("the reported prefix is not on the disk")
				}
				if tc.status != 0 {
					if got := bb.Image(); !bytes.Equal(got[badSector*512:badSector*512+512], img[badSector*512:badSector*512+512]) {
						t.Fatal("the refused write reached the disk")
					}
				}
				// Unaligned, so read-modify-write: the read is fine, the
				// write fails.
				if _, err := d.WriteAt([]byte("x"), badSector*512+5); !errors.Is(err, tc.want) {
					t.Fatalf("small write: %v", err)
				}
				bb.SetReadOnly(false)
				if n, err := d.WriteAt(p[:4096], 0); n != 4096 || err != nil {
					t.Fatalf("good write after a failed one: %d, %v", n, err)
				}
				if st := d.Stats(); st.Errors < 2 {
					t.Errorf("errors counted: %d", st.Errors)
				}
				e.closeAndCheck(t, d, bb)
			})
		}
	}
}

// TestWriteReadModifyWriteFails: when reading a partial sector fails,
// nothing is written.
func TestWriteReadModifyWriteFails(t *testing.T) {
	e := newEnv(t)
	img := image(1<<20, 89)
	bb := e.disk(t, xentest.BlkbackConfig{Image: img, Status: func(r xentest.BlkRequest) int16 {
		if !isWrite(r) && touches(r, badSector) {
			return blkif.RspError
		}
		return 0
	}})
	d := e.open(t, bb, blkfront.Options{})
	n, err := d.WriteAt(make([]byte, 10000), badSector*512+100)
	if n != 0 || !errors.Is(err, blkfront.ErrIO) || !strings.Contains(err.Error(), "read-modify-write") {
		t.Fatalf("write: %d, %v", n, err)
	}
	if bb.Stats().Writes != 0 || !bytes.Equal(bb.Image(), img) {
		t.Fatal("written anyway")
	}
	e.closeAndCheck(t, d, bb)
}

func TestWritePastEnd(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint("sector size ", ss), func(t *testing.T) {
			e := newEnv(t)
			const size = 64 << 10
			img := image(size, 97)
			bb := e.disk(t, xentest.BlkbackConfig{Image: img, SectorSize: ss})
			d := e.open(t, bb, blkfront.Options{})
			want := bytes.Clone(img)
			for _, tc := range []struct {
				off   int64
				n     int
				wantN int
				err   error
			}{
				{size - 512, 512, 512, nil},
				{size - 100, 300, 100, blkfront.ErrPastEnd},
				{size - 5000, 9000, 5000, blkfront.ErrPastEnd},
				{size, 10, 0, blkfront.ErrPastEnd},
				{size + 4096, 1, 0, blkfront.ErrPastEnd},
				{1 << 62, 1, 0, blkfront.ErrPastEnd},
				{size, 0, 0, nil},
			} {
				p := image(tc.n, uint64(tc.off))
				n, err := d.WriteAt(p, tc.off)
				if n != tc.wantN || !errors.Is(err, tc.err) && !(err == nil && tc.err == nil) {
					t.Errorf("WriteAt(%d bytes at %d) = %d, %v; want %d, %v", tc.n, tc.off, n, err, tc.wantN, tc.err)
					continue
				}
				if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("xvda: write %d bytes at %d: beyond the end of the device (%d bytes): %d bytes not written", tc.n, tc.off, size, tc.n-tc.wantN)) {
					t.Errorf("error %q", err)
				}
				copy(want[min(tc.off, size):], p[:n])
			}
			if !bytes.Equal(bb.Image(), want) {
				t.Error("image differs")
			}
			if _, err := d.WriteAt(make([]byte, 1), -1); err == nil {
				t.Error("negative offset accepted")
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestSync: after writes, Sync flushes (by FLUSH_DISKCACHE, else
// WRITE_BARRIER) when the backend offers it, and only then.
func TestSync(t *testing.T) {
	for _, tc := range []struct {
		name         string
		flush, barr  bool
		op           uint8 // expected, 0 for none
		durableAfter bool
	}{
		{"no feature", false, false, 0, false},
		{"flush-cache", true, false, blkif.OpFlushDiskcache, true},
		{"barrier", false, true, blkif.OpWriteBarrier, true},
		{"both", true, true, blkif.OpFlushDiskcache, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			img := image(1<<20, 101)
			var mu sync.Mutex
			var ops []uint8
			bb := e.disk(t, xentest.BlkbackConfig{Image: img, FlushCache: tc.flush, Barrier: tc.barr, MaxIndirectSegments: 64,
				Status: func(r xentest.BlkRequest) int16 {
					if r.Op == blkif.OpFlushDiskcache || r.Op == blkif.OpWriteBarrier {
						mu.Lock()
						ops = append(ops, r.Op)
						mu.Unlock()
					}
					return 0
				}})
			d := e.open(t, bb, blkfront.Options{})
			if i := d.Info(); i.FlushCache != tc.flush || i.Barrier != tc.barr {
				t.Fatalf("features %+v", i)
			}
			ctx := ctxFor(t, 20*time.Second)
			// Nothing written: no flush.
			readAll(t, d, img, rand.New(rand.NewPCG(1, 1)))
			if err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			p := image(300000, 102)
			if _, err := d.WriteAt(p, 777); err != nil {
				t.Fatal(err)
			}
			want := bytes.Clone(img)
			copy(want[777:], p)
			if bytes.Equal(bb.Durable(), want) {
				t.Fatal("durable before Sync")
			}
			for i := 0; i < 2; i++ { // the second has nothing to flush
				if err := d.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if got := bytes.Equal(bb.Durable(), want); got != tc.durableAfter {
				t.Errorf("durable after Sync: %v", got)
			}
			var wantOps []uint8
			if tc.op != 0 {
				wantOps = []uint8{tc.op}
			}
			if fmt.Sprint(ops) != fmt.Sprint(wantOps) {
				t.Errorf("flush requests %v, want %v", ops, wantOps)
			}
			if st := d.Stats(); st.Flushes != uint64(len(wantOps)) {
				t.Errorf("flushes counted %d", st.Flushes)
			}
			// A Reopen does not forget what was not flushed.
			if _, err := d.WriteAt(p[:10], 0); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(ctx); !errors.Is(err, blkfront.ErrClosed) {
				t.Errorf("Sync of a closed device: %v", err)
			}
			if err := d.Reopen(ctx); err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			copy(want, p[:10])
			if got := bytes.Equal(bb.Durable(), want); got != tc.durableAfter {
				t.Errorf("durable after Reopen and Sync: %v", got)
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestSyncFlushFails: a refused flush is Sync's error, and the next
// Sync tries again.
func TestSyncFlushFails(t *testing.T) {
	for _, tc := range []struct {
		status int16
		want   error
	}{{blkif.RspError, blkfront.ErrIO}, {blkif.RspEOPNOTSUPP, blkfront.ErrNotSupported}} {
		t.Run(fmt.Sprint("status", tc.status), func(t *testing.T) {
			e := newEnv(t)
			var mu sync.Mutex
			fail := true
			bb := e.disk(t, xentest.BlkbackConfig{FlushCache: true, Status: func(r xentest.BlkRequest) int16 {
				mu.Lock()
				defer mu.Unlock()
				if r.Op == blkif.OpFlushDiskcache && fail {
					return tc.status
				}
				return 0
			}})
			d := e.open(t, bb, blkfront.Options{})
			if _, err := d.WriteAt([]byte("hello"), 4096); err != nil {
				t.Fatal(err)
			}
			err := d.Sync(ctxFor(t, 20*time.Second))
			if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "blkfront: xvda: sync: ") {
				t.Fatalf("Sync: %v", err)
			}
			mu.Lock()
			fail = false
			mu.Unlock()
			if err := d.Sync(ctxFor(t, 20*time.Second)); err != nil {
				t.Fatal(err)
			}
			if st := bb.Stats(); st.Flushes != 1 || st.Unflushed != 0 {
				t.Errorf("backend %+v", st)
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestDroppedWrite: a write the backend never answers times out; other
// writes go on, and Close abandons the lost one and still cleans up.
func TestDroppedWrite(t *testing.T) {
	e := newEnv(t)
	bb := e.disk(t, xentest.BlkbackConfig{Drop: func(r xentest.BlkRequest) bool { return isWrite(r) && touches(r, badSector) }})
	d := e.open(t, bb, blkfront.Options{DrainTimeout: 200 * time.Millisecond, IOTimeout: 300 * time.Millisecond})
	if _, err := d.WriteAt(make([]byte, 4096), badSector*512); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write of the dropped sector: %v", err)
	}
	p := []byte("still works")
	if _, err := d.WriteAt(p, 3); err != nil || !bytes.Equal(bb.Image()[3:3+len(p)], p) {
		t.Fatalf("write after the lost one: %v", err)
	}
	if err := d.Close(ctxFor(t, 20*time.Second)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	e.checkIdle(t, bb)
}
