package sring

import (
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzFront drives a front end against a back end that writes whatever
// the input says into the shared indices and slots. Whatever it does,
// the front end must not panic, must keep its accounting within the
// ring, and must never consume more responses than it pushed requests.
func FuzzFront(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 0, 2, 0, 0, 0, 0}, uint32(0))
	f.Add([]byte{40, 1, 0xff, 0xff, 0xff, 0xff, 2, 5, 0, 0, 0}, uint32(0xfffffff0))
	f.Add([]byte{1, 2, 1, 0, 0, 0, 3, 0, 0, 0, 0, 4}, uint32(7))
	f.Fuzz(func(t *testing.T, prog []byte, start uint32) {
		mem := pages(1)
		fr, err := NewFrontAt(mem, netifTxSlot, start)
		if err != nil {
			t.Fatal(err)
		}
		h := fr.Shared()
		buf := make([]byte, netifTxSlot)
		pushed, consumed := uint64(0), uint64(0)
		for len(prog) >= 5 {
			op, arg := prog[0], binary.LittleEndian.Uint32(prog[1:5])
			prog = prog[5:]
			switch op % 6 {
			case 0: // produce up to arg%64 requests and push
				for i := uint32(0); i < arg%64; i++ {
					if _, err := fr.NextRequest(); err != nil {
						if !errors.Is(err, ErrFull) {
							t.Fatal(err)
						}
						break
					}
				}
				fr.Push()
				pushed = uint64(fr.reqProd - start)
			case 1: // peer sets rsp_prod to anything
				h.SetRspProd(arg)
			case 2: // peer sets rsp_prod relative to what it saw
				h.SetRspProd(h.ReqProd() - arg%4)
			case 3: // peer scribbles on a slot
				binary.LittleEndian.PutUint32(mem[HeaderSize+int(arg%(uint32(len(mem)-HeaderSize-4))):], arg)
			case 4:
				for {
					ok, err := fr.NextResponse(buf)
					if err != nil || !ok {
						break
					}
					consumed++
				}
			case 5:
				if _, err := fr.FinalCheck(); err != nil && !errors.Is(err, ErrCorrupt) {
					t.Fatal(err)
				}
			}
			if fr.Outstanding() < 0 || fr.Outstanding() > fr.Size() || fr.Free() < 0 || fr.Free() > fr.Size() {
				t.Fatalf("outstanding %d free %d size %d", fr.Outstanding(), fr.Free(), fr.Size())
			}
			if consumed > pushed {
				t.Fatalf("consumed %d responses for %d requests", consumed, pushed)
			}
		}
	})
}

// FuzzBack is FuzzFront for the back end: a front end that publishes
// arbitrary request indices.
func FuzzBack(f *testing.F) {
	f.Add([]byte{0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0}, uint32(0))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0}, uint32(0xffffff00))
	f.Fuzz(func(t *testing.T, prog []byte, start uint32) {
		mem := pages(1)
		if _, err := NewFrontAt(mem, netifRxSlot, start); err != nil {
			t.Fatal(err)
		}
		b, err := NewBack(mem, netifRxSlot)
		if err != nil {
			t.Fatal(err)
		}
		h := b.Shared()
		buf := make([]byte, netifRxSlot)
		for len(prog) >= 5 {
			op, arg := prog[0], binary.LittleEndian.Uint32(prog[1:5])
			prog = prog[5:]
			switch op % 4 {
			case 0:
				h.SetReqProd(h.ReqProd() + arg)
			case 1:
				for {
					ok, err := b.NextRequest(buf)
					if err != nil || !ok {
						break
					}
				}
			case 2:
				for i := uint32(0); i < arg%300; i++ {
					if _, err := b.NextResponse(); err != nil {
						break
					}
				}
				b.Push()
			case 3:
				b.FinalCheck()
			}
			if u := b.Unanswered(); u < 0 || u > b.Size() {
				t.Fatalf("unanswered %d of %d", u, b.Size())
			}
			if n, err := b.Unconsumed(); err == nil && (n < 0 || n > b.Size()) {
				t.Fatalf("unconsumed %d of %d", n, b.Size())
			}
		}
	})
}
