package sring

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
)

// Slot sizes of the rings the drivers use: union of request and
// response (io/blkif.h, io/netif.h).
const (
	blkifSlot   = 112
	netifTxSlot = 12
	netifRxSlot = 8
)

// pages returns n zeroed, page-aligned pages, as xen.Memory would.
func pages(n int) []byte {
	words := make([]uint64, n*PageSize/8+PageSize/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & (PageSize - 1))
	return b[off : off+n*PageSize : off+n*PageSize]
}

func TestSlots(t *testing.T) {
	for _, tc := range []struct {
		bytes, slot, want int
	}{
		{4096, blkifSlot, 32},
		{8192, blkifSlot, 64},
		{16384, blkifSlot, 128},
		{32768, blkifSlot, 256},
		{65536, blkifSlot, 512},
		{4096, netifTxSlot, 256},
		{4096, netifRxSlot, 256},
		{4096, 4032, 1},
		{4096, 2016, 2},
		{4096, 2017, 1},
		{4096, 4033, 0},
		{4096, 0, 0},
		{4096, -1, 0},
		{63, 1, 0},
		{65, 1, 1},
	} {
		if got := Slots(tc.bytes, tc.slot); got != tc.want {
			t.Errorf("Slots(%d, %d) = %d, want %d", tc.bytes, tc.slot, got, tc.want)
		}
	}
}

func TestOrder(t *testing.T) {
	for n, want := range map[int]int{4096: 0, 8192: 1, 16384: 2, 32768: 3, 65536: 4} {
		if k, ok := Order(n); !ok || k != want {
			t.Errorf("Order(%d) = %d, %v", n, k, ok)
		}
	}
	for _, n := range []int{0, 1, 4095, 4097, 12288, 131072} {
		if _, ok := Order(n); ok {
			t.Errorf("Order(%d) accepted", n)
		}
	}
}

func TestNewRejects(t *testing.T) {
	big := pages(2)
	for _, tc := range []struct {
		name string
		mem  []byte
		slot int
		want error
	}{
		{"empty", nil, 8, ErrSize},
		{"short", big[:4095], 8, ErrSize},
		{"three pages", pages(3), 8, ErrSize},
		{"32 pages", pages(32), 8, ErrSize},
		{"slot 0", big[:4096], 0, ErrSize},
		{"slot too big", big[:4096], 4033, ErrSize},
		{"misaligned", big[2 : 2+4096], 8, ErrAlign},
	} {
		if _, err := NewFront(tc.mem, tc.slot); !errors.Is(err, tc.want) {
			t.Errorf("NewFront %s: %v, want %v", tc.name, err, tc.want)
		}
		if _, err := NewBack(tc.mem, tc.slot); !errors.Is(err, tc.want) {
			t.Errorf("NewBack %s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestInitClearsHeaderOnly(t *testing.T) {
	mem := pages(1)
	for i := range mem {
		mem[i] = 0xa5
	}
	f, err := NewFront(mem, blkifSlot)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	for _, c := range []struct {
		off  int
		want uint32
	}{{OffReqProd, 0}, {OffReqEvent, 1}, {OffRspProd, 0}, {OffRspEvent, 1}} {
		if got := le.Uint32(mem[c.off:]); got != c.want {
			t.Errorf("offset %d = %#x, want %#x", c.off, got, c.want)
		}
	}
	if !bytes.Equal(mem[16:HeaderSize], make([]byte, HeaderSize-16)) {
		t.Errorf("padding not cleared: % x", mem[16:HeaderSize])
	}
	if mem[HeaderSize] != 0xa5 {
		t.Errorf("slots touched by init")
	}
	if f.Size() != 32 || f.Free() != 32 || f.Outstanding() != 0 {
		t.Errorf("size %d free %d outstanding %d", f.Size(), f.Free(), f.Outstanding())
	}
	h := f.Shared()
	if h.ReqProd() != 0 || h.ReqEvent() != 1 || h.RspProd() != 0 || h.RspEvent() != 1 {
		t.Errorf("Header view disagrees with the bytes")
	}
}

// pair builds a front and a back end on the same ring.
func pair(t testing.TB, order, slot int, start uint32) (*Front, *Back, []byte) {
	t.Helper()
	mem := pages(1 << order)
	f, err := NewFrontAt(mem, slot, start)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBack(mem, slot)
	if err != nil {
		t.Fatal(err)
	}
	return f, b, mem
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		order, slot int
		start       uint32
	}{
		{0, blkifSlot, 0},
		{0, blkifSlot, 0xfffffff0},
		{2, blkifSlot, 0xffffffc0},
		{4, blkifSlot, 7},
		{0, netifTxSlot, 0xffffff00},
		{0, netifRxSlot, 0x80000000},
	} {
		t.Run(fmt.Sprintf("order%d-slot%d-start%#x", tc.order, tc.slot, tc.start), func(t *testing.T) {
			f, b, _ := pair(t, tc.order, tc.slot, tc.start)
			size := f.Size()
			if b.Size() != size {
				t.Fatalf("sizes differ: front %d back %d", size, b.Size())
			}
			next := uint32(0) // next request tag
			want := uint32(0) // next response tag expected
			req := make([]byte, tc.slot)
			rsp := make([]byte, tc.slot)
			// Several laps of the ring, in uneven batches.
			for lap := 0; lap < 5*size; {
				batch := 1 + lap%(size+1)
				if batch > f.Free() {
					batch = f.Free()
				}
				for i := 0; i < batch; i++ {
					s, err := f.NextRequest()
					if err != nil {
						t.Fatal(err)
					}
					if len(s) != tc.slot {
						t.Fatalf("slot length %d", len(s))
					}
					binary.LittleEndian.PutUint32(s, next)
					s[len(s)-1] = byte(next)
					next++
				}
				f.Push()
				if n, err := b.Unconsumed(); err != nil || n != batch {
					t.Fatalf("back sees %d requests (%v), want %d", n, err, batch)
				}
				for {
					ok, err := b.NextRequest(req)
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					s, err := b.NextResponse()
					if err != nil {
						t.Fatal(err)
					}
					copy(s, req) // echo
				}
				b.Push()
				for {
					ok, err := f.NextResponse(rsp)
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					if got := binary.LittleEndian.Uint32(rsp); got != want || rsp[tc.slot-1] != byte(want) {
						t.Fatalf("response %d, want %d", got, want)
					}
					want++
				}
				if f.Outstanding() != 0 || f.Free() != size {
					t.Fatalf("after lap: outstanding %d free %d", f.Outstanding(), f.Free())
				}
				lap += batch
			}
			if want != next {
				t.Fatalf("%d requests, %d responses", next, want)
			}
		})
	}
}

func TestFull(t *testing.T) {
	f, b, _ := pair(t, 0, blkifSlot, 0xfffffff8)
	for i := 0; i < f.Size(); i++ {
		if _, err := f.NextRequest(); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if _, err := f.NextRequest(); !errors.Is(err, ErrFull) {
		t.Fatalf("request beyond the ring: %v", err)
	}
	f.Push()
	buf := make([]byte, blkifSlot)
	if ok, err := b.NextRequest(buf); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// Consuming a request does not free a slot: only the response does.
	if f.Free() != 0 {
		t.Fatalf("free %d before any response", f.Free())
	}
	if _, err := b.NextResponse(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.NextResponse(); !errors.Is(err, ErrNoRequest) {
		t.Fatalf("second response for one request: %v", err)
	}
	b.Push()
	if ok, err := f.NextResponse(buf); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if f.Free() != 1 {
		t.Fatalf("free %d, want 1", f.Free())
	}
	if _, err := f.NextRequest(); err != nil {
		t.Fatal(err)
	}
}

func TestNextRequestClearsSlot(t *testing.T) {
	f, _, mem := pair(t, 0, netifTxSlot, 0)
	for i := HeaderSize; i < len(mem); i++ {
		mem[i] = 0xff
	}
	s, err := f.NextRequest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s, make([]byte, netifTxSlot)) {
		t.Fatalf("slot not cleared: % x", s)
	}
}

func TestPushNotify(t *testing.T) {
	// The peer's event index relative to the producer index before
	// (old) and after (new) a push of 3.
	for _, tc := range []struct {
		name  string
		event func(old, new uint32) uint32
		want  bool
	}{
		{"event just after old", func(old, new uint32) uint32 { return old + 1 }, true},
		{"event at new", func(old, new uint32) uint32 { return new }, true},
		{"event past new", func(old, new uint32) uint32 { return new + 1 }, false},
		{"event at old (peer not waiting)", func(old, new uint32) uint32 { return old }, false},
		{"event long ago", func(old, new uint32) uint32 { return old - 100 }, false},
	} {
		for _, start := range []uint32{0, 0xfffffffe} {
			t.Run(fmt.Sprintf("%s/%#x", tc.name, start), func(t *testing.T) {
				f, b, _ := pair(t, 0, blkifSlot, start)
				old := start
				new := start + 3
				f.Shared().SetReqEvent(tc.event(old, new))
				for i := 0; i < 3; i++ {
					f.NextRequest()
				}
				if got := f.Push(); got != tc.want {
					t.Errorf("front: notify %v, want %v", got, tc.want)
				}
				if f.Shared().ReqProd() != new {
					t.Errorf("req_prod %#x, want %#x", f.Shared().ReqProd(), new)
				}
				if f.Push() {
					t.Errorf("front: empty push notified")
				}
				buf := make([]byte, blkifSlot)
				for i := 0; i < 3; i++ {
					b.NextRequest(buf)
					if _, err := b.NextResponse(); err != nil {
						t.Fatal(err)
					}
				}
				b.Shared().SetRspEvent(tc.event(old, new))
				if got := b.Push(); got != tc.want {
					t.Errorf("back: notify %v, want %v", got, tc.want)
				}
				if b.Push() {
					t.Errorf("back: empty push notified")
				}
			})
		}
	}
}

func TestFinalCheck(t *testing.T) {
	f, b, _ := pair(t, 0, blkifSlot, 0xfffffffe)
	buf := make([]byte, blkifSlot)
	if more, err := f.FinalCheck(); more || err != nil {
		t.Fatalf("empty ring: %v %v", more, err)
	}
	if got := f.Shared().RspEvent(); got != 0xffffffff {
		t.Fatalf("rsp_event %#x, want rsp_cons+1", got)
	}
	if more, err := b.FinalCheck(); more || err != nil {
		t.Fatalf("back, empty ring: %v %v", more, err)
	}
	if got := b.Shared().ReqEvent(); got != 0xffffffff {
		t.Fatalf("req_event %#x, want req_cons+1", got)
	}
	for i := 0; i < 2; i++ {
		f.NextRequest()
	}
	if !f.Push() {
		t.Fatal("back asked for a notification and did not get it")
	}
	if more, err := b.FinalCheck(); !more || err != nil {
		t.Fatalf("back misses pushed requests: %v %v", more, err)
	}
	b.NextRequest(buf)
	b.NextResponse()
	if !b.Push() {
		t.Fatal("front asked for a notification and did not get it")
	}
	// With a response waiting, FinalCheck reports it and leaves
	// rsp_event alone.
	f.Shared().SetRspEvent(42)
	if more, err := f.FinalCheck(); !more || err != nil {
		t.Fatalf("front misses a response: %v %v", more, err)
	}
	if f.Shared().RspEvent() != 42 {
		t.Fatal("FinalCheck moved rsp_event although work was pending")
	}
	f.NextResponse(buf)
	if more, _ := f.FinalCheck(); more {
		t.Fatal("phantom response")
	}
	if got := f.Shared().RspEvent(); got != 0x00000000 {
		t.Fatalf("rsp_event %#x after wrap, want 0", got)
	}
}

func TestFrontRejectsImpossibleResponses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rspProd func(start uint32) uint32
	}{
		{"more responses than pushed requests", func(s uint32) uint32 { return s + 3 }},
		{"response to an unpushed request", func(s uint32) uint32 { return s + 3 }},
		{"index went backwards", func(s uint32) uint32 { return s - 1 }},
		{"far away", func(s uint32) uint32 { return s + 0x80000000 }},
	} {
		for _, start := range []uint32{0, 0xffffffff} {
			t.Run(fmt.Sprintf("%s/%#x", tc.name, start), func(t *testing.T) {
				f, _, _ := pair(t, 0, blkifSlot, start)
				f.NextRequest()
				f.NextRequest()
				if tc.name != "response to an unpushed request" {
					f.Push()
				} else {
					f.NextRequest() // produced, never pushed
				}
				f.Shared().SetRspProd(tc.rspProd(start))
				buf := make([]byte, blkifSlot)
				if _, err := f.Unconsumed(); !errors.Is(err, ErrCorrupt) {
					t.Errorf("Unconsumed: %v", err)
				}
				if ok, err := f.NextResponse(buf); ok || !errors.Is(err, ErrCorrupt) {
					t.Errorf("NextResponse: %v %v", ok, err)
				}
				if _, err := f.FinalCheck(); !errors.Is(err, ErrCorrupt) {
					t.Errorf("FinalCheck: %v", err)
				}
				if f.Outstanding() > f.Size() || f.Free() < 0 {
					t.Errorf("accounting broken: outstanding %d free %d", f.Outstanding(), f.Free())
				}
			})
		}
	}
}

func TestBackRejectsImpossibleRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reqProd func(start uint32, size int) uint32
		consume int
	}{
		{"more than the ring", func(s uint32, n int) uint32 { return s + uint32(n) + 1 }, 0},
		{"went backwards", func(s uint32, n int) uint32 { return s + 1 }, 2},
		{"far away", func(s uint32, n int) uint32 { return s - 5 }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, b, _ := pair(t, 0, blkifSlot, 0xfffffffd)
			f.NextRequest()
			f.NextRequest()
			f.Push()
			buf := make([]byte, blkifSlot)
			for i := 0; i < tc.consume; i++ {
				b.NextRequest(buf)
			}
			f.Shared().SetReqProd(tc.reqProd(0xfffffffd, b.Size()))
			if _, err := b.Unconsumed(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Unconsumed: %v", err)
			}
			if ok, err := b.NextRequest(buf); ok || !errors.Is(err, ErrCorrupt) {
				t.Errorf("NextRequest: %v %v", ok, err)
			}
		})
	}
	// A full ring is not corrupt.
	f, b, _ := pair(t, 0, blkifSlot, 0)
	for f.Free() > 0 {
		f.NextRequest()
	}
	f.Push()
	if n, err := b.Unconsumed(); n != b.Size() || err != nil {
		t.Errorf("full ring: %d %v", n, err)
	}
}

// TestBackAttachesMidStream: a back end attaching after the front end
// pushed requests (netfront posts rx buffers before the backend
// connects) sees them.
func TestBackAttachesMidStream(t *testing.T) {
	mem := pages(1)
	f, err := NewFrontAt(mem, netifRxSlot, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		f.NextRequest()
	}
	f.Push()
	b, err := NewBack(mem, netifRxSlot)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := b.Unconsumed(); n != 10 || err != nil {
		t.Fatalf("back sees %d, %v", n, err)
	}
}

// TestConcurrentNoLostWakeups runs both ends in goroutines that notify
// each other only when Push says so and sleep only after FinalCheck: a
// mistake in the event-index logic loses a wakeup and hangs the test
// (caught by the channel timeout below, not by the test deadline).
func TestConcurrentNoLostWakeups(t *testing.T) {
	const total = 20000
	f, b, _ := pair(t, 0, blkifSlot, 0xffffff00)
	toBack := make(chan struct{}, 1)
	toFront := make(chan struct{}, 1)
	ring := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	errc := make(chan error, 2)
	go func() { // back end: echo every request
		req := make([]byte, blkifSlot)
		served := 0
		for served < total {
			for {
				ok, err := b.NextRequest(req)
				if err != nil {
					errc <- err
					return
				}
				if !ok {
					break
				}
				s, err := b.NextResponse()
				if err != nil {
					errc <- err
					return
				}
				copy(s, req[:8])
				served++
				if served%7 == 0 && b.Push() {
					ring(toFront)
				}
			}
			if b.Push() {
				ring(toFront)
			}
			more, err := b.FinalCheck()
			if err != nil {
				errc <- err
				return
			}
			if more {
				continue
			}
			if served == total {
				break
			}
			<-toBack
		}
		errc <- nil
	}()
	go func() { // front end: keep the ring as full as it goes
		rsp := make([]byte, blkifSlot)
		sent, got := uint64(0), uint64(0)
		for got < total {
			for sent < total && f.Free() > 0 {
				s, _ := f.NextRequest()
				binary.LittleEndian.PutUint64(s, sent)
				sent++
			}
			if f.Push() {
				ring(toBack)
			}
			for {
				ok, err := f.NextResponse(rsp)
				if err != nil {
					errc <- err
					return
				}
				if !ok {
					break
				}
				if v := binary.LittleEndian.Uint64(rsp); v != got {
					errc <- fmt.Errorf("response %d, want %d", v, got)
					return
				}
				got++
			}
			more, err := f.FinalCheck()
			if err != nil {
				errc <- err
				return
			}
			if more || got == total || (sent < total && f.Free() > 0) {
				continue
			}
			<-toFront
		}
		errc <- nil
	}()
	for i := 0; i < 2; i++ {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout(t):
			t.Fatal("lost wakeup: the two ends are both asleep")
		}
	}
}

// TestHeaderOffsetsWithGCC compares the geometry with the C headers.
func TestHeaderOffsetsWithGCC(t *testing.T) {
	testassets.NeedTools(t, "gcc")
	if _, err := os.Stat("/usr/include/xen/io/ring.h"); err != nil {
		testassets.Missing(t, "Xen public headers (libxen-dev): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "rings")
	cmd := exec.Command("gcc", "-Wall", "-D__XEN_INTERFACE_VERSION__=0x00040e00", "-o", bin, "testdata/rings.c")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			t.Fatalf("bad line %q", sc.Text())
		}
		v, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		got[f[0]] = v
	}
	want := map[string]int{
		"req_prod": OffReqProd, "req_event": OffReqEvent,
		"rsp_prod": OffRspProd, "rsp_event": OffRspEvent, "ring": HeaderSize,
		"blkif.slot": blkifSlot, "netif_tx.slot": netifTxSlot, "netif_rx.slot": netifRxSlot,
	}
	for _, r := range []struct {
		name string
		slot int
	}{{"blkif", blkifSlot}, {"netif_tx", netifTxSlot}, {"netif_rx", netifRxSlot}} {
		for k := 0; k <= MaxPageOrder; k++ {
			want[fmt.Sprintf("%s.size.%d", r.name, k)] = Slots(PageSize<<k, r.slot)
		}
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: not printed by rings.c", k)
		} else if g != v {
			t.Errorf("%s: C says %d, Go says %d", k, g, v)
		}
	}
}

func timeout(t *testing.T) <-chan time.Time {
	t.Helper()
	return time.After(30 * time.Second)
}
