package xenstore_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/gopvgrub/gopvgrub/xen/ring"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

// BenchmarkClientRead is one READ round trip through the client and the
// simulated xenstored.
func BenchmarkClientRead(b *testing.B) {
	sys, err := xentest.NewSystem(xentest.SystemConfig{GuestID: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Close()
	c, err := xenstore.New(sys.StorePage, sys.StoreChan)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	defer c.Close(ctx)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Read(ctx, "domid"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawRead is the anchor for BenchmarkClientRead: the same READ
// written and read by hand on the ring, with no client machinery
// (no reader goroutine, no request matching).
func BenchmarkRawRead(b *testing.B) {
	sys, err := xentest.NewSystem(xentest.SystemConfig{GuestID: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Close()
	req, rsp, _ := ring.Store(sys.StorePage)
	msg := xenstore.AppendHeader(nil, xenstore.Header{Type: xenstore.TypeRead, ReqID: 1, Len: 6})
	msg = append(msg, "domid\x00"...)
	buf := make([]byte, 64)
	ctx := context.Background()
	for b.Loop() {
		if _, err := req.Produce(msg); err != nil {
			b.Fatal(err)
		}
		sys.StoreChan.Notify()
		got := 0
		for got < 16 || got < 16+int(binary.LittleEndian.Uint32(buf[12:])) {
			n, err := rsp.Consume(buf[got:])
			if err != nil {
				b.Fatal(err)
			}
			got += n
			if n == 0 {
				sys.StoreChan.Wait(ctx)
			}
		}
	}
}
