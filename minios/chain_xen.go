//go:build xenpv

package minios

import (
	"unsafe"

	"github.com/gopvgrub/gopvgrub/minios/shimabi"
)

// Chainloading, the shim's half (xen-pv-abi.md §6.4, §6.5). The Go side
// (package loader/boot) has already built the next kernel's memory in
// fresh frames (SysAllocPages), computed the new P2M and closed its
// devices; what is left needs kernel mode: protecting and pinning the new
// page tables, tearing down the shim's own use of Xen, renumbering the
// frames in Xen's M2P and switching page tables.

// chainJump zeroes the FS and GS bases and jumps to the trampoline at va;
// it never returns (entry_amd64.s).
func chainJump(va uint64)

// chainP2M copies the current P2M table to the user's buffer.
func chainP2M(buf, n uint64) int64 {
	if n != mm.nrPages {
		return -eINVAL
	}
	out, ok := userBytes(buf, n*8, true)
	if !ok {
		return -eFAULT
	}
	for pfn := uint64(0); pfn < n; pfn++ {
		*(*uint64)(unsafe.Pointer(&out[pfn*8])) = p2m(pfn)
	}
	return 0
}

// ownFrame reports the current PFN of a machine frame of this domain.
func ownFrame(mfn uint64) (uint64, bool) {
	pfn := m2p(mfn)
	return pfn, pfn < mm.nrPages && p2m(pfn) == mfn
}

// protectFrame removes write access to mfn (old number pfn) from every
// mapping the shim may hold: the builder's initial mapping and the direct
// map.
func protectFrame(pfn, mfn uint64) bool {
	vas := [2]uint64{}
	if pfn < mm.initEndPFN {
		vas[0] = mm.virtBase + pfn<<pageShift
	}
	if pfn < mm.dmapEnd {
		vas[1] = dmap(pfn)
	}
	for _, va := range vas {
		if va == 0 {
			continue
		}
		e := pte(va)
		if e&ptePresent == 0 || e&pteRW == 0 || (e&pteMFNMask)>>pageShift != mfn {
			continue
		}
		if updateVAMapping(va, mfn<<pageShift|pteKernRO) != 0 {
			return false
		}
	}
	return true
}

func chainFail(what string, rc int64) int64 {
	var l kline
	l.s("minios: chainload: ").s(what)
	if rc != 0 {
		l.s(": ").d(rc)
	}
	kconsole(l.s("\n").bytes())
	if rc >= 0 {
		rc = -eINVAL
	}
	return rc
}

// chainJumpSyscall is SysChainJump. Every check that can fail runs before
// anything is torn down, so a failure returns to the Go program (which
// reports it and goes back to the menu); from the pin of the new L4 on,
// the only way is forward.
func chainJumpSyscall(arg uint64) int64 {
	jb, ok := userBytes(arg, uint64(unsafe.Sizeof(shimabi.ChainJump{})), false)
	if !ok {
		return -eFAULT
	}
	j := *(*shimabi.ChainJump)(unsafe.Pointer(&jb[0]))
	if j.NrPages != mm.nrPages || j.L4PFN >= j.NrPages || j.BootStackPFN >= j.NrPages || j.NrTables == 0 {
		return chainFail("bad parameters", 0)
	}
	p2mb, ok1 := userBytes(j.P2M, j.NrPages*8, false)
	tb, ok2 := userBytes(j.Tables, j.NrTables*8, false)
	if !ok1 || !ok2 {
		return -eFAULT
	}
	newP2M := unsafe.Slice((*uint64)(unsafe.Pointer(&p2mb[0])), j.NrPages)
	tables := unsafe.Slice((*uint64)(unsafe.Pointer(&tb[0])), j.NrTables)
	for _, pfn := range tables {
		if pfn >= j.NrPages {
			return chainFail("page-table PFN out of range", 0)
		}
		if _, ok := ownFrame(newP2M[pfn]); !ok {
			return chainFail("page-table frame not ours", 0)
		}
	}
	l4 := newP2M[j.L4PFN]
	tramp := newP2M[j.BootStackPFN]
	trampPFN, ok := ownFrame(tramp)
	if !ok {
		return chainFail("boot stack frame not ours", 0)
	}
	va := j.BootStackVA &^ (pageSize - 1)
	if va == 0 || (va >= 0xffff800000000000 && va < 0xffff880000000000) || pte(va)&ptePresent != 0 {
		// The trampoline's address is in use by the shim itself (a
		// kernel linked where we run): not supported yet.
		return chainFail("the kernel's boot stack address collides with the loader", 0)
	}

	// The image's writable window goes away (the frames stay: they are
	// the next kernel's memory), then the direct-map aliases of the new
	// page tables become read-only, as Xen requires to pin them.
	if rc := unmapArea(j.Window, j.WindowPages, false); rc != 0 {
		return chainFail("unmap image window", rc)
	}
	for _, pfn := range tables {
		mfn := newP2M[pfn]
		old, _ := ownFrame(mfn)
		if !protectFrame(old, mfn) {
			return chainFail("write-protect page table", 0)
		}
	}
	page := bytesAt(uintptr(frameVA(trampPFN)), pageSize)
	writeTrampoline(page, trampolineParams{NewL4MFN: l4, OldL4MFN: mm.l4MFN, RSP: j.Stack, RSI: j.StartInfo, Entry: j.Entry})
	if !mapPage(va, tramp, pteKernRW) {
		return chainFail("map the trampoline", 0)
	}
	var op [3]uint64 // struct mmuext_op
	op[0], op[1] = mmuextPinL4, l4
	if rc := hypercall(hcMMUExtOp, uint64(uintptrOfU64(&op[0])), 1, 0, domidSelf, 0); rc != 0 {
		return chainFail("Xen refused the new page tables (MMUEXT_PIN_L4_TABLE)", rc)
	}

	// Point of no return.
	var l kline
	kconsole(l.s("gopvgrub: starting kernel at ").x(j.Entry).s("\n").bytes())
	for i := 0; i < 20 && !consoleDrained(); i++ {
		pollConsole()
	}
	chainTeardown()
	// Renumber: every frame whose PFN changed gets its M2P entry.
	for pfn := uint64(0); pfn < j.NrPages; pfn++ {
		if mfn := newP2M[pfn]; mfn != p2m(pfn) {
			mmuQueue(mfn<<pageShift|mmuMachphysUpdate, pfn)
		}
	}
	mmuFlush()
	chainJump(va)
	return 0
}

// chainTeardown leaves the vCPU as Xen starts a PV guest (xen-pv-abi.md
// §6.5): no timer, no bound ports but the console's and xenstore's,
// nothing pending, events masked, no trap table or callbacks, no user page
// table.
func chainTeardown() {
	hypercall(hcSetTimerOp, 0, 0, 0, 0, 0)
	hypercall(hcVCPUOp, vcpuopStopPeriodic, 0, 0, 0, 0)
	closePort := func(p uint32) {
		var c [1]uint32
		c[0] = p
		hypercall(hcEventChannelOp, evtchnopClose, uint64(uintptrOfU32(&c[0])), 0, 0, 0)
	}
	closePort(boot.timerPort)
	for p := uint32(1); p < maxPorts; p++ {
		if p != boot.consolePort && p != boot.storePort && userPorts[p/64]&(1<<(p%64)) != 0 {
			closePort(p)
		}
	}
	*(*uint8)(ptrAt(uintptr(sharedInfoVA + 1))) = 1 // evtchn_upcall_mask
	for w := uint64(0); w < 64; w++ {
		*siAt64(2048 + w*8) = 0 // evtchn_pending
	}
	*siAt64(8) = 0                              // evtchn_pending_sel
	*(*uint8)(ptrAt(uintptr(sharedInfoVA))) = 0 // evtchn_upcall_pending
	hypercall(hcSetTrapTable, 0, 0, 0, 0, 0)
	for _, typ := range []uint64{callbackTypeEvent, callbackTypeFail, callbackTypeSysc} {
		cb := [2]uint64{typ, 0}
		hypercall(hcCallbackOp, callbackopRegister, uint64(uintptrOfU64(&cb[0])), 0, 0, 0)
	}
	var op [3]uint64
	op[0], op[1] = mmuextNewUserBase, 0
	hypercall(hcMMUExtOp, uint64(uintptrOfU64(&op[0])), 1, 0, domidSelf, 0)
}
