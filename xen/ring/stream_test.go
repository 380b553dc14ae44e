package ring

import (
	"bytes"
	"errors"
	"testing"
)

func newTestStream(t *testing.T, size int) (Stream, *uint32, *uint32) {
	t.Helper()
	var cons, prod uint32
	s, err := NewStream(make([]byte, size), &cons, &prod)
	if err != nil {
		t.Fatal(err)
	}
	return s, &cons, &prod
}

func TestNewStreamRejectsBadSizes(t *testing.T) {
	var c, p uint32
	for _, n := range []int{0, 3, 1000, 1025} {
		if _, err := NewStream(make([]byte, n), &c, &p); !errors.Is(err, ErrSize) {
			t.Errorf("size %d: err = %v, want ErrSize", n, err)
		}
	}
}

func TestProduceConsumeWraps(t *testing.T) {
	s, cons, prod := newTestStream(t, 16)
	// Start near the 32-bit wrap so index arithmetic is exercised too.
	*cons, *prod = 0xfffffff8, 0xfffffff8
	var got []byte
	want := []byte("the quick brown fox jumps over the lazy dog, many times over")
	in := want
	buf := make([]byte, 5)
	for len(got) < len(want) {
		n, err := s.Produce(in)
		if err != nil {
			t.Fatal(err)
		}
		in = in[n:]
		sp, _ := s.Space()
		pend, _ := s.Pending()
		if sp+pend != 16 {
			t.Fatalf("space %d + pending %d != 16", sp, pend)
		}
		m, err := s.Consume(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:m]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if *prod != *cons {
		t.Fatalf("indices differ at the end: prod %#x cons %#x", *prod, *cons)
	}
}

func TestProduceStopsWhenFull(t *testing.T) {
	s, _, _ := newTestStream(t, 8)
	n, err := s.Produce([]byte("0123456789"))
	if err != nil || n != 8 {
		t.Fatalf("Produce = %d, %v; want 8, nil", n, err)
	}
	n, err = s.Produce([]byte("x"))
	if err != nil || n != 0 {
		t.Fatalf("Produce on full ring = %d, %v; want 0, nil", n, err)
	}
}

func TestCorruptIndices(t *testing.T) {
	s, cons, prod := newTestStream(t, 8)
	*cons, *prod = 0, 9 // peer claims 9 bytes in an 8-byte ring
	if _, err := s.Consume(make([]byte, 4)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Consume: err = %v, want ErrCorrupt", err)
	}
	if _, err := s.Produce([]byte("a")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Produce: err = %v, want ErrCorrupt", err)
	}
	if _, err := s.Pending(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Pending: err = %v, want ErrCorrupt", err)
	}
}

func TestPageLayouts(t *testing.T) {
	page := make([]byte, 4096)
	in, out, err := Console(page)
	if err != nil {
		t.Fatal(err)
	}
	if in.Size() != 1024 || out.Size() != 2048 {
		t.Fatalf("console sizes %d/%d", in.Size(), out.Size())
	}
	if _, err := out.Produce([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	// out[] starts at 1024, out_prod is at 3084 (io/console.h).
	if string(page[1024:1026]) != "hi" || page[3084] != 2 {
		t.Fatalf("console bytes not where console.h puts them")
	}
	req, rsp, err := Store(page)
	if err != nil {
		t.Fatal(err)
	}
	if req.Size() != 1024 || rsp.Size() != 1024 {
		t.Fatal("xenstore ring sizes")
	}
	if _, err := req.Produce([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if page[0] != 'x' || page[2052] != 1 { // req_prod at 2052 (xs_wire.h)
		t.Fatal("xenstore bytes not where xs_wire.h puts them")
	}
	if _, _, err := Console(page[:100]); !errors.Is(err, ErrSize) {
		t.Fatal("short page accepted")
	}
}

// FuzzConsume feeds arbitrary peer indices and sizes: the stream must
// either report ErrCorrupt or return at most what was asked for.
func FuzzConsume(f *testing.F) {
	f.Add(uint32(0), uint32(5), 3)
	f.Add(uint32(0xfffffffe), uint32(3), 100)
	f.Add(uint32(7), uint32(2), 1)
	f.Fuzz(func(t *testing.T, c, p uint32, want int) {
		if want < 0 || want > 4096 {
			return
		}
		s, cons, prod := newTestStream(t, 1024)
		*cons, *prod = c, p
		n, err := s.Consume(make([]byte, want))
		if err != nil {
			if p-c <= 1024 {
				t.Fatalf("consistent indices %d,%d reported corrupt", c, p)
			}
			return
		}
		if n > want || uint32(n) > p-c {
			t.Fatalf("consumed %d of %d (avail %d)", n, want, p-c)
		}
		if *cons != c+uint32(n) {
			t.Fatal("consumer index not advanced by n")
		}
	})
}
