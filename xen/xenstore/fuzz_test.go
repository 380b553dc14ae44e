package xenstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/xen/ring"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

// FuzzClientReplies plays a hostile xenstored: with two requests in
// flight (a READ and a DIRECTORY) and a watch being set up, the fuzzer's
// bytes, followed by fill copies of fillByte, are the entire response
// stream. Whatever they are, the client must not panic, every call must
// return once its context ends, and Close must return. The raw part is
// kept short because the fuzzer minimises inputs in quadratic time; the
// fill reaches payloads of several kilobytes and wraps the ring.
func FuzzClientReplies(f *testing.F) {
	m := func(typ xenstore.MsgType, req, tx uint32, payload string) []byte {
		return append(xenstore.AppendHeader(nil, xenstore.Header{Type: typ, ReqID: req, TxID: tx, Len: uint32(len(payload))}), payload...)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	f.Add(cat(m(xenstore.TypeRead, 1, 0, "v"), m(xenstore.TypeDirectory, 2, 0, "a\x00b\x00")), uint16(0), byte(0))
	f.Add(cat(m(xenstore.TypeError, 2, 0, "ENOENT\x00"), m(xenstore.TypeError, 1, 0, "EACCES\x00")), uint16(0), byte(0))
	f.Add(cat(m(xenstore.TypeWatchEvent, 0, 0, "w\x00gopvgrub-1\x00"), m(xenstore.TypeWatch, 3, 0, "OK\x00")), uint16(0), byte(0))
	f.Add(cat(m(xenstore.TypeRead, 99, 0, "stray"), m(xenstore.TypeRead, 1, 0, "v")), uint16(0), byte(0))
	f.Add(xenstore.AppendHeader(nil, xenstore.Header{Type: xenstore.TypeRead, ReqID: 1, Len: 1 << 20}), uint16(100), byte(1))
	f.Add(cat(m(xenstore.TypeDirectory, 2, 0, "no-nul"), m(42, 1, 0, "")), uint16(0), byte(0))
	f.Add(xenstore.AppendHeader(nil, xenstore.Header{Type: xenstore.TypeRead, ReqID: 1, Len: 4096}), uint16(4096), byte('x'))
	f.Add(xenstore.AppendHeader(nil, xenstore.Header{Type: xenstore.TypeDirectory, ReqID: 2, Len: 3000}), uint16(3000), byte(0))
	f.Add([]byte{1, 2, 3}, uint16(5), byte(0xff))
	f.Fuzz(func(t *testing.T, raw []byte, fill uint16, fillByte byte) {
		if len(raw) > 160 || fill > 8192 {
			return
		}
		data := append(raw, bytes.Repeat([]byte{fillByte}, int(fill))...)
		h := xentest.NewHypervisor()
		guest := h.NewDomain(1, xentest.DomainConfig{})
		dom0 := h.NewDomain(0, xentest.DomainConfig{})
		page, _, err := guest.AllocPages(1)
		if err != nil {
			t.Fatal(err)
		}
		gp, dp, err := h.Connect(guest, dom0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := xenstore.New(page, gp)
		if err != nil {
			t.Fatal(err)
		}
		req, rsp, _ := ring.Store(page)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 3)
		go func() { _, err := c.Read(ctx, "r"); done <- err }()
		go func() { _, err := c.Directory(ctx, "d"); done <- err }()
		go func() {
			w, err := c.Watch(ctx, "w")
			if err == nil {
				go func() {
					for range w.C {
					}
				}()
			}
			done <- err
		}()
		// wait until all three requests are in the ring (2*18 + 29 bytes)
		waitFor(t, dp, func() bool { n, _ := req.Pending(); return n >= 65 })

		for len(data) > 0 && c.Err() == nil {
			n, err := rsp.Produce(data)
			if err != nil {
				t.Fatal(err)
			}
			data = data[n:]
			dp.Notify()
			waitFor(t, dp, func() bool { n, _ := rsp.Pending(); return n == 0 || c.Err() != nil })
		}
		cancel()
		for range 3 {
			err := <-done
			if err == nil {
				continue
			}
			var e xenstore.Errno
			if !errors.As(err, &e) && !errors.Is(err, xenstore.ErrProtocol) && !errors.Is(err, context.Canceled) {
				t.Fatalf("unexpected error kind: %v", err)
			}
		}
		expired, stop := context.WithCancel(context.Background())
		stop()
		c.Close(expired)
	})
}

// waitFor blocks on the daemon's end of the event channel until cond
// holds. The client notifies after every write and every read, so no
// busy loop is needed; a broken client stops notifying, which the short
// per-wait timeout covers.
func waitFor(t *testing.T, dp *xentest.Port, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(safety)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never met")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		dp.Wait(ctx)
		cancel()
	}
}
