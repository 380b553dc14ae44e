package minios

import (
	"testing"
	"unsafe"
)

func newTestAllocator(t *testing.T, n uint64) (*frameAllocator, []uint64) {
	mem := make([]uint64, (n+63)/64)
	var a frameAllocator
	a.init(uintptr(unsafe.Pointer(&mem[0])), n)
	return &a, mem
}

func TestFrameAllocator(t *testing.T) {
	a, mem := newTestAllocator(t, 200)
	if _, ok := a.alloc(); ok {
		t.Fatal("alloc from a fully used bitmap")
	}
	for pfn := uint64(10); pfn < 20; pfn++ {
		a.release(pfn)
	}
	a.release(150)
	a.release(150) // double free is counted once
	a.release(500) // out of range is ignored
	if a.free != 11 {
		t.Fatalf("free = %d, want 11", a.free)
	}
	a.resetPeak()
	seen := map[uint64]bool{}
	for i := 0; i < 11; i++ {
		pfn, ok := a.alloc()
		if !ok || seen[pfn] || !(pfn >= 10 && pfn < 20 || pfn == 150) {
			t.Fatalf("alloc %d returned %d,%v", i, pfn, ok)
		}
		seen[pfn] = true
	}
	if _, ok := a.alloc(); ok || a.free != 0 {
		t.Fatal("allocator handed out more than was free")
	}
	if a.peak != 200 {
		t.Fatalf("peak = %d, want 200", a.peak)
	}
	a.release(15)
	if !a.take(15) || a.take(15) || a.isUsed(15) == false {
		t.Fatal("take")
	}
	// Frames past npages in the last word are never handed out.
	if mem[3] != ^uint64(0) {
		t.Fatalf("tail word %#x", mem[3])
	}
}
