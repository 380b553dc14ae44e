//go:build xenpv

package minios

// Page tables under Xen PV: the shim never writes a page-table page
// directly (Xen keeps them read-only); it asks Xen with mmu_update, giving
// the machine address of the entry. New tables are zeroed while still
// ordinary pages, their writable mappings are downgraded to read-only, and
// only then are they linked (xen-pv-abi.md §3.4).
//
// The direct map (dmapBase + pfn<<12) maps every frame of the domain, so the
// shim can zero frames, read page tables and reach the p2m, console and
// xenstore pages without temporary mappings. Page-table frames appear in it
// read-only.

type mmuUpdate struct{ ptr, val uint64 }

const mmuBatch = 256

var mm struct {
	virtBase   uint64
	nrPages    uint64
	l4MFN      uint64
	p2mVA      uint64 // VA of the p2m array (initial mapping, then the direct map)
	dmapReady  bool   // the direct map covers every frame
	dmapEnd    uint64 // frames below this are in the direct map already
	ptBasePFN  uint64 // the domain builder's page tables: [ptBasePFN, +nrPT)
	nrPT       uint64
	initEndPFN uint64 // end of the builder's initial mapping
	// Frames the boot code hands out as page tables before the frame
	// allocator exists: first the builder's padding, then frames after
	// the initial mapping (the "bump" range).
	padStart, padNext, padEnd uint64
	bumpNext                  uint64
	nmmu                      int
	mmu                       [mmuBatch]mmuUpdate
}

func m2p(mfn uint64) uint64 { return *(*uint64)(ptrAt(uintptr(machToPhys + mfn*8))) }

func p2m(pfn uint64) uint64 { return *(*uint64)(ptrAt(uintptr(mm.p2mVA + pfn*8))) }

func dmap(pfn uint64) uint64 { return dmapBase + pfn<<pageShift }

// frameVA is where the shim can read (and, unless it is a page table,
// write) a frame of its own.
func frameVA(pfn uint64) uint64 {
	if pfn < mm.dmapEnd {
		return dmap(pfn)
	}
	return mm.virtBase + pfn<<pageShift
}

func tableVA(mfn uint64) uint64 { return frameVA(m2p(mfn)) }

func ptIndex(va uint64, level uint) uint64 { return (va >> (pageShift + 9*(level-1))) & 511 }

func readEntry(tableMFN, i uint64) uint64 {
	return *(*uint64)(ptrAt(uintptr(tableVA(tableMFN) + i*8)))
}

func mmuQueue(ptr, val uint64) {
	if mm.nmmu == mmuBatch {
		mmuFlush()
	}
	mm.mmu[mm.nmmu] = mmuUpdate{ptr, val}
	mm.nmmu++
}

func mmuFlush() {
	if mm.nmmu == 0 {
		return
	}
	n := mm.nmmu
	mm.nmmu = 0
	rc := hypercall(hcMMUUpdate, uint64(uintptrOfMMU(&mm.mmu[0])), uint64(n), 0, domidSelf, 0)
	if rc != 0 {
		var l kline
		panicLine(l.s("minios: mmu_update of ").u(uint64(n)).s(" entries failed: ").d(rc).s(" (first ptr ").x(mm.mmu[0].ptr).s(" val ").x(mm.mmu[0].val).s(")"))
	}
}

// mmuSet writes one page-table entry now.
func mmuSet(ptr, val uint64) {
	mmuQueue(ptr, val)
	mmuFlush()
}

func tlbFlush() {
	var op [3]uint64 // struct mmuext_op: cmd, arg1, arg2
	op[0] = mmuextTLBFlushLoc
	rc := hypercall(hcMMUExtOp, uint64(uintptrOfU64(&op[0])), 1, 0, domidSelf, 0)
	if rc != 0 {
		var l kline
		panicLine(l.s("minios: TLB flush failed: ").d(rc))
	}
}

// updateVAMapping changes the PTE of va in the current tables.
func updateVAMapping(va, pte uint64) int64 {
	return hypercall(hcUpdateVAMapping, va, pte, uvmfInvlpg, 0, 0)
}

// takeBootFrame hands out a frame before the frame allocator exists.
func takeBootFrame() (uint64, bool) {
	if mm.padNext < mm.padEnd {
		pfn := mm.padNext
		mm.padNext++
		return pfn, true
	}
	// Then frames after the initial mapping, which the first part of the
	// direct map covers.
	if mm.dmapReady || mm.bumpNext >= mm.dmapEnd {
		return 0, false
	}
	pfn := mm.bumpNext
	mm.bumpNext++
	return pfn, true
}

// allocFrame returns a free frame, zeroed.
func allocFrame() (uint64, bool) {
	var pfn uint64
	var ok bool
	if k.frames.npages != 0 {
		pfn, ok = k.frames.alloc()
	} else {
		pfn, ok = takeBootFrame()
	}
	if !ok {
		return 0, false
	}
	memclr(frameVA(pfn), pageSize)
	return pfn, true
}

func memclr(va uint64, n int) {
	b := bytesAt(uintptr(va), n)
	for i := range b {
		b[i] = 0
	}
}

// makeReadOnly removes write access from every shim mapping of pfn, as Xen
// requires before the frame becomes a page table.
func makeReadOnly(pfn uint64) {
	mfn := p2m(pfn)
	if pfn < mm.initEndPFN && pfn >= mm.padStart {
		if rc := updateVAMapping(mm.virtBase+pfn<<pageShift, mfn<<pageShift|pteKernRO); rc != 0 {
			var l kline
			panicLine(l.s("minios: cannot write-protect frame ").x(pfn).s(": ").d(rc))
		}
	}
	if pfn < mm.dmapEnd {
		if rc := updateVAMapping(dmap(pfn), mfn<<pageShift|pteKernRO); rc != 0 {
			var l kline
			panicLine(l.s("minios: cannot write-protect direct map of frame ").x(pfn).s(": ").d(rc))
		}
	}
}

// newTable allocates a zeroed frame, fills it through fill (nil for an
// empty table) while it is still an ordinary page, and write-protects it.
func newTable(fill func(b []uint64)) (mfn uint64, pfn uint64, ok bool) {
	pfn, ok = allocFrame()
	if !ok {
		return 0, 0, false
	}
	if fill != nil {
		fill(unsafeSliceU64(frameVA(pfn), 512))
	}
	makeReadOnly(pfn)
	return p2m(pfn), pfn, true
}

// l1For returns the machine frame of the L1 table that maps va, creating
// missing tables when create is set. When it returns ok=false without
// create, skip says how far the missing level reaches.
func l1For(va uint64, create bool) (l1 uint64, skip uint64, ok bool) {
	mfn := mm.l4MFN
	for level := uint(4); level > 1; level-- {
		i := ptIndex(va, level)
		e := readEntry(mfn, i)
		if e&ptePresent == 0 {
			if !create {
				return 0, uint64(1) << (pageShift + 9*(level-1)), false
			}
			nm, _, ok := newTable(nil)
			if !ok {
				return 0, 0, false
			}
			mmuFlush()
			mmuSet(mfn<<pageShift+i*8, nm<<pageShift|pteTable)
			e = nm<<pageShift | pteTable
		}
		mfn = (e & pteMFNMask) >> pageShift
	}
	return mfn, 0, true
}

// mapPage maps machine frame mfn at va with flags, creating tables.
func mapPage(va, mfn, flags uint64) bool {
	l1, _, ok := l1For(va, true)
	if !ok {
		return false
	}
	mmuSet(l1<<pageShift+ptIndex(va, 1)*8, mfn<<pageShift|flags)
	return true
}

// pte returns va's L1 entry (0 when not mapped).
func pte(va uint64) uint64 {
	l1, _, ok := l1For(va, false)
	if !ok {
		return 0
	}
	return readEntry(l1, ptIndex(va, 1))
}

// buildDirectMap maps pfns [from, to) at dmapBase. isTable marks frames
// that are page tables (they must be mapped read-only).
func buildDirectMap(from, to uint64, isTable func(pfn uint64) bool) bool {
	for pfn := from &^ 511; pfn < to; pfn += 512 {
		va := dmap(pfn)
		// make sure L3 and L2 exist (they are allocated the same way)
		mfn := mm.l4MFN
		for level := uint(4); level > 2; level-- {
			i := ptIndex(va, level)
			e := readEntry(mfn, i)
			if e&ptePresent == 0 {
				nm, _, ok := newTable(nil)
				if !ok {
					return false
				}
				mmuSet(mfn<<pageShift+i*8, nm<<pageShift|pteTable)
				e = nm<<pageShift | pteTable
			}
			mfn = (e & pteMFNMask) >> pageShift
		}
		l2 := mfn
		start := pfn
		nm, _, ok := newTable(func(b []uint64) {
			for j := uint64(0); j < 512; j++ {
				p := start + j
				if p < from || p >= to || p >= mm.nrPages {
					continue
				}
				m := p2m(p)
				if m == ^uint64(0) || m>>40 != 0 {
					continue
				}
				if isTable(p) {
					b[j] = m<<pageShift | pteKernRO
				} else {
					b[j] = m<<pageShift | pteKernRW
				}
			}
		})
		if !ok {
			return false
		}
		mmuSet(l2<<pageShift+ptIndex(va, 2)*8, nm<<pageShift|pteTable)
		if end := pfn + 512; end > mm.dmapEnd {
			mm.dmapEnd = end
			if mm.dmapEnd > to {
				mm.dmapEnd = to
			}
		}
	}
	return true
}

// mapUserPage backs the page at va with a fresh zeroed frame.
func mapUserPage(va uint64, writable bool) bool {
	pfn, ok := k.frames.alloc()
	if !ok {
		return false
	}
	memclr(dmap(pfn), pageSize)
	flags := uint64(ptePresent | pteAccessed)
	if writable {
		flags |= pteRW | pteDirty
	}
	if !mapPage(va, p2m(pfn), flags) {
		k.frames.release(pfn)
		return false
	}
	k.faults++
	return true
}

// dropPages unmaps and frees the frames mapped in [start, end) of the
// user half. Tables stay.
func dropPages(start, end uint64) {
	if end > userTop {
		end = userTop
	}
	dropped := false
	for va := start; va < end; {
		l1, skip, ok := l1For(va, false)
		if !ok {
			next := (va + skip) &^ (skip - 1)
			if next <= va {
				break
			}
			va = next
			continue
		}
		chunkEnd := (va + (512 << pageShift)) &^ (512<<pageShift - 1)
		for ; va < end && va < chunkEnd; va += pageSize {
			i := ptIndex(va, 1)
			e := readEntry(l1, i)
			if e&ptePresent == 0 {
				continue
			}
			mmuQueue(l1<<pageShift+i*8, 0)
			k.frames.release(m2p((e & pteMFNMask) >> pageShift))
			dropped = true
		}
	}
	mmuFlush()
	if dropped {
		tlbFlush()
	}
}

// userOK makes sure [addr, addr+n) is mapped user memory, faulting in
// demand-zero pages of the program's areas.
func userOK(addr, n uint64, write bool) bool {
	if n == 0 {
		return true
	}
	end := addr + n
	if end < addr || end > userTop {
		return false
	}
	for va := addr &^ (pageSize - 1); va < end; va += pageSize {
		e := pte(va)
		if e&ptePresent != 0 {
			if write && e&pteRW == 0 {
				return false
			}
			continue
		}
		code := uint64(4)
		if write {
			code = 6
		}
		if k.vmas.decideFault(va, code) != faultMapZero {
			return false
		}
		i, _ := k.vmas.find(va)
		if !mapUserPage(va, k.vmas.v[i].prot&protWrite != 0) {
			return false
		}
	}
	return true
}
