package xenstore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

// safety bounds every test against a hang; it is never a speed check.
const safety = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, opts xentest.ServeOptions) (*xentest.System, *xenstore.Client) {
	t.Helper()
	sys, err := xentest.NewSystem(xentest.SystemConfig{GuestID: 3, Serve: opts})
	if err != nil {
		t.Fatal(err)
	}
	c, err := xenstore.New(sys.StorePage, sys.StoreChan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), safety)
		defer cancel()
		c.Close(ctx)
		sys.Close()
	})
	return sys, c
}

func u32(page []byte, off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&page[off])))
}

// ringIdle reports whether both streams of the page are empty.
func ringIdle(page []byte) bool {
	return u32(page, xen.XenstoreOffReqCons) == u32(page, xen.XenstoreOffReqProd) &&
		u32(page, xen.XenstoreOffRspCons) == u32(page, xen.XenstoreOffRspProd)
}

func TestBasicOperations(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{})
	ctx := testCtx(t)

	if err := c.Write(ctx, "data/greeting", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	// Relative paths live under /local/domain/3.
	if v, err := sys.Store.Read("/local/domain/3/data/greeting"); err != nil || v != "hello" {
		t.Fatalf("store has %q, %v", v, err)
	}
	if v, err := c.Read(ctx, "/local/domain/3/data/greeting"); err != nil || string(v) != "hello" {
		t.Fatalf("Read = %q, %v", v, err)
	}
	if err := c.Write(ctx, "data/empty", nil); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Read(ctx, "data/empty"); err != nil || len(v) != 0 {
		t.Fatalf("empty value: %q, %v", v, err)
	}
	bin := []byte{0, 1, 2, 0, 255}
	if err := c.Write(ctx, "data/bin", bin); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Read(ctx, "data/bin"); !bytes.Equal(v, bin) {
		t.Fatalf("binary value %v", v)
	}
	if err := c.Mkdir(ctx, "data/dir/sub"); err != nil {
		t.Fatal(err)
	}
	names, err := c.Directory(ctx, "data")
	if err != nil || !slices.Equal(names, []string{"bin", "dir", "empty", "greeting"}) {
		t.Fatalf("Directory = %v, %v", names, err)
	}
	// Empty replies: a leaf's children, a node made by mkdir.
	if names, err := c.Directory(ctx, "data/dir/sub"); err != nil || len(names) != 0 {
		t.Fatalf("Directory of a leaf = %v, %v", names, err)
	}
	if v, err := c.Read(ctx, "data/dir"); err != nil || len(v) != 0 {
		t.Fatalf("Read of a mkdir node = %q, %v", v, err)
	}
	if n, err := xenstore.ReadUint(ctx, c, "domid", 0xffff); err != nil || n != 3 {
		t.Fatalf("ReadUint(domid) = %d, %v", n, err)
	}
	if _, err := xenstore.ReadUint(ctx, c, "data/greeting", 10); !errors.Is(err, xenstore.ErrInvalid) {
		t.Fatalf("ReadUint of text: %v", err)
	}
	if err := c.Rm(ctx, "data/dir"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rm(ctx, "data/dir"); err != nil {
		t.Fatalf("rm of a missing node with a parent: %v", err)
	}
	if err := c.Rm(ctx, "data/nothing/below"); !errors.Is(err, xenstore.ErrNotExist) {
		t.Fatalf("rm below a missing parent: %v", err)
	}

	perms, err := c.GetPerms(ctx, "data/greeting")
	if err != nil || len(perms) != 1 || perms[0] != (xenstore.Perm{Dom: 3, Access: xenstore.AccessNone}) {
		t.Fatalf("GetPerms = %v, %v", perms, err)
	}
	want := []xenstore.Perm{{Dom: 3, Access: xenstore.AccessNone}, {Dom: 0, Access: xenstore.AccessRead}}
	if err := c.SetPerms(ctx, "data/greeting", want); err != nil {
		t.Fatal(err)
	}
	if got, _ := sys.Store.GetPerms("/local/domain/3/data/greeting"); !slices.Equal(got, []string{"n3", "r0"}) {
		t.Fatalf("perms in store %v", got)
	}
}

func TestErrors(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{})
	ctx := testCtx(t)
	if err := sys.Store.Write("/local/domain/0/secret", "x"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		op   func() error
		is   []error
	}{
		{"missing node", func() error { _, err := c.Read(ctx, "no/such/node"); return err },
			[]error{xenstore.ErrNotExist, fs.ErrNotExist, xen.ENOENT}},
		{"other domain's node", func() error { _, err := c.Read(ctx, "/local/domain/0/secret"); return err },
			[]error{xenstore.ErrPermission, fs.ErrPermission, xen.EACCES}},
		{"write to other domain", func() error { return c.Write(ctx, "/local/domain/0/x", nil) },
			[]error{xenstore.ErrPermission}},
		{"bad characters", func() error { _, err := c.Read(ctx, "bad path!"); return err },
			[]error{xenstore.ErrInvalid, xen.EINVAL}},
		{"trailing slash", func() error { return c.Write(ctx, "a/", nil) },
			[]error{xenstore.ErrInvalid}},
		{"empty path", func() error { _, err := c.Read(ctx, ""); return err },
			[]error{xenstore.ErrBadPath}},
		{"NUL in path", func() error { return c.Write(ctx, "a\x00b", nil) },
			[]error{xenstore.ErrBadPath}},
		{"payload too long", func() error { return c.Write(ctx, "big", make([]byte, 4096)) },
			[]error{xenstore.ErrTooLong}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if err == nil {
				t.Fatal("no error")
			}
			for _, target := range tc.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
		})
	}
	if !ringIdle(sys.StorePage) {
		t.Error("ring not idle after the errors")
	}
}

func TestErrorNames(t *testing.T) {
	// Every name xs_wire.h lists, plus oxenstored's EQUOTA and an
	// unknown one, sent verbatim as ERROR replies.
	for _, tc := range []struct {
		name string
		want error
	}{
		{"ENOENT", xenstore.ErrNotExist}, {"EACCES", xenstore.ErrPermission}, {"EAGAIN", xenstore.ErrAgain},
		{"EINVAL", xenstore.ErrInvalid}, {"EEXIST", xenstore.ErrExist}, {"EQUOTA", xenstore.ErrQuota},
		{"E2BIG", xenstore.ErrTooBig}, {"EISDIR", xenstore.ErrIsDir}, {"ENOMEM", xenstore.ErrNoMem},
		{"ENOSPC", xenstore.ErrNoSpace}, {"EIO", xenstore.ErrIO}, {"ENOTEMPTY", xenstore.ErrNotEmpty},
		{"ENOSYS", xenstore.ErrNoSys}, {"EROFS", xenstore.ErrReadOnly}, {"EBUSY", xenstore.ErrBusy},
		{"EISCONN", xenstore.ErrIsConn}, {"EPERM", xenstore.ErrPerm}, {"EWHATEVER", xenstore.Errno("EWHATEVER")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replyTo(t, func(ctx context.Context, c *xenstore.Client) error {
				_, err := c.Read(ctx, "x")
				return err
			}, func(h xenstore.Header) []byte {
				return msg(xenstore.TypeError, h.ReqID, 0, tc.name+"\x00")
			})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Errorf("message %q does not name %s", err, tc.name)
			}
		})
	}
}

func msg(typ xenstore.MsgType, reqID, txID uint32, payload string) []byte {
	b := xenstore.AppendHeader(nil, xenstore.Header{Type: typ, ReqID: reqID, TxID: txID, Len: uint32(len(payload))})
	return append(b, payload...)
}

// peekRequest returns the header of the oldest request the (held)
// daemon has not consumed.
func peekRequest(page []byte) (xenstore.Header, bool) {
	cons, prod := u32(page, xen.XenstoreOffReqCons), u32(page, xen.XenstoreOffReqProd)
	if prod-cons < 16 {
		return xenstore.Header{}, false
	}
	var b [16]byte
	for i := range b {
		b[i] = page[(cons+uint32(i))&1023]
	}
	h, err := xenstore.ParseHeader(b[:])
	return h, err == nil
}

// replyTo runs op against a held daemon, waits for the request to reach
// the ring, answers it with the raw bytes reply builds, and returns op's
// error. The daemon then consumes the request normally; its own reply
// arrives for an id nobody waits for any more and is dropped.
func replyTo(t *testing.T, op func(context.Context, *xenstore.Client) error, reply func(xenstore.Header) []byte) (*xenstore.Client, error) {
	t.Helper()
	sys, c := newClient(t, xentest.ServeOptions{})
	ctx := testCtx(t)
	sys.Conn.Hold()
	errc := make(chan error, 1)
	go func() { errc <- op(ctx, c) }()
	var h xenstore.Header
	for {
		var ok bool
		if h, ok = peekRequest(sys.StorePage); ok {
			break
		}
		// The client notifies dom0 after writing; wait for that.
		time.Sleep(time.Millisecond)
	}
	sys.Conn.Inject(reply(h))
	err := <-errc
	sys.Conn.Release()
	return c, err
}

func TestConcurrentRequests(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{})
	ctx := testCtx(t)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("conc/k%d", i)
			val := strings.Repeat(string(rune('a'+i%26)), 10+i*7)
			if err := c.Write(ctx, key, []byte(val)); err != nil {
				errs <- err
				return
			}
			got, err := c.Read(ctx, key)
			if err != nil {
				errs <- err
				return
			}
			if string(got) != val {
				errs <- fmt.Errorf("%s: got %q, want %q", key, got, val)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	names, err := c.Directory(ctx, "conc")
	if err != nil || len(names) != n {
		t.Fatalf("Directory: %d names, %v", len(names), err)
	}
	st := c.Stats()
	if st.Replies != st.Requests || st.Dropped != 0 || st.Malformed != 0 {
		t.Errorf("stats %+v", st)
	}
	if sys.Conn.Stats().Requests != int(st.Requests) {
		t.Errorf("daemon saw %d requests, client sent %d", sys.Conn.Stats().Requests, st.Requests)
	}
}

// TestRingWrap moves payloads close to the 4096-byte limit through the
// 1024-byte rings, with indices starting just below 2^32 so that they
// wrap too.
func TestRingWrap(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{InitialIndex: 0xffffff00})
	ctx := testCtx(t)
	for i, size := range []int{4096 - len("big/v0") - 1, 4000, 1023, 1024, 1025, 3333} {
		key := fmt.Sprintf("big/v%d", i)
		val := make([]byte, size)
		for j := range val {
			val[j] = byte(j*7 + i)
		}
		if err := c.Write(ctx, key, val); err != nil {
			t.Fatalf("write %d bytes: %v", size, err)
		}
		got, err := c.Read(ctx, key)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("read %d bytes back: %d bytes, %v", size, len(got), err)
		}
	}
	if p := u32(sys.StorePage, xen.XenstoreOffReqProd); p >= 0xffffff00 {
		t.Errorf("request index %#x did not wrap", p)
	}
}

func TestWatch(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("event after reply=%v", after), func(t *testing.T) {
			sys, c := newClient(t, xentest.ServeOptions{EventAfterWatchReply: after})
			ctx := testCtx(t)
			w, err := c.Watch(ctx, "watched")
			if err != nil {
				t.Fatal(err)
			}
			if p := <-w.C; p != "watched" {
				t.Fatalf("initial event %q", p)
			}
			abs, err := c.Watch(ctx, "/local/domain/3/watched/a")
			if err != nil {
				t.Fatal(err)
			}
			if p := <-abs.C; p != "/local/domain/3/watched/a" {
				t.Fatalf("initial absolute event %q", p)
			}
			if err := sys.Store.Write("/local/domain/3/watched/a/b", "1"); err != nil {
				t.Fatal(err)
			}
			// Relative watch, relative event path; absolute stays absolute.
			if p := <-w.C; p != "watched/a/b" {
				t.Fatalf("event %q", p)
			}
			if p := <-abs.C; p != "/local/domain/3/watched/a/b" {
				t.Fatalf("absolute event %q", p)
			}
			if err := c.Write(ctx, "elsewhere", nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Rm(ctx, "watched"); err != nil {
				t.Fatal(err)
			}
			if p := <-w.C; p != "watched" {
				t.Fatalf("rm event %q", p)
			}
			// Removal of an ancestor reports the watched path itself.
			if p := <-abs.C; p != "/local/domain/3/watched/a" {
				t.Fatalf("ancestor rm event %q", p)
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if _, open := <-w.C; open {
				t.Error("C still open after Close")
			}
			if ws := sys.Conn.Watches(); len(ws) != 1 || !strings.HasPrefix(ws[0], "/local/domain/3/watched/a ") {
				t.Errorf("daemon watches after one Close: %v", ws)
			}
		})
	}
}

// TestWatchSlowConsumer: a consumer that does not read never blocks the
// reader; replies keep flowing, and the backlog collapses into the
// watched path.
func TestWatchSlowConsumer(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{})
	ctx := testCtx(t)
	w, err := c.Watch(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := sys.Store.Write(fmt.Sprintf("/local/domain/3/busy/n%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	// A request still completes although nobody reads w.C.
	if _, err := c.Read(ctx, "domid"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for p := range w.C {
		got = append(got, p)
		if p == "busy/n299" {
			break
		}
	}
	if len(got) > 257 || !slices.Contains(got, "busy") {
		t.Errorf("%d events, first %q: backlog not collapsed", len(got), got[0])
	}
}

func TestTransactions(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{})
	ctx := testCtx(t)

	t.Run("commit", func(t *testing.T) {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, "tx/a", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if v, err := tx.Read(ctx, "tx/a"); err != nil || string(v) != "1" {
			t.Fatalf("read in tx: %q %v", v, err)
		}
		if sys.Store.Exists("/local/domain/3/tx/a") {
			t.Fatal("write visible before commit")
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if v, _ := sys.Store.Read("/local/domain/3/tx/a"); v != "1" {
			t.Fatalf("after commit: %q", v)
		}
		if err := tx.Commit(ctx); !errors.Is(err, xenstore.ErrTxDone) {
			t.Fatalf("second commit: %v", err)
		}
		if _, err := tx.Read(ctx, "tx/a"); !errors.Is(err, xenstore.ErrTxDone) {
			t.Fatalf("read after commit: %v", err)
		}
	})
	t.Run("abort", func(t *testing.T) {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tx.Write(ctx, "tx/b", []byte("2"))
		if err := tx.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if sys.Store.Exists("/local/domain/3/tx/b") {
			t.Fatal("aborted write applied")
		}
	})
	t.Run("real conflict", func(t *testing.T) {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Read(ctx, "tx/a"); err != nil {
			t.Fatal(err)
		}
		tx.Write(ctx, "tx/c", []byte("3"))
		// Someone else changes what the transaction read.
		sys.Store.Write("/local/domain/3/tx/a", "changed")
		if err := tx.Commit(ctx); !errors.Is(err, xenstore.ErrAgain) {
			t.Fatalf("commit after conflicting write: %v", err)
		}
		if sys.Store.Exists("/local/domain/3/tx/c") {
			t.Fatal("conflicting transaction applied")
		}
	})
	t.Run("transact retries a forced conflict", func(t *testing.T) {
		sys.Store.FailCommits(2)
		runs := 0
		err := c.Transact(ctx, func(tx *xenstore.Tx) error {
			runs++
			v, err := xenstore.ReadUint(ctx, tx, "tx/counter", 1<<32)
			if errors.Is(err, xenstore.ErrNotExist) {
				v, err = 0, nil
			}
			if err != nil {
				return err
			}
			return xenstore.WriteString(ctx, tx, "tx/counter", fmt.Sprint(v+1))
		})
		if err != nil || runs != 3 {
			t.Fatalf("Transact = %v after %d runs, want nil after 3", err, runs)
		}
		if v, _ := sys.Store.Read("/local/domain/3/tx/counter"); v != "1" {
			t.Fatalf("counter = %q, want 1 (applied exactly once)", v)
		}
	})
	t.Run("transact retries a real conflict", func(t *testing.T) {
		runs := 0
		err := c.Transact(ctx, func(tx *xenstore.Tx) error {
			runs++
			if _, err := tx.Read(ctx, "tx/counter"); err != nil {
				return err
			}
			if runs == 1 {
				sys.Store.Write("/local/domain/3/tx/counter", "41")
			}
			return xenstore.WriteString(ctx, tx, "tx/seen", fmt.Sprint(runs))
		})
		if err != nil || runs != 2 {
			t.Fatalf("Transact = %v after %d runs", err, runs)
		}
	})
	t.Run("transact gives up", func(t *testing.T) {
		sys.Store.FailCommits(1000)
		defer sys.Store.FailCommits(0)
		runs := 0
		err := c.Transact(ctx, func(tx *xenstore.Tx) error { runs++; return nil })
		if !errors.Is(err, xenstore.ErrRetries) || !errors.Is(err, xenstore.ErrAgain) || runs != xenstore.MaxTxAttempts {
			t.Fatalf("Transact = %v after %d runs", err, runs)
		}
	})
	t.Run("fn error aborts", func(t *testing.T) {
		boom := errors.New("boom")
		before := sys.Conn.Transactions()
		err := c.Transact(ctx, func(tx *xenstore.Tx) error {
			tx.Write(ctx, "tx/never", nil)
			return boom
		})
		if !errors.Is(err, boom) || sys.Store.Exists("/local/domain/3/tx/never") || sys.Conn.Transactions() != before {
			t.Fatalf("Transact = %v", err)
		}
	})
}

func TestClose(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{})
	ctx := testCtx(t)
	w, err := c.Watch(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Watch(ctx, "/local/domain/3"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	// A request abandoned by its caller while xenstored is busy.
	sys.Conn.Hold()
	short, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := c.Read(short, "domid"); done <- err }()
	for {
		if _, ok := peekRequest(sys.StorePage); ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned read: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close(ctx) }()
	sys.Conn.Release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ws := sys.Conn.Watches(); len(ws) != 0 {
		t.Errorf("watches left: %v", ws)
	}
	if n := sys.Conn.Transactions(); n != 0 {
		t.Errorf("%d transactions left", n)
	}
	if !ringIdle(sys.StorePage) {
		t.Error("ring not idle")
	}
	if _, open := <-w.C; open {
		t.Error("watch channel open after Close")
	}
	if _, err := c.Read(ctx, "domid"); !errors.Is(err, xenstore.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// A new client on the same ring works: the next kernel's view.
	c2, err := xenstore.New(sys.StorePage, sys.StoreChan)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c2.Read(ctx, "domid"); err != nil || string(v) != "3" {
		t.Fatalf("second client: %q, %v", v, err)
	}
	if err := c2.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCloseTimesOut(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{})
	ctx := testCtx(t)
	sys.Conn.Hold()
	defer sys.Conn.Release()
	short, cancel := context.WithCancel(ctx)
	go c.Read(short, "domid")
	for {
		if _, ok := peekRequest(sys.StorePage); ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	expired, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := c.Close(expired); !errors.Is(err, xenstore.ErrNotIdle) {
		t.Fatalf("Close with a request in flight: %v", err)
	}
}

func TestReset(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{Reconnect: true, InitialIndex: 77})
	ctx := testCtx(t)
	w, err := c.Watch(ctx, "rw")
	if err != nil {
		t.Fatal(err)
	}
	<-w.C
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sys.Conn.Hold()
	inflight := make(chan error, 1)
	go func() { _, err := c.Read(ctx, "domid"); inflight <- err }()
	for {
		if _, ok := peekRequest(sys.StorePage); ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	resetDone := make(chan error, 1)
	go func() { resetDone <- c.Reset(ctx) }()
	if err := <-inflight; !errors.Is(err, xenstore.ErrReset) {
		t.Fatalf("in-flight request: %v, want ErrReset", err)
	}
	sys.Conn.Release()
	if err := <-resetDone; err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if sys.Conn.Stats().Resets != 1 || c.Stats().Resets != 1 {
		t.Fatalf("resets: daemon %d client %d", sys.Conn.Stats().Resets, c.Stats().Resets)
	}
	if err := tx.Write(ctx, "x", nil); !errors.Is(err, xenstore.ErrReset) {
		t.Fatalf("write in a transaction from before the reset: %v", err)
	}
	if v, err := c.Read(ctx, "domid"); err != nil || string(v) != "3" {
		t.Fatalf("after reset: %q %v", v, err)
	}
	// The watch was registered again and fires again.
	if p := <-w.C; p != "rw" {
		t.Fatalf("re-registration event %q", p)
	}
	sys.Store.Write("/local/domain/3/rw/x", "1")
	if p := <-w.C; p != "rw/x" {
		t.Fatalf("event after reset %q", p)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Error("commit of a transaction lost in the reset succeeded")
	}
}

func TestResetUnsupported(t *testing.T) {
	_, c := newClient(t, xentest.ServeOptions{})
	if err := c.Reset(testCtx(t)); !errors.Is(err, xenstore.ErrNoReconnect) {
		t.Fatalf("Reset = %v", err)
	}
}

// TestStartDuringReconnect: a client that finds the connection field
// already at "reconnecting" waits for xenstored to finish it.
func TestStartDuringReconnect(t *testing.T) {
	sys, err := xentest.NewSystem(xentest.SystemConfig{GuestID: 3, Serve: xentest.ServeOptions{Reconnect: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	sys.Conn.Hold() // keep xenstored from seeing it before the client starts
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&sys.StorePage[xen.XenstoreOffConnection])), xen.XenstoreReconnect)
	c, err := xenstore.New(sys.StorePage, sys.StoreChan)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	defer c.Close(ctx)
	sys.Conn.Release()
	if v, err := c.Read(ctx, "domid"); err != nil || string(v) != "3" {
		t.Fatalf("Read = %q, %v", v, err)
	}
	if sys.Conn.Stats().Resets != 1 {
		t.Errorf("daemon resets %d", sys.Conn.Stats().Resets)
	}
}

// TestStaleResponses: replies left in the ring by a previous user are
// skipped when xenstored cannot reconnect, and cause a reset when it can.
func TestStaleResponses(t *testing.T) {
	for _, reconnect := range []bool{false, true} {
		t.Run(fmt.Sprintf("reconnect=%v", reconnect), func(t *testing.T) {
			sys, err := xentest.NewSystem(xentest.SystemConfig{GuestID: 3, Serve: xentest.ServeOptions{Reconnect: reconnect}})
			if err != nil {
				t.Fatal(err)
			}
			defer sys.Close()
			sys.Conn.Inject(msg(xenstore.TypeRead, 1, 0, "stale"))
			for u32(sys.StorePage, xen.XenstoreOffRspProd) == 0 {
				time.Sleep(time.Millisecond)
			}
			c, err := xenstore.New(sys.StorePage, sys.StoreChan)
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			defer c.Close(ctx)
			if v, err := c.Read(ctx, "domid"); err != nil || string(v) != "3" {
				t.Fatalf("Read = %q, %v", v, err)
			}
			if st := c.Stats(); st.Dropped != 0 {
				t.Errorf("stale reply reached the dispatcher: %+v", st)
			}
			if got := sys.Conn.Stats().Resets; got != map[bool]int{false: 0, true: 1}[reconnect] {
				t.Errorf("daemon resets %d", got)
			}
		})
	}
}

func TestHostileReplies(t *testing.T) {
	read := func(ctx context.Context, c *xenstore.Client) error {
		_, err := c.Read(ctx, "x")
		return err
	}
	for _, tc := range []struct {
		name  string
		reply func(h xenstore.Header) []byte
		want  error
	}{
		{"wrong type", func(h xenstore.Header) []byte { return msg(xenstore.TypeWrite, h.ReqID, 0, "OK\x00") }, xenstore.ErrProtocol},
		{"unknown type", func(h xenstore.Header) []byte { return msg(999, h.ReqID, 0, "") }, xenstore.ErrProtocol},
		{"wrong transaction", func(h xenstore.Header) []byte { return msg(xenstore.TypeRead, h.ReqID, 5, "v") }, xenstore.ErrProtocol},
		{"error without NUL", func(h xenstore.Header) []byte { return msg(xenstore.TypeError, h.ReqID, 0, "ENOENT") }, xenstore.ErrProtocol},
		{"error not a name", func(h xenstore.Header) []byte {
			return msg(xenstore.TypeError, h.ReqID, 0, "rm -rf /\x00")
		}, xenstore.ErrProtocol},
		{"two error names", func(h xenstore.Header) []byte {
			return msg(xenstore.TypeError, h.ReqID, 0, "ENOENT\x00EACCES\x00")
		}, xenstore.ErrProtocol},
		{"unknown id first", func(h xenstore.Header) []byte {
			return append(msg(xenstore.TypeRead, h.ReqID+1000, 0, "nobody"), msg(xenstore.TypeRead, h.ReqID, 0, "mine")...)
		}, nil},
		{"events interleaved", func(h xenstore.Header) []byte {
			b := msg(xenstore.TypeWatchEvent, 0, 0, "a\x00nosuchtoken\x00")
			b = append(b, msg(xenstore.TypeWatchEvent, 0, 0, "malformed")...)
			return append(b, msg(xenstore.TypeRead, h.ReqID, 0, "mine")...)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := replyTo(t, read, tc.reply)
			if tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// The connection keeps working.
			if _, err := c.Read(testCtx(t), "domid"); err != nil {
				t.Fatalf("next request: %v", err)
			}
		})
	}
}

// TestOversizedReply: a length above 4096 desynchronises the stream; the
// client fails everything clearly, and recovers by a reset when it can.
func TestOversizedReply(t *testing.T) {
	for _, reconnect := range []bool{false, true} {
		t.Run(fmt.Sprintf("reconnect=%v", reconnect), func(t *testing.T) {
			sys, c := newClient(t, xentest.ServeOptions{Reconnect: reconnect})
			ctx := testCtx(t)
			sys.Conn.Hold()
			errc := make(chan error, 1)
			go func() { _, err := c.Read(ctx, "x"); errc <- err }()
			for {
				if _, ok := peekRequest(sys.StorePage); ok {
					break
				}
				time.Sleep(time.Millisecond)
			}
			bad := xenstore.AppendHeader(nil, xenstore.Header{Type: xenstore.TypeRead, ReqID: 1, Len: 1 << 30})
			sys.Conn.Inject(bad)
			err := <-errc
			sys.Conn.Release()
			if reconnect {
				if !errors.Is(err, xenstore.ErrReset) {
					t.Fatalf("in-flight: %v, want ErrReset", err)
				}
				if v, err := c.Read(ctx, "domid"); err != nil || string(v) != "3" {
					t.Fatalf("after recovery: %q %v", v, err)
				}
				return
			}
			if !errors.Is(err, xenstore.ErrProtocol) {
				t.Fatalf("in-flight: %v, want ErrProtocol", err)
			}
			if _, err := c.Read(ctx, "domid"); !errors.Is(err, xenstore.ErrProtocol) {
				t.Fatalf("later request on a broken stream: %v", err)
			}
			if st := c.Stats(); st.Malformed != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestServerErrorIndicator(t *testing.T) {
	sys, c := newClient(t, xentest.ServeOptions{ErrorField: true})
	ctx := testCtx(t)
	if _, err := c.Read(ctx, "domid"); err != nil {
		t.Fatal(err)
	}
	sys.Conn.Fail(xen.XenstoreErrorProto)
	for {
		_, err := c.Read(ctx, "domid")
		if errors.Is(err, xenstore.ErrServer) {
			break
		}
		if err != nil {
			t.Fatalf("Read = %v, want ErrServer", err)
		}
		// The client noticed nothing yet: the read raced the flag.
	}
}

func TestHeaderLayout(t *testing.T) {
	b := xenstore.AppendHeader(nil, xenstore.Header{Type: xenstore.TypeWatchEvent, ReqID: 0x01020304, TxID: 5, Len: 6})
	want := []byte{15, 0, 0, 0, 4, 3, 2, 1, 5, 0, 0, 0, 6, 0, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("header bytes %v, want %v (xs_wire.h xsd_sockmsg)", b, want)
	}
	if binary.LittleEndian.Uint32(b[12:]) != 6 {
		t.Fatal("len not at 12")
	}
}
