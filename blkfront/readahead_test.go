package blkfront_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/blkfront"
	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

// waitIdle waits until no request of d is in flight.
func waitIdle(t *testing.T, d *blkfront.Device) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); d.Stats().InFlight != 0; {
		if time.Now().After(end) {
			t.Fatalf("%d requests still in flight", d.Stats().InFlight)
		}
		time.Sleep(time.Millisecond)
	}
}

// mustRead reads n bytes at off and compares them with want.
func mustRead(t *testing.T, d *blkfront.Device, want []byte, off int64, n int) {
	t.Helper()
	got := make([]byte, n)
	if m, err := d.ReadAt(got, off); err != nil || m != n {
		t.Fatalf("ReadAt(%d at %d) = %d, %v", n, off, m, err)
	}
	if !bytes.Equal(got, want[off:off+int64(n)]) {
		t.Fatalf("ReadAt(%d at %d): wrong data", n, off)
	}
}

// TestReadAhead: sequential reads leave requests in flight for the next
// one, whose data is then there without asking the backend again; the
// read-ahead stops at the end of the disk and Close gives back its pages.
func TestReadAhead(t *testing.T) {
	for _, tc := range []struct {
		name string
		bb   xentest.BlkbackConfig
		opts blkfront.Options
	}{
		{"no features", xentest.BlkbackConfig{}, blkfront.Options{}},
		{"persistent indirect", xentest.BlkbackConfig{MaxRingPageOrder: 4, MaxIndirectSegments: 256, Persistent: true}, blkfront.Options{}},
		{"reordered, 4k sectors", xentest.BlkbackConfig{Reorder: true, SectorSize: 4096, MaxIndirectSegments: 64}, blkfront.Options{}},
		{"small window", xentest.BlkbackConfig{Persistent: true}, blkfront.Options{ReadAhead: 300 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			want := image(6<<20, 41)
			tc.bb.Image = want
			bb := e.disk(t, tc.bb)
			d := e.open(t, bb, tc.opts)
			const step = 200000 // unaligned: each read goes over the last one's final sector
			off := int64(1000)
			for ; off+2*step < 3<<20; off += step {
				mustRead(t, d, want, off, step)
			}
			st := d.Stats()
			if st.ReadAhead == 0 {
				t.Fatalf("sequential reads read nothing ahead: %+v", st)
			}
			// The next read is in the read-ahead: once that has landed
			// it is served while the backend answers nothing.
			waitIdle(t, d)
			served := bb.Stats().Bytes
			bb.Hold()
			mustRead(t, d, want, off, step)
			off += step
			bb.Release()
			if served < off {
				t.Errorf("backend served %d bytes, the reads ended at %d", served, off)
			}
			// To the end: read-ahead stops there.
			for ; off < int64(len(want)); off += step {
				mustRead(t, d, want, off, int(min(step, int64(len(want))-off)))
			}
			waitIdle(t, d)
			if got := bb.Stats().Bytes; got > int64(len(want))+step {
				t.Errorf("backend served %d bytes for a %d-byte disk read once", got, len(want))
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestReadAheadOnlySequential: reads that do not continue the last one
// read nothing ahead; read-ahead off reads nothing ahead either.
func TestReadAheadOnlySequential(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts blkfront.Options
		seq  bool
	}{
		{"backwards", blkfront.Options{}, false},
		{"off", blkfront.Options{ReadAhead: -1}, true},
		{"pool too small", blkfront.Options{BufferPages: 64}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			want := image(4<<20, 43)
			bb := e.disk(t, xentest.BlkbackConfig{Image: want, Persistent: true, MaxIndirectSegments: 32})
			d := e.open(t, bb, tc.opts)
			const step = 128 << 10
			for i := 0; i < 16; i++ {
				off := int64(len(want)) - int64(i+1)*step
				if tc.seq {
					off = int64(i) * step
				}
				mustRead(t, d, want, off, step)
			}
			waitIdle(t, d)
			if st := d.Stats(); st.ReadAhead != 0 || bb.Stats().Bytes != 16*step {
				t.Errorf("read ahead %d bytes, backend served %d for %d", st.ReadAhead, bb.Stats().Bytes, 16*step)
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestReadAheadAfterWrite: data read ahead, or cached, before a write
// is not served after it.
func TestReadAheadAfterWrite(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			e := newEnv(t)
			want := image(4<<20, 47)
			bb := e.disk(t, xentest.BlkbackConfig{Image: want, Persistent: persistent, MaxIndirectSegments: 64})
			d := e.open(t, bb, blkfront.Options{})
			mustRead(t, d, want, 0, 256<<10)
			mustRead(t, d, want, 256<<10, 256<<10)
			mustRead(t, d, want, 700, 100) // cached
			waitIdle(t, d)
			if d.Stats().ReadAhead == 0 {
				t.Fatal("nothing read ahead")
			}
			for _, w := range []struct {
				off int64
				n   int
			}{{600 << 10, 5000}, {650, 300}} {
				data := bytes.Repeat([]byte{0xa5}, w.n)
				if n, err := d.WriteAt(data, w.off); err != nil || n != w.n {
					t.Fatalf("WriteAt: %d, %v", n, err)
				}
				copy(want[w.off:], data)
			}
			mustRead(t, d, want, 512<<10, 256<<10)
			mustRead(t, d, want, 700, 100)
			e.closeAndCheck(t, d, bb)
		})
	}
}

// TestReadAheadError: a failure in what was read ahead fails only the
// read that reaches it.
func TestReadAheadError(t *testing.T) {
	e := newEnv(t)
	want := image(4<<20, 53)
	bad := uint64(2<<20) / 512
	bb := e.disk(t, xentest.BlkbackConfig{Image: want, Persistent: true, MaxIndirectSegments: 64,
		Status: func(r xentest.BlkRequest) int16 {
			if touches(r, bad) {
				return blkif.RspError
			}
			return 0
		}})
	d := e.open(t, bb, blkfront.Options{})
	const step = 256 << 10
	off := int64(0)
	for ; off+step <= int64(bad)*512; off += step {
		mustRead(t, d, want, off, step)
	}
	buf := make([]byte, step)
	if n, err := d.ReadAt(buf, off); !errors.Is(err, blkfront.ErrIO) || !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
		t.Fatalf("read over the bad sector: %d, %v", n, err)
	}
	mustRead(t, d, want, 0, step)
	mustRead(t, d, want, 3<<20, step)
	e.closeAndCheck(t, d, bb)
}

// TestReadAheadYields: a sequential reader's read-ahead never starves
// other readers, with the smallest pool that reads ahead.
func TestReadAheadYields(t *testing.T) {
	e := newEnv(t)
	want := image(4<<20, 59)
	bb := e.disk(t, xentest.BlkbackConfig{Image: want, Reorder: true, Persistent: true, MaxIndirectSegments: 16})
	// 16 segments and an indirect page per request: half of 100 pages
	// is just enough for read-ahead.
	d := e.open(t, bb, blkfront.Options{MaxSegments: 16, BufferPages: 100})
	parallel(t, 8, func(g int) error {
		rng := rand.New(rand.NewPCG(uint64(g), 7))
		buf := make([]byte, 200000)
		for i := 0; i < 30; i++ {
			n := 1 + rng.IntN(len(buf))
			off := rng.Int64N(int64(len(want) - n))
			if g < 2 {
				n, off = 130000, int64(i)*100000 // sequential
			}
			if m, err := d.ReadAt(buf[:n], off); err != nil || m != n || !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
				return fmt.Errorf("ReadAt(%d at %d) = %d, %v", n, off, m, err)
			}
		}
		return nil
	})
	if d.Stats().ReadAhead == 0 {
		t.Error("no read-ahead")
	}
	waitIdle(t, d)
	e.closeAndCheck(t, d, bb)
}

// TestBlockCache: short reads near each other cost one request per
// 64 KiB block; the cache evicts the least recently used block.
// Read-ahead is off, so that every request is the cache's.
func TestBlockCache(t *testing.T) {
	const reads = 1000
	near := func(rng *rand.Rand, i int) int64 { return int64(1<<20 + rng.IntN(4*64<<10-600)) }
	for _, tc := range []struct {
		name         string
		opts         blkfront.Options
		at           func(rng *rand.Rand, i int) int64
		misses, reqs int // -1: hits+misses (reads may straddle two blocks)
	}{
		{"on", blkfront.Options{ReadAhead: -1}, near, 4, 4},
		{"off", blkfront.Options{ReadAhead: -1, CacheBlocks: -1}, near, 0, reads},
		// A B A C A B A C…: with two blocks, LRU keeps A and misses
		// every B and C.
		{"LRU", blkfront.Options{ReadAhead: -1, CacheBlocks: 2}, func(_ *rand.Rand, i int) int64 {
			switch {
			case i%2 == 0:
				return 1<<20 + 10
			case i/2%2 == 0:
				return 2<<20 + 10
			}
			return 3<<20 + 10
		}, reads/2 + 1, reads/2 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			want := image(4<<20, 61)
			bb := e.disk(t, xentest.BlkbackConfig{Image: want, MaxIndirectSegments: 32})
			d := e.open(t, bb, tc.opts)
			rng := rand.New(rand.NewPCG(3, 4))
			for i := 0; i < reads; i++ {
				mustRead(t, d, want, tc.at(rng, i), 1+rng.IntN(512))
			}
			st := d.Stats()
			if int(st.CacheMisses) != tc.misses || tc.opts.CacheBlocks >= 0 && st.CacheHits+st.CacheMisses < reads {
				t.Errorf("cache hits %d misses %d, want %d misses", st.CacheHits, st.CacheMisses, tc.misses)
			}
			if got := bb.Stats().Requests; got != tc.reqs {
				t.Errorf("%d requests for %d short reads, want %d", got, reads, tc.reqs)
			}
			e.closeAndCheck(t, d, bb)
		})
	}
}
