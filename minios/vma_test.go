package minios

import "testing"

func (s *vmaSet) list() []vma { return append([]vma(nil), s.v[:s.n]...) }

func TestVMAInsertMergeRemove(t *testing.T) {
	var s vmaSet
	const M = 1 << 20
	rw := uint32(protRead | protWrite)
	// A PROT_NONE reservation, then RW commits inside it, as the Go heap does.
	if !s.insert(64*M, 128*M, 0) {
		t.Fatal("insert")
	}
	for _, c := range [][2]uint64{{64 * M, 68 * M}, {68 * M, 72 * M}} {
		if !s.remove(c[0], c[1]) || !s.insert(c[0], c[1], rw) {
			t.Fatal("commit")
		}
	}
	want := []vma{{64 * M, 72 * M, rw}, {72 * M, 128 * M, 0}}
	if got := s.list(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("after commits: %+v, want %+v (adjacent RW areas merged)", got, want)
	}
	// A hole punched in the middle splits an area.
	s.remove(100*M, 101*M)
	if got := s.list(); len(got) != 3 || got[1].end != 100*M || got[2].start != 101*M {
		t.Fatalf("after hole: %+v", got)
	}
	if !s.isFree(100*M, 101*M) || s.isFree(99*M, 101*M) {
		t.Fatal("isFree wrong around the hole")
	}
	// Removing everything leaves nothing.
	s.remove(0, 1<<47)
	if s.n != 0 {
		t.Fatalf("after remove all: %+v", s.list())
	}
}

func TestVMAFind(t *testing.T) {
	var s vmaSet
	s.insert(0x1000, 0x3000, protRead)
	s.insert(0x5000, 0x6000, protRead|protWrite)
	cases := []struct {
		addr uint64
		idx  int
		ok   bool
	}{{0x0, 0, false}, {0x1000, 0, true}, {0x2fff, 0, true}, {0x3000, 1, false}, {0x5800, 1, true}, {0x6000, 2, false}}
	for _, c := range cases {
		i, ok := s.find(c.addr)
		if i != c.idx || ok != c.ok {
			t.Errorf("find(%#x) = %d,%v want %d,%v", c.addr, i, ok, c.idx, c.ok)
		}
	}
}

func TestVMAFindGap(t *testing.T) {
	var s vmaSet
	const top, floor = 0x100000, 0x10000
	if a, ok := s.findGap(0x1000, floor, top); !ok || a != top-0x1000 {
		t.Fatalf("empty set: %#x %v", a, ok)
	}
	s.insert(0xf0000, 0x100000, protRead)
	s.insert(0xe0000, 0xe8000, protRead)
	if a, ok := s.findGap(0x8000, floor, top); !ok || a != 0xe8000 {
		t.Fatalf("gap between areas: %#x %v", a, ok)
	}
	if a, ok := s.findGap(0x9000, floor, top); !ok || a != 0xe0000-0x9000 {
		t.Fatalf("gap below areas: %#x %v", a, ok)
	}
	if _, ok := s.findGap(top, floor, top); ok {
		t.Fatal("found a gap larger than the window")
	}
	// An area straddling the top of the window.
	var s2 vmaSet
	s2.insert(0x80000, 0x200000, protRead)
	if a, ok := s2.findGap(0x1000, floor, top); !ok || a != 0x7f000 {
		t.Fatalf("straddling area: %#x %v", a, ok)
	}
}

func TestVMATableFull(t *testing.T) {
	var s vmaSet
	for i := 0; i < maxVMAs; i++ {
		a := uint64(i) * 0x2000
		if !s.insert(a, a+0x1000, uint32(i%2)) {
			t.Fatalf("insert %d failed early", i)
		}
	}
	if s.insert(uint64(maxVMAs)*0x2000, uint64(maxVMAs)*0x2000+0x1000, 1) {
		t.Fatal("insert into a full table succeeded")
	}
	if s.remove(0x400, 0x800) {
		t.Fatal("split of a full table succeeded")
	}
}

func TestDecideFault(t *testing.T) {
	var s vmaSet
	s.insert(0x10000, 0x20000, protRead|protWrite)
	s.insert(0x20000, 0x30000, 0)
	s.insert(0x30000, 0x40000, protRead)
	cases := []struct {
		addr, err uint64
		want      faultAction
	}{
		{0x10000, 6, faultMapZero}, // user write, not present
		{0x1ffff, 4, faultMapZero}, // user read
		{0x20000, 4, faultFatal},   // PROT_NONE reservation
		{0x30000, 4, faultMapZero}, // read-only area, read
		{0x30000, 6, faultProt},    // write to read-only
		{0x10000, 7, faultProt},    // present page, protection
		{0x8, 4, faultFatal},       // nil dereference
		{0x50000, 6, faultFatal},
	}
	for _, c := range cases {
		if got := s.decideFault(c.addr, c.err); got != c.want {
			t.Errorf("decideFault(%#x, %d) = %d want %d", c.addr, c.err, got, c.want)
		}
	}
}
