package blkif

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
)

// The values testdata/blkif.c fills in.
func cRequest() Request {
	r := Request{Op: OpRead, NrSegments: MaxSegments, Handle: 51712, ID: 0x0102030405060708, Sector: 0x1122334455667788}
	for i := range r.Seg {
		r.Seg[i] = Segment{Gref: 0xa0b0c000 + uint32(i), FirstSect: uint8(i % 8), LastSect: 7}
	}
	return r
}

func cIndirect() IndirectRequest {
	r := IndirectRequest{IndirectOp: OpRead, NrSegments: 4096, ID: 0xfedcba9876543210, Sector: 0x0000000100000002, Handle: 0x1234}
	for i := range r.Grefs {
		r.Grefs[i] = 0x100 + uint32(i)
	}
	return r
}

func cResponse() Response {
	return Response{ID: 0x8877665544332211, Op: OpIndirect, Status: RspEOPNOTSUPP}
}

func cSegment() Segment { return Segment{Gref: 0xdeadbeef, FirstSect: 3, LastSect: 6} }

// goBytes encodes the same values in Go.
func goBytes() map[string][]byte {
	req := make([]byte, RequestSize)
	r := cRequest()
	r.Put(req)
	ind := make([]byte, RequestSize)
	ir := cIndirect()
	ir.Put(ind)
	rsp := make([]byte, ResponseSize)
	cResponse().Put(rsp)
	seg := make([]byte, SegmentSize)
	cSegment().Put(seg)
	return map[string][]byte{
		"request":  req,
		"indirect": ind[:IndirectRequestSize],
		"response": rsp,
		"segment":  seg,
	}
}

func TestLayoutWithGCC(t *testing.T) {
	testassets.NeedTools(t, "gcc")
	if _, err := os.Stat("/usr/include/xen/io/blkif.h"); err != nil {
		testassets.Missing(t, "Xen public headers (libxen-dev): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "blkif")
	cmd := exec.Command("gcc", "-Wall", "-D__XEN_INTERFACE_VERSION__=0x00040e00", "-o", bin, "testdata/blkif.c")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := goBytes()
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), " ")
		switch name {
		case "slot":
			if rest != fmt.Sprint(SlotSize) {
				t.Errorf("slot size: C %s, Go %d", rest, SlotSize)
			}
			seen++
		case "constants":
			g := fmt.Sprint(OpRead, OpWrite, OpWriteBarrier, OpFlushDiskcache, OpDiscard, OpIndirect,
				MaxSegments, MaxIndirectPages, RspError, RspEOPNOTSUPP)
			if rest != g {
				t.Errorf("constants: C %s, Go %s", rest, g)
			}
			seen++
		case "vdisk":
			if g := fmt.Sprint(VDiskCDROM, VDiskRemovable, VDiskReadOnly); rest != g {
				t.Errorf("vdisk: C %s, Go %s", rest, g)
			}
			seen++
		default:
			c, err := hex.DecodeString(rest)
			if err != nil {
				t.Fatalf("bad line %q", sc.Text())
			}
			g, ok := want[name]
			if !ok {
				t.Fatalf("unknown line %q", name)
			}
			if !bytes.Equal(c, g) {
				t.Errorf("%s:\n C  %x\n Go %x", name, c, g)
			}
			seen++
		}
	}
	if seen != len(want)+3 {
		t.Errorf("saw %d lines, want %d", seen, len(want)+3)
	}
}

func TestRoundTrip(t *testing.T) {
	b := goBytes()
	r, err := ParseRequest(b["request"])
	if err != nil || r != cRequest() {
		t.Errorf("request: %+v %v", r, err)
	}
	slot := make([]byte, RequestSize)
	copy(slot, b["indirect"])
	ir, err := ParseIndirectRequest(slot)
	if err != nil || ir != cIndirect() {
		t.Errorf("indirect: %+v %v", ir, err)
	}
	if op, err := Op(slot); op != OpIndirect || err != nil {
		t.Errorf("Op = %d %v", op, err)
	}
	rsp, err := ParseResponse(b["response"])
	if err != nil || rsp != cResponse() {
		t.Errorf("response: %+v %v", rsp, err)
	}
	seg, err := ParseSegment(b["segment"])
	if err != nil || seg != cSegment() {
		t.Errorf("segment: %+v %v", seg, err)
	}
}

func TestPutClearsStaleBytes(t *testing.T) {
	slot := bytes.Repeat([]byte{0xff}, RequestSize)
	r := Request{Op: OpRead, NrSegments: 1, Seg: [MaxSegments]Segment{{Gref: 9, LastSect: 7}, {Gref: 10}}}
	r.Put(slot)
	got, _ := ParseRequest(slot)
	if got.Seg[1] != (Segment{}) || got.Seg[10] != (Segment{}) {
		t.Errorf("segments beyond NrSegments not zero: %+v", got.Seg)
	}
	if !bytes.Equal(slot[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("padding not cleared: % x", slot[4:8])
	}
}

func TestShortInputs(t *testing.T) {
	for n := 0; n < RequestSize; n++ {
		b := make([]byte, n)
		if _, err := ParseRequest(b); err == nil {
			t.Errorf("ParseRequest accepted %d bytes", n)
		}
		if _, err := Op(b); err == nil {
			t.Errorf("Op accepted %d bytes", n)
		}
		if n < IndirectRequestSize {
			if _, err := ParseIndirectRequest(b); err == nil {
				t.Errorf("ParseIndirectRequest accepted %d bytes", n)
			}
		}
		if n < ResponseSize {
			if _, err := ParseResponse(b); err == nil {
				t.Errorf("ParseResponse accepted %d bytes", n)
			}
		}
		if n < SegmentSize {
			if _, err := ParseSegment(b); err == nil {
				t.Errorf("ParseSegment accepted %d bytes", n)
			}
		}
	}
	if _, err := ParseIndirectRequest(make([]byte, RequestSize)); err == nil {
		t.Error("ParseIndirectRequest accepted operation 0")
	}
}

func TestSegment(t *testing.T) {
	for _, tc := range []struct {
		s       Segment
		valid   bool
		sectors int
	}{
		{Segment{FirstSect: 0, LastSect: 7}, true, 8},
		{Segment{FirstSect: 3, LastSect: 3}, true, 1},
		{Segment{FirstSect: 4, LastSect: 3}, false, 0},
		{Segment{FirstSect: 0, LastSect: 8}, false, 0},
		{Segment{FirstSect: 255, LastSect: 255}, false, 0},
	} {
		if tc.s.Valid() != tc.valid || tc.s.Sectors() != tc.sectors {
			t.Errorf("%+v: valid %v sectors %d", tc.s, tc.s.Valid(), tc.s.Sectors())
		}
	}
	for n, want := range map[int]int{0: 0, 1: 1, 512: 1, 513: 2, 4096: 8} {
		if got := IndirectPages(n); got != want {
			t.Errorf("IndirectPages(%d) = %d, want %d", n, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range goBytes() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseRequest(b); err == nil {
			out := make([]byte, RequestSize)
			r.Put(out)
			if r2, _ := ParseRequest(out); r2.Op != r.Op || r2.ID != r.ID || r2.Sector != r.Sector {
				t.Fatalf("request does not round-trip")
			}
		}
		if r, err := ParseIndirectRequest(b); err == nil {
			out := make([]byte, RequestSize)
			r.Put(out)
			if r2, _ := ParseIndirectRequest(out); r2 != r {
				t.Fatalf("indirect request does not round-trip: %+v %+v", r, r2)
			}
		}
		if r, err := ParseResponse(b); err == nil {
			out := make([]byte, ResponseSize)
			r.Put(out)
			if r2, _ := ParseResponse(out); r2 != r {
				t.Fatalf("response does not round-trip")
			}
		}
	})
}
