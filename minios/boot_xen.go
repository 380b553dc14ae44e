//go:build xenpv

package minios

import (
	"unsafe"

	"github.com/gopvgrub/gopvgrub/minios/shimabi"
	"github.com/gopvgrub/gopvgrub/xen"
)

// Assembly (entry_amd64.s).
func xenStart()
func kcommon()
func kexit()
func entrySyscall()
func entryEvent()
func entryFailsafe()
func hypercall(op, a1, a2, a3, a4, a5 uint64) int64
func rdtsc() uint64
func rdrand() (v uint64, ok bool)
func cpuid(leaf, sub uint32) (a, b, c, d uint32)
func fxsave(addr uintptr)
func rt0Addr() uint64
func imageEnd() uint64
func entryAddrs(out *[nEntries]uint64)

const (
	kstackSize  = 65536 // asm_amd64.h KSTACK_SIZE
	kstackGuard = 8192  // KSTACK_GUARD
	frameSize   = 176   // FRAME_SIZE
	vecSyscall  = 0x100
	vecEvent    = 0x101
	vecFailsafe = 0x102
	nEntries    = 23
)

// State the assembly reads and writes. All of it is pointer-free.
var (
	startInfoVA uint64
	kstack      [kstackSize]byte
	bootTLS     [8]uint64
	fakeG       [64]uint64
	savedG      uint64
	curFS       uint64
	wantFS      uint64
	curFX       uint64
	mxcsrInit   = uint32(0x1f80)
	// lazyBSS is the BSS tail that the image packer removed from p_memsz
	// (cmd/mkimage, internal/pvimage): [start, end), demand-paged.
	lazyBSS = [2]uint64{0x5353426c617a7921, 0}
)

// Boot facts, for SysInfo and the shim.
var boot struct {
	si           [shimabi.StartInfoSize]byte
	info         shimabi.Info
	storeMFN     uint64
	storePort    uint32
	consoleMFN   uint64
	consolePort  uint32
	consoleVA    uint64
	storeVA      uint64
	sharedInfoMA uint64
	timerPort    uint32
	kernelEndPFN uint64
	modStartPFN  uint64
	modPages     uint64
	cmdline      [1024]byte
	trapTable    [24][2]uint64 // struct trap_info: vector, flags, cs | address
	entries      [nEntries]uint64
	cpuHasRDRAND bool
	rngState     uint64
	xenMajor     uint64
	xenMinor     uint64
}

func siU64(off int) uint64 { return *(*uint64)(unsafe.Pointer(&boot.si[off])) }
func siU32(off int) uint32 { return *(*uint32)(unsafe.Pointer(&boot.si[off])) }

// kmain runs once, in kernel mode on kstack with events masked. It sets up
// memory, traps, callbacks and the timer, then prepares thread 0 to enter
// the Go runtime in user mode.
func kmain() {
	bootNS := uint64(0)
	copy(boot.si[:], bytesAt(uintptr(startInfoVA), shimabi.StartInfoSize))
	if string(boot.si[:14]) != "xen-3.0-x86_64" {
		mShutdown(shutdownCrash) // nothing else to do: no console yet
	}
	mm.virtBase = 0x400000
	mm.nrPages = siU64(xen.SIOffNrPages)
	mm.p2mVA = siU64(xen.SIOffMFNList)
	boot.sharedInfoMA = siU64(xen.SIOffSharedInfo)
	boot.storeMFN = siU64(xen.SIOffStoreMFN)
	boot.storePort = siU32(xen.SIOffStoreEvtchn)
	boot.consoleMFN = siU64(xen.SIOffConsoleMFN)
	boot.consolePort = siU32(xen.SIOffConsoleEvtchn)
	boot.consoleVA = mm.virtBase + m2p(boot.consoleMFN)<<pageShift
	copy(boot.cmdline[:], boot.si[xen.SIOffCmdLine:xen.SIOffCmdLine+1024])
	boot.cmdline[1023] = 0

	// Time first, so the boot timestamp is real.
	mapSharedInfoEarly()
	bootNS = mNow()
	var l kline
	kconsole(l.s("gopvgrub: minios starting: ").u(mm.nrPages * pageSize >> 20).s(" MiB, start_info at ").x(startInfoVA).s("\n").bytes())

	initMemory()
	initTraps()
	initUser()
	boot.info.BootNS = bootNS
	boot.info.UserEntryNS = mNow()
	boot.info.FreeAtEntry = k.frames.free
	k.frames.resetPeak()
}

// mapSharedInfoEarly maps shared_info at its fixed VA. The tables for it
// are taken from the builder's padding, like every early table.
func mapSharedInfoEarly() {
	readInitialLayout()
	if !mapPage(sharedInfoVA, boot.sharedInfoMA>>pageShift, pteKernRW) {
		mShutdown(shutdownCrash)
	}
}

// readInitialLayout learns the builder's layout from start_info and by
// walking its page tables (xen-pv-abi.md §2.2, Appendix B): page tables,
// then the boot stack, then padding up to the end of the initial mapping.
func readInitialLayout() {
	ptBase := siU64(xen.SIOffPTBase)
	mm.nrPT = siU64(xen.SIOffNrPTFrames)
	mm.ptBasePFN = (ptBase - mm.virtBase) >> pageShift
	mm.l4MFN = p2m(mm.ptBasePFN)
	stackPFN := mm.ptBasePFN + mm.nrPT
	// Where does the initial mapping end? Walk it.
	end := stackPFN + 1
	for end < mm.nrPages {
		va := mm.virtBase + end<<pageShift
		if pteInitial(va)&ptePresent == 0 {
			break
		}
		end++
	}
	mm.initEndPFN = end
	mm.padStart, mm.padNext, mm.padEnd = stackPFN+1, stackPFN+1, end
	mm.bumpNext = end
	boot.info.VirtBase = mm.virtBase
	boot.info.InitialMapEnd = mm.virtBase + end<<pageShift
	recordInitialTables()
}

// pteInitial reads an entry of the builder's tables through the initial
// mapping (before the direct map exists).
func pteInitial(va uint64) uint64 {
	mfn := mm.l4MFN
	for level := uint(4); level >= 1; level-- {
		e := readEntry(mfn, ptIndex(va, level))
		if e&ptePresent == 0 || level == 1 {
			return e
		}
		mfn = (e & pteMFNMask) >> pageShift
	}
	return 0
}

// recordInitialTables lists the builder's page-table frames (level in the
// top bits) in the order the builder allocates them: L4, L3s, L2s, L1s.
func recordInitialTables() {
	n := 0
	add := func(pfn, level uint64) {
		for i := 0; i < n; i++ {
			if boot.info.InitialPT[i] == pfn|level<<60 {
				return
			}
		}
		if n < shimabi.MaxInitialPT {
			boot.info.InitialPT[n] = pfn | level<<60
			n++
		}
	}
	add(mm.ptBasePFN, 4)
	for level := uint64(3); level >= 1; level-- {
		for pfn := uint64(0); pfn < mm.initEndPFN; pfn += 1 << (9 * (level - 1)) {
			va := mm.virtBase + pfn<<pageShift
			mfn := mm.l4MFN
			for l := uint(4); l > uint(level); l-- {
				e := readEntry(mfn, ptIndex(va, l))
				if e&ptePresent == 0 {
					mfn = 0
					break
				}
				mfn = (e & pteMFNMask) >> pageShift
			}
			if mfn != 0 {
				add(m2p(mfn), level)
			}
		}
	}
	boot.info.NumInitialPT = uint64(n)
	for i := 0; i < n; i++ {
		pfn, level := boot.info.InitialPT[i]&^(0xf<<60), boot.info.InitialPT[i]>>60
		boot.info.InitialPTHash[i] = tableHash(p2m(pfn), level)
	}
}

// tableHash digests a page table as the builder wrote it, for the layout
// e2e test: FNV-1a 64 over its 512 entries, each with its frame number
// turned into a PFN and the Accessed/Dirty bits (which the CPU may have
// set since) cleared; absent entries count as 0, and so do Xen's own
// slots 256–271 of the L4. It runs before the shim changes any table
// (loader/layout/xendump computes the same from a plan).
func tableHash(mfn, level uint64) uint64 {
	h := uint64(14695981039346656037)
	for i := uint64(0); i < 512; i++ {
		e := readEntry(mfn, i)
		if e&ptePresent == 0 || level == 4 && i >= 256 && i <= 271 {
			e = 0
		} else {
			e = m2p((e&pteMFNMask)>>pageShift)<<pageShift | e&(1<<63|0xfff)&^0x60
		}
		for b := 0; b < 8; b++ {
			h ^= e >> (8 * b) & 0xff
			h *= 1099511628211
		}
	}
	return h
}

func initMemory() {
	var l kline
	// The image as Xen loaded it ends at the trimmed p_memsz.
	imgEnd := imageEnd()
	if lazyBSS[1] != 0 {
		imgEnd = lazyBSS[0]
	}
	boot.kernelEndPFN = (imgEnd - mm.virtBase + pageSize - 1) >> pageShift
	if siU64(xen.SIOffModLen) != 0 {
		ms := siU64(xen.SIOffModStart)
		if siU64(xen.SIOffFlags)&xen.SIFModStartPFN != 0 {
			boot.modStartPFN = ms
		} else {
			boot.modStartPFN = (ms - mm.virtBase) >> pageShift
		}
		boot.modPages = (siU64(xen.SIOffModLen) + pageSize - 1) >> pageShift
	}
	// 1. The direct map, in two steps: first as much as the padding's
	// frames can map (always the whole initial region), then the rest
	// with tables taken from frames the first step mapped.
	isTable := func(pfn uint64) bool {
		return pfn >= mm.ptBasePFN && pfn < mm.ptBasePFN+mm.nrPT ||
			pfn >= mm.padStart && pfn < mm.padNext ||
			pfn >= mm.initEndPFN && pfn < mm.bumpNext
	}
	pad := mm.padEnd - mm.padNext
	first := (pad - 4) * 512 // room for the L3 and a few L2s
	if first > mm.nrPages {
		first = mm.nrPages
	}
	if first < mm.initEndPFN+64 || !buildDirectMap(0, first, isTable) {
		panicLine(l.s("minios: cannot build the direct map (padding ").u(pad).s(" frames)"))
	}
	mm.padEnd = mm.padNext // the padding is no longer handed out
	if first < mm.nrPages && !buildDirectMap(first, mm.nrPages, isTable) {
		panicLine(l.s("minios: cannot build the direct map above frame ").x(first))
	}
	mm.dmapReady = true
	p2mPFN := (siU64(xen.SIOffMFNList) - mm.virtBase) >> pageShift
	mm.p2mVA = dmap(p2mPFN)
	boot.consoleVA = dmap(m2p(boot.consoleMFN))
	boot.storeVA = dmap(m2p(boot.storeMFN))

	// 2. The frame allocator's bitmap, in frames after the bump range.
	bitmapPages := (mm.nrPages/8 + pageSize - 1) >> pageShift
	bitmapPFN := mm.bumpNext
	if bitmapPFN+bitmapPages >= mm.nrPages {
		panicLine(l.s("minios: no room for the frame bitmap"))
	}
	k.frames.init(uintptr(dmap(bitmapPFN)), mm.nrPages)
	for pfn := mm.padNext; pfn < mm.initEndPFN; pfn++ {
		k.frames.release(pfn)
	}
	k.frames.release(mm.ptBasePFN + mm.nrPT) // the boot stack: xenStart left it
	for pfn := bitmapPFN + bitmapPages; pfn < mm.nrPages; pfn++ {
		k.frames.release(pfn)
	}
	// A ramdisk= module stays reserved: SysInfo exposes it.
	for pfn := boot.modStartPFN; pfn < boot.modStartPFN+boot.modPages; pfn++ {
		k.frames.take(pfn)
	}

	// 3. Drop the initial mapping above the image: from now on the shim
	// reaches those frames through the direct map, and the VAs become the
	// demand-paged BSS tail.
	for pfn := boot.kernelEndPFN; pfn < mm.initEndPFN; pfn++ {
		va := mm.virtBase + pfn<<pageShift
		l1, _, ok := l1For(va, false)
		if ok {
			mmuQueue(l1<<pageShift+ptIndex(va, 1)*8, 0)
		}
	}
	mmuFlush()
	tlbFlush()
	k.mapNext = mapAreaBase + 16*pageSize

	boot.info.ImageEnd = imgEnd
	boot.info.LazyBSSStart, boot.info.LazyBSSEnd = lazyBSS[0], lazyBSS[1]
	if lazyBSS[1] == 0 {
		boot.info.LazyBSSStart = 0
	}
	boot.info.NrPages = mm.nrPages
	boot.info.StoreVA, boot.info.ConsoleVA, boot.info.SharedInfoVA = boot.storeVA, boot.consoleVA, sharedInfoVA
	copy(boot.info.StartInfo[:], boot.si[:])
	if boot.modPages != 0 {
		boot.info.ModVA, boot.info.ModLen = dmap(boot.modStartPFN), siU64(xen.SIOffModLen)
	}
	kconsole(l.s("gopvgrub: memory: ").u(k.frames.free).s(" of ").u(mm.nrPages).s(" pages free, image ends at ").x(imgEnd).s("\n").bytes())
}

func initTraps() {
	var l kline
	entryAddrs(&boot.entries)
	n := 0
	for v := 0; v < 20; v++ {
		addr := boot.entries[3+v]
		if addr == 0 {
			continue
		}
		flags := uint64(4) // clear the event-enable flag on entry
		if v == 3 {
			flags |= 3 // int3 allowed from user mode
		}
		boot.trapTable[n] = [2]uint64{uint64(v) | flags<<8 | flatKernelCS<<16, addr}
		n++
	}
	boot.trapTable[n] = [2]uint64{0, 0}
	if rc := hypercall(hcSetTrapTable, uint64(uintptrOfU64(&boot.trapTable[0][0])), 0, 0, 0, 0); rc != 0 {
		panicLine(l.s("minios: set_trap_table: ").d(rc))
	}
	reg := func(typ, flags, addr uint64) {
		cb := [2]uint64{typ | flags<<16, addr}
		if rc := hypercall(hcCallbackOp, callbackopRegister, uint64(uintptrOfU64(&cb[0])), 0, 0, 0); rc != 0 {
			var l2 kline
			panicLine(l2.s("minios: callback_op register type ").u(typ).s(": ").d(rc))
		}
	}
	reg(callbackTypeEvent, 0, boot.entries[1])
	reg(callbackTypeFail, 0, boot.entries[2])
	reg(callbackTypeSysc, callbackfMask, boot.entries[0])
	if rc := hypercall(hcStackSwitch, flatKernelSS, uint64(uintptrOf(&kstack[0]))+kstackSize, 0, 0, 0); rc != 0 {
		panicLine(l.s("minios: stack_switch: ").d(rc))
	}
	// The timer: one-shot only (stop the default 10 ms periodic tick).
	hypercall(hcVCPUOp, vcpuopStopPeriodic, 0, 0, 0, 0)
	var bind [3]uint32 // struct evtchn_bind_virq: virq, vcpu, port
	bind[0] = virqTimer
	if rc := hypercall(hcEventChannelOp, evtchnopBindVIRQ, uint64(uintptrOfU32(&bind[0])), 0, 0, 0); rc != 0 {
		panicLine(l.s("minios: bind VIRQ_TIMER: ").d(rc))
	}
	boot.timerPort = bind[2]
	addPollPort(boot.timerPort)
	addPollPort(boot.consolePort)
	addPollPort(boot.storePort)
	v := hypercall(hcXenVersion, 0, 0, 0, 0, 0)
	boot.xenMajor, boot.xenMinor = uint64(v)>>16, uint64(v)&0xffff
	boot.info.XenVersion = uint64(v)
	_, _, c, _ := cpuid(1, 0)
	boot.cpuHasRDRAND = c&(1<<30) != 0
	boot.rngState = rdtsc() | 1
}

// initUser creates the program's first thread: the user stack with argv,
// envp and auxv as Linux lays them out (go-runtime-on-xen.md §2), the lazy
// BSS area, and a user page table (the same L4: xen-pv-abi.md §4.2).
func initUser() {
	var l kline
	k.sched.init()
	k.fds.init()
	if lazyBSS[1] != 0 && !k.vmas.insert(lazyBSS[0], lazyBSS[1], protRead|protWrite) {
		panicLine(l.s("minios: lazy BSS area"))
	}
	if !k.vmas.insert(stackTop-stackSize, stackTop, protRead|protWrite) {
		panicLine(l.s("minios: stack area"))
	}
	sp := buildInitialStack()
	t := &k.sched.threads[0]
	t.regs = frame{rip: rt0Addr(), cs: flatUserCS, rflags: 0x202, rsp: sp, ss: flatUserSS}
	t.fsBase = curFS
	fxsave(t.fxAddr())
	curFX = uint64(t.fxAddr())
	wantFS = t.fsBase
	var op [3]uint64
	op[0], op[1] = mmuextNewUserBase, mm.l4MFN
	if rc := hypercall(hcMMUExtOp, uint64(uintptrOfU64(&op[0])), 1, 0, domidSelf, 0); rc != 0 {
		panicLine(l.s("minios: NEW_USER_BASEPTR: ").d(rc))
	}
}

// buildInitialStack writes argc, argv, envp, auxv and their strings below
// stackTop and returns the initial RSP.
func buildInitialStack() uint64 {
	var l kline
	const strArea = 8192
	top := uint64(stackTop)
	if !userOK(top-2*strArea, 2*strArea, true) {
		panicLine(l.s("minios: cannot map the initial stack"))
	}
	// Strings go at the top, growing down.
	str := top
	push := func(s []byte) uint64 {
		str -= uint64(len(s)) + 1
		b := bytesAt(uintptr(str), len(s)+1)
		copy(b, s)
		b[len(s)] = 0
		return str
	}
	var argv [64]uint64
	argc := 0
	argv[argc] = push([]byte("gopvgrub"))
	argc++
	// argv[1:] = the domain's command line (extra=), split on spaces.
	cl := boot.cmdline[:]
	for i := 0; i < len(cl) && cl[i] != 0 && argc < len(argv)-1; {
		for i < len(cl) && cl[i] == ' ' {
			i++
		}
		j := i
		for j < len(cl) && cl[j] != 0 && cl[j] != ' ' {
			j++
		}
		if j > i {
			argv[argc] = push(cl[i:j])
			argc++
		}
		i = j
	}
	var envp [8]uint64
	envc := 0
	for _, e := range []string{
		"GOMAXPROCS=1", // one P: cooperative switching is safe only then
		"GODEBUG=asyncpreemptoff=1,madvdontneed=0,decoratemappings=0,updatemaxprocs=0",
		"TZ=",
		"GOTRACEBACK=all",
		"GOPVGRUB=1",
	} {
		envp[envc] = push([]byte(e))
		envc++
	}
	// GOMEMLIMIT from the memory the program can have. A quarter stays
	// outside the runtime's budget: the limit is soft (the GC's CPU limiter
	// lets the heap overshoot it under pressure), and frames also go to page
	// tables, touched BSS and the loader's own allocations outside the heap.
	var ml kline
	ml.s("GOMEMLIMIT=").u(k.frames.free * pageSize * 3 / 4)
	envp[envc] = push(ml.bytes())
	envc++
	// 16 random bytes for AT_RANDOM
	str -= 16
	str &^= 15
	mRandom(bytesAt(uintptr(str), 16))
	random := str
	// The vector block, 16-byte aligned at argc.
	words := 1 + argc + 1 + envc + 1 + 6 + 2
	sp := (str - uint64(words)*8) &^ 15
	w := unsafeSliceU64(sp, words)
	i := 0
	w[i] = uint64(argc)
	i++
	for a := 0; a < argc; a++ {
		w[i] = argv[a]
		i++
	}
	w[i] = 0
	i++
	for e := 0; e < envc; e++ {
		w[i] = envp[e]
		i++
	}
	w[i] = 0
	i++
	w[i], w[i+1] = 6, pageSize  // AT_PAGESZ: mallocinit needs it
	w[i+2], w[i+3] = 25, random // AT_RANDOM
	w[i+4], w[i+5] = 23, 0      // AT_SECURE
	w[i+6], w[i+7] = 0, 0       // AT_NULL
	return sp
}

// firstFrame fills the frame xenStart built on kstack with thread 0.
func firstFrame(f *frame) {
	*f = k.sched.threads[0].regs
	k.sched.lastSwitch = mNow()
}

func uintptrOfU64(p *uint64) uintptr    { return uintptr(unsafe.Pointer(p)) }
func uintptrOfU32(p *uint32) uintptr    { return uintptr(unsafe.Pointer(p)) }
func uintptrOfMMU(p *mmuUpdate) uintptr { return uintptr(unsafe.Pointer(p)) }
func unsafeSliceU64(va uint64, n int) []uint64 {
	return unsafe.Slice((*uint64)(ptrAt(uintptr(va))), n)
}
