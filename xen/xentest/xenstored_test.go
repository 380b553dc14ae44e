package xentest

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/ring"
)

// rawClient speaks the wire protocol by hand — header fields at the
// offsets of struct xsd_sockmsg — so the daemon is tested without
// package xenstore.
type rawClient struct {
	t        *testing.T
	page     []byte
	req, rsp ring.Stream
	ch       *Port
	buf      []byte
}

func newRaw(t *testing.T, opts ServeOptions) (*System, *rawClient) {
	t.Helper()
	sys, err := NewSystem(SystemConfig{GuestID: 2, Serve: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	req, rsp, err := ring.Store(sys.StorePage)
	if err != nil {
		t.Fatal(err)
	}
	return sys, &rawClient{t: t, page: sys.StorePage, req: req, rsp: rsp, ch: sys.StoreChan}
}

type rawMsg struct {
	typ, req, tx uint32
	payload      string
}

func (r *rawClient) sendBytes(b []byte) {
	r.t.Helper()
	ctx := ctxT(r.t)
	for len(b) > 0 {
		n, err := r.req.Produce(b)
		if err != nil {
			r.t.Fatal(err)
		}
		b = b[n:]
		r.ch.Notify()
		if len(b) > 0 {
			if err := r.ch.Wait(ctx); err != nil {
				r.t.Fatal(err)
			}
		}
	}
}

func (r *rawClient) send(typ, req, tx uint32, payload string) {
	r.t.Helper()
	h := make([]byte, 16)
	binary.LittleEndian.PutUint32(h[0:], typ)
	binary.LittleEndian.PutUint32(h[4:], req)
	binary.LittleEndian.PutUint32(h[8:], tx)
	binary.LittleEndian.PutUint32(h[12:], uint32(len(payload)))
	r.sendBytes(append(h, payload...))
}

// recv returns the next message, waiting for the daemon.
func (r *rawClient) recv() rawMsg {
	r.t.Helper()
	ctx := ctxT(r.t)
	tmp := make([]byte, 1024)
	for {
		if len(r.buf) >= 16 {
			n := int(binary.LittleEndian.Uint32(r.buf[12:]))
			if len(r.buf) >= 16+n {
				m := rawMsg{binary.LittleEndian.Uint32(r.buf[0:]), binary.LittleEndian.Uint32(r.buf[4:]),
					binary.LittleEndian.Uint32(r.buf[8:]), string(r.buf[16 : 16+n])}
				r.buf = r.buf[16+n:]
				return m
			}
		}
		n, err := r.rsp.Consume(tmp)
		if err != nil {
			r.t.Fatal(err)
		}
		if n > 0 {
			r.buf = append(r.buf, tmp[:n]...)
			r.ch.Notify()
			continue
		}
		if err := r.ch.Wait(ctx); err != nil {
			r.t.Fatalf("waiting for a reply: %v", err)
		}
	}
}

// call sends a request and returns the reply, checking the echoed ids.
func (r *rawClient) call(typ, req, tx uint32, payload string) rawMsg {
	r.t.Helper()
	r.send(typ, req, tx, payload)
	m := r.recv()
	if m.req != req || m.tx != tx {
		r.t.Fatalf("reply ids %d/%d to request %d/%d", m.req, m.tx, req, tx)
	}
	return m
}

func (r *rawClient) u32(off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.page[off])))
}

func expect(t *testing.T, m rawMsg, typ uint32, payload string) {
	t.Helper()
	if m.typ != typ || m.payload != payload {
		t.Fatalf("reply %d %q, want %d %q", m.typ, m.payload, typ, payload)
	}
}

func TestXenstoredBasics(t *testing.T) {
	sys, r := newRaw(t, ServeOptions{})
	expect(t, r.call(xsWrite, 1, 0, "data/k\x00value"), xsWrite, "OK\x00")
	if v, _ := sys.Store.Read("/local/domain/2/data/k"); v != "value" {
		t.Fatalf("relative write landed elsewhere: %q\n%s", v, sys.Store.Dump())
	}
	expect(t, r.call(xsRead, 2, 0, "/local/domain/2/data/k\x00"), xsRead, "value")
	expect(t, r.call(xsRead, 3, 0, "data/none\x00"), xsError, "ENOENT\x00")
	expect(t, r.call(xsWrite, 4, 0, "data/a/b\x00"), xsWrite, "OK\x00")
	expect(t, r.call(xsDirectory, 5, 0, "data\x00"), xsDirectory, "a\x00k\x00")
	expect(t, r.call(xsDirectory, 6, 0, "data/k\x00"), xsDirectory, "")
	expect(t, r.call(xsMkdir, 7, 0, "data/m/n\x00"), xsMkdir, "OK\x00")
	expect(t, r.call(xsRead, 8, 0, "data/m\x00"), xsRead, "")
	expect(t, r.call(xsRm, 9, 0, "data/m\x00"), xsRm, "OK\x00")
	expect(t, r.call(xsRm, 10, 0, "data/m\x00"), xsRm, "OK\x00")
	expect(t, r.call(xsRm, 11, 0, "data/m/n\x00"), xsError, "ENOENT\x00")
	expect(t, r.call(xsGetPerms, 12, 0, "data/k\x00"), xsGetPerms, "n2\x00")
	expect(t, r.call(xsSetPerms, 13, 0, "data/k\x00n2\x00r0\x00b7\x00"), xsSetPerms, "OK\x00")
	expect(t, r.call(xsGetPerms, 14, 0, "data/k\x00"), xsGetPerms, "n2\x00r0\x00b7\x00")
	expect(t, r.call(xsGetDomainPath, 15, 0, "9\x00"), xsGetDomainPath, "/local/domain/9\x00")
	// Malformed requests.
	for i, bad := range []rawMsg{
		{xsRead, 0, 0, "no-nul"},
		{xsRead, 0, 0, "two\x00args\x00"},
		{xsRead, 0, 0, "bad chars!\x00"},
		{xsRead, 0, 0, "/a//b\x00"},
		{xsRead, 0, 0, "/a/\x00"},
		{xsWrite, 0, 0, "no-separator"},
		{xsSetPerms, 0, 0, "data/k\x00q1\x00"},
		{999, 0, 0, ""},
		{xsTxEnd, 0, 0, "T\x00"},
	} {
		expect(t, r.call(bad.typ, uint32(100+i), 0, bad.payload), xsError, "EINVAL\x00")
	}
	// Permissions: the guest cannot read or write dom0's nodes.
	sys.Store.Write("/local/domain/0/secret", "s")
	expect(t, r.call(xsRead, 20, 0, "/local/domain/0/secret\x00"), xsError, "EACCES\x00")
	expect(t, r.call(xsWrite, 21, 0, "/local/domain/0/x\x00v"), xsError, "EACCES\x00")
	expect(t, r.call(xsSetPerms, 22, 0, "/local/domain/0/secret\x00n2\x00"), xsError, "EACCES\x00")
	sys.Store.SetPerms("/local/domain/0/secret", "n0", "r2")
	expect(t, r.call(xsRead, 23, 0, "/local/domain/0/secret\x00"), xsRead, "s")
	if st := sys.Conn.Stats(); st.Requests != 28 {
		t.Errorf("daemon counted %d requests", st.Requests)
	}
}

func TestXenstoredQuota(t *testing.T) {
	sys, r := newRaw(t, ServeOptions{})
	sys.Store.SetQuota(4, 0)
	expect(t, r.call(xsWrite, 1, 0, "q\x0012345"), xsError, "E2BIG\x00")
	expect(t, r.call(xsWrite, 2, 0, "q\x001234"), xsWrite, "OK\x00")
	sys.Store.SetQuota(0, sys.Store.ownedBy(2)+2)
	expect(t, r.call(xsWrite, 3, 0, "n1/n2\x00"), xsWrite, "OK\x00")
	expect(t, r.call(xsWrite, 4, 0, "n3\x00"), xsError, "EQUOTA\x00")
}

func (x *Xenstored) ownedBy(dom xen.DomID) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.db.owned(dom)
}

func TestXenstoredWatch(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run("after="+strconv.FormatBool(after), func(t *testing.T) {
			sys, r := newRaw(t, ServeOptions{EventAfterWatchReply: after})
			r.send(xsWatch, 1, 0, "w\x00tokA\x00")
			first, second := r.recv(), r.recv()
			if after {
				first, second = second, first
			}
			expect(t, first, xsWatchEvent, "w\x00tokA\x00")
			expect(t, second, xsWatch, "OK\x00")
			if first.req != 0 || first.tx != 0 {
				t.Errorf("event ids %d/%d, want 0/0", first.req, first.tx)
			}
			expect(t, r.call(xsWatch, 2, 0, "w\x00tokA\x00"), xsError, "EEXIST\x00")
			r.send(xsWatch, 3, 0, "/local/domain/2/w/x\x00tokB\x00")
			ev, rep := r.recv(), r.recv()
			if after {
				ev, rep = rep, ev
			}
			expect(t, ev, xsWatchEvent, "/local/domain/2/w/x\x00tokB\x00")
			expect(t, rep, xsWatch, "OK\x00")

			sys.Store.Write("/local/domain/2/w/x/y", "1")
			// Relative watch: relative path; absolute: absolute.
			got := []string{r.recv().payload, r.recv().payload}
			slices.Sort(got)
			if want := []string{"/local/domain/2/w/x/y\x00tokB\x00", "w/x/y\x00tokA\x00"}; !slices.Equal(got, want) {
				t.Fatalf("events %q, want %q", got, want)
			}
			// Removing an ancestor of a watch reports the watch path.
			sys.Store.Rm("/local/domain/2/w")
			got = []string{r.recv().payload, r.recv().payload}
			slices.Sort(got)
			if want := []string{"/local/domain/2/w/x\x00tokB\x00", "w\x00tokA\x00"}; !slices.Equal(got, want) {
				t.Fatalf("rm events %q, want %q", got, want)
			}
			expect(t, r.call(xsUnwatch, 4, 0, "w\x00tokA\x00"), xsUnwatch, "OK\x00")
			expect(t, r.call(xsUnwatch, 5, 0, "w\x00tokA\x00"), xsError, "ENOENT\x00")
			expect(t, r.call(xsResetWatches, 6, 0, "\x00"), xsResetWatches, "OK\x00")
			if w := sys.Conn.Watches(); len(w) != 0 {
				t.Fatalf("watches after RESET_WATCHES: %v", w)
			}
			sys.Store.Write("/local/domain/2/w", "quiet")
			// Nothing may arrive: the next message is this reply.
			expect(t, r.call(xsRead, 7, 0, "w\x00"), xsRead, "quiet")
		})
	}
}

func TestXenstoredTransactions(t *testing.T) {
	sys, r := newRaw(t, ServeOptions{})
	start := func(req uint32) uint32 {
		m := r.call(xsTxStart, req, 0, "\x00")
		id, err := strconv.ParseUint(strings.TrimSuffix(m.payload, "\x00"), 10, 32)
		if m.typ != xsTxStart || err != nil || id == 0 {
			t.Fatalf("TRANSACTION_START reply %d %q", m.typ, m.payload)
		}
		return uint32(id)
	}
	tx := start(1)
	expect(t, r.call(xsWrite, 2, tx, "t/a\x001"), xsWrite, "OK\x00")
	expect(t, r.call(xsRead, 3, tx, "t/a\x00"), xsRead, "1")
	expect(t, r.call(xsRead, 4, 0, "t/a\x00"), xsError, "ENOENT\x00")
	expect(t, r.call(xsTxEnd, 5, tx, "T\x00"), xsTxEnd, "OK\x00")
	expect(t, r.call(xsRead, 6, 0, "t/a\x00"), xsRead, "1")
	expect(t, r.call(xsRead, 7, tx, "t/a\x00"), xsError, "ENOENT\x00") // gone

	// Conflict: what the transaction read changes underneath.
	tx = start(8)
	expect(t, r.call(xsRead, 9, tx, "t/a\x00"), xsRead, "1")
	expect(t, r.call(xsWrite, 10, tx, "t/b\x002"), xsWrite, "OK\x00")
	sys.Store.Write("/local/domain/2/t/a", "changed")
	expect(t, r.call(xsTxEnd, 11, tx, "T\x00"), xsError, "EAGAIN\x00")
	if sys.Store.Exists("/local/domain/2/t/b") {
		t.Fatal("conflicting transaction applied")
	}
	// No conflict: an unrelated node changes.
	tx = start(12)
	expect(t, r.call(xsRead, 13, tx, "t/a\x00"), xsRead, "changed")
	expect(t, r.call(xsWrite, 14, tx, "t/c\x003"), xsWrite, "OK\x00")
	sys.Store.Write("/local/domain/2/elsewhere", "x")
	expect(t, r.call(xsTxEnd, 15, tx, "T\x00"), xsTxEnd, "OK\x00")
	// Forced conflict, then abort.
	sys.Store.FailCommits(1)
	tx = start(16)
	expect(t, r.call(xsTxEnd, 17, tx, "T\x00"), xsError, "EAGAIN\x00")
	tx = start(18)
	expect(t, r.call(xsWrite, 19, tx, "t/d\x00"), xsWrite, "OK\x00")
	expect(t, r.call(xsTxEnd, 20, tx, "F\x00"), xsTxEnd, "OK\x00")
	if sys.Store.Exists("/local/domain/2/t/d") {
		t.Fatal("aborted transaction applied")
	}
	expect(t, r.call(xsTxStart, 21, 5, "\x00"), xsError, "ENOENT\x00") // no such transaction 5
	tx = start(22)
	expect(t, r.call(xsTxEnd, 23, tx, "X\x00"), xsError, "EINVAL\x00")
	if sys.Conn.Transactions() != 1 {
		t.Error("a malformed TRANSACTION_END ended the transaction")
	}
	expect(t, r.call(xsTxEnd, 24, tx, "F\x00"), xsTxEnd, "OK\x00")
	if sys.Store.Commits() != 6 || sys.Conn.Transactions() != 0 {
		t.Errorf("commits %d, open %d", sys.Store.Commits(), sys.Conn.Transactions())
	}
}

func TestXenstoredTransactionWatches(t *testing.T) {
	sys, r := newRaw(t, ServeOptions{})
	lw := sys.Store.Watch("/local/domain/2/tw")
	defer lw.Close()
	if p := <-lw.C; p != "/local/domain/2/tw" {
		t.Fatalf("initial local event %q", p)
	}
	m := r.call(xsTxStart, 1, 0, "\x00")
	tx, _ := strconv.Atoi(strings.TrimSuffix(m.payload, "\x00"))
	expect(t, r.call(xsWrite, 2, uint32(tx), "tw/a\x001"), xsWrite, "OK\x00")
	select {
	case p := <-lw.C:
		t.Fatalf("event %q before commit", p)
	case <-time.After(20 * time.Millisecond):
	}
	expect(t, r.call(xsTxEnd, 3, uint32(tx), "T\x00"), xsTxEnd, "OK\x00")
	if p := <-lw.C; p != "/local/domain/2/tw/a" {
		t.Fatalf("event at commit %q", p)
	}
}

func TestXenstoredOversizedRequest(t *testing.T) {
	_, r := newRaw(t, ServeOptions{ErrorField: true})
	if r.u32(xen.XenstoreOffServerFeatures) != xen.XenstoreFeatureError {
		t.Fatalf("features %#x", r.u32(xen.XenstoreOffServerFeatures))
	}
	h := make([]byte, 16)
	binary.LittleEndian.PutUint32(h[0:], xsRead)
	binary.LittleEndian.PutUint32(h[12:], 4097)
	r.sendBytes(h)
	ctx := ctxT(t)
	for r.u32(xen.XenstoreOffError) == 0 {
		if err := r.ch.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if e := r.u32(xen.XenstoreOffError); e != xen.XenstoreErrorProto {
		t.Fatalf("error field %d", e)
	}
}

func TestXenstoredReconnect(t *testing.T) {
	const base = 0xfffffff0
	sys, r := newRaw(t, ServeOptions{Reconnect: true, InitialIndex: base})
	if r.u32(xen.XenstoreOffServerFeatures) != xen.XenstoreFeatureReconnection {
		t.Fatalf("features %#x", r.u32(xen.XenstoreOffServerFeatures))
	}
	for _, off := range []int{xen.XenstoreOffReqCons, xen.XenstoreOffReqProd, xen.XenstoreOffRspCons, xen.XenstoreOffRspProd} {
		if r.u32(off) != base {
			t.Fatalf("index at %d = %#x, want %#x", off, r.u32(off), uint32(base))
		}
	}
	r.send(xsWatch, 1, 0, "w\x00t\x00")
	r.recv()
	r.recv()
	expect(t, r.call(xsTxStart, 2, 0, "\x00"), xsTxStart, "1\x00")
	sys.Conn.Hold()
	r.send(xsRead, 3, 0, "domid\x00") // in flight, never answered
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.page[xen.XenstoreOffConnection])), xen.XenstoreReconnect)
	r.ch.Notify()
	ctx := ctxT(t)
	for r.u32(xen.XenstoreOffConnection) != xen.XenstoreConnected {
		if err := r.ch.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sys.Conn.Release()
	for _, off := range []int{xen.XenstoreOffReqCons, xen.XenstoreOffReqProd, xen.XenstoreOffRspCons, xen.XenstoreOffRspProd} {
		if r.u32(off) != base {
			t.Fatalf("after reset, index at %d = %#x", off, r.u32(off))
		}
	}
	if len(sys.Conn.Watches()) != 0 || sys.Conn.Transactions() != 0 || sys.Conn.Stats().Resets != 1 {
		t.Fatalf("after reset: watches %v, %d transactions", sys.Conn.Watches(), sys.Conn.Transactions())
	}
	// The stream starts afresh; the dropped request gets no reply.
	r.buf = nil
	expect(t, r.call(xsRead, 4, 0, "domid\x00"), xsRead, "2")
}

func TestLocalWatchAndDump(t *testing.T) {
	x := NewXenstored()
	lw := x.Watch("/a")
	if p := <-lw.C; p != "/a" {
		t.Fatalf("initial %q", p)
	}
	x.Write("/a/b", "1")
	x.Write("/ab", "not under /a")
	x.Mkdir("/a/b") // exists: no event
	x.SetPerms("/a/b", "n0")
	x.Rm("/a")
	var got []string
	for range 3 {
		got = append(got, <-lw.C)
	}
	if want := []string{"/a/b", "/a/b", "/a"}; !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	lw.Close()
	if _, open := <-lw.C; open {
		t.Fatal("C open after Close")
	}
	if d := x.Dump(); d != "/=\"\"\n/ab=\"not under /a\"\n" {
		t.Fatalf("Dump = %q", d)
	}
	if err := x.Write("relative", "x"); !errors.Is(err, xen.EINVAL) {
		t.Errorf("relative in-process path: %v", err)
	}
	if _, err := x.Read("/nothing"); !errors.Is(err, xen.ENOENT) {
		t.Errorf("missing: %v", err)
	}
	if err := x.Rm("/"); !errors.Is(err, xen.EINVAL) {
		t.Errorf("rm /: %v", err)
	}
}
