//go:build xenpv

package minios

import (
	"math/bits"
	"sync/atomic"

	"github.com/gopvgrub/gopvgrub/minios/shimabi"
	"github.com/gopvgrub/gopvgrub/xen/ring"
)

// The machine layer under Xen: time from the vCPU's pvclock, the PV console
// ring, event channels in the 2-level ABI, idling in SCHEDOP_poll, and the
// kernel entry that ties the shim's logic to the assembly.

var xm struct {
	lastNow    uint64
	armed      uint64
	pollPorts  [128]uint32
	nPollPorts int
}

func addPollPort(p uint32) {
	for i := 0; i < xm.nPollPorts; i++ {
		if xm.pollPorts[i] == p {
			return
		}
	}
	if xm.nPollPorts < len(xm.pollPorts) {
		xm.pollPorts[xm.nPollPorts] = p
		xm.nPollPorts++
	}
}

func removePollPort(p uint32) {
	for i := 0; i < xm.nPollPorts; i++ {
		if xm.pollPorts[i] == p {
			xm.nPollPorts--
			xm.pollPorts[i] = xm.pollPorts[xm.nPollPorts]
			return
		}
	}
}

func siAt32(off uint64) *uint32 { return (*uint32)(ptrAt(uintptr(sharedInfoVA + off))) }
func siAt64(off uint64) *uint64 { return (*uint64)(ptrAt(uintptr(sharedInfoVA + off))) }

// mNow is Xen system time in ns, from vcpu_info[0].time (struct
// vcpu_time_info, xen.h): system_time + ((tsc - tsc_timestamp) << shift)
// * mul >> 32, read under the version seqlock.
func mNow() uint64 {
	for {
		ver := atomic.LoadUint32(siAt32(32))
		if ver&1 != 0 {
			continue
		}
		tscStamp := atomic.LoadUint64(siAt64(40))
		sys := atomic.LoadUint64(siAt64(48))
		mul := atomic.LoadUint32(siAt32(56))
		shift := int8(*(*uint8)(ptrAt(uintptr(sharedInfoVA + 60))))
		tsc := rdtsc()
		if atomic.LoadUint32(siAt32(32)) != ver {
			continue
		}
		var delta uint64
		if tsc > tscStamp {
			delta = tsc - tscStamp
		}
		if shift >= 0 {
			delta <<= uint(shift)
		} else {
			delta >>= uint(-shift)
		}
		hi, lo := bits.Mul64(delta, uint64(mul))
		now := sys + (hi<<32 | lo>>32)
		if now < xm.lastNow {
			now = xm.lastNow // never backwards
		}
		xm.lastNow = now
		return now
	}
}

// mWallclock is shared_info's wall clock at boot plus system time.
func mWallclock() (uint64, uint64) {
	for {
		ver := atomic.LoadUint32(siAt32(3072))
		if ver&1 != 0 {
			continue
		}
		sec := uint64(atomic.LoadUint32(siAt32(3076))) | uint64(atomic.LoadUint32(siAt32(3084)))<<32
		nsec := uint64(atomic.LoadUint32(siAt32(3080)))
		if atomic.LoadUint32(siAt32(3072)) != ver {
			continue
		}
		t := sec*1e9 + nsec + mNow()
		return t / 1e9, t % 1e9
	}
}

func notify(port uint32) {
	p := port
	hypercall(hcEventChannelOp, evtchnopSend, uint64(uintptrOfU32(&p)), 0, 0, 0)
}

// mConsoleWrite puts as much of p as fits into the console's out ring.
func mConsoleWrite(p []byte) int {
	_, out, err := ring.Console(bytesAt(uintptr(boot.consoleVA), ring.ConsolePageSize))
	if err != nil {
		return len(p)
	}
	n, err := out.Produce(p)
	if err != nil {
		return len(p) // a corrupt ring: drop output rather than hang
	}
	if n > 0 {
		notify(boot.consolePort)
	}
	return n
}

func consoleDrained() bool {
	_, out, _ := ring.Console(bytesAt(uintptr(boot.consoleVA), ring.ConsolePageSize))
	n, err := out.Pending()
	return err != nil || n == 0
}

// pollConsole waits up to 50 ms for the console backend.
func pollConsole() {
	var port [1]uint32
	port[0] = boot.consolePort
	var args [3]uint64 // struct sched_poll: ports, nr_ports, timeout
	args[0] = uint64(uintptrOfU32(&port[0]))
	args[1] = 1
	args[2] = mNow() + 50e6
	hypercall(hcSchedOp, schedopPoll, uint64(uintptrOfU64(&args[0])), 0, 0, 0)
	handleEvents()
}

// kconsole writes a shim message, waiting (bounded) for room.
func kconsole(p []byte) {
	for tries := 0; len(p) > 0 && tries < 100; {
		n := mConsoleWrite(p)
		p = p[n:]
		if n == 0 {
			pollConsole()
			tries++
		}
	}
}

// panicLine reports a fatal shim error and crashes the domain.
func panicLine(l *kline) {
	l.s("\n")
	kconsole(l.bytes())
	mShutdown(shutdownCrash)
}

func mUserOK(addr, n uint64, write bool) bool { return userOK(addr, n, write) }

func mDropPages(start, end uint64) { dropPages(start, end) }

// mShutdown flushes the console (bounded) and stops the domain.
func mShutdown(reason int) {
	if boot.consoleVA != 0 {
		for i := 0; i < 60 && !consoleDrained(); i++ {
			pollConsole()
		}
	}
	for {
		r := uint32(reason)
		hypercall(hcSchedOp, schedopShutdown, uint64(uintptrOfU32(&r)), 0, 0, 0)
	}
}

func mRandom(p []byte) {
	for i := 0; i < len(p); {
		var v uint64
		ok := false
		if boot.cpuHasRDRAND {
			for try := 0; try < 10 && !ok; try++ {
				v, ok = rdrand()
			}
		}
		if !ok {
			// xorshift64* over the TSC: not for keys, and nothing in a
			// bootloader needs keys.
			x := boot.rngState ^ rdtsc()
			x ^= x >> 12
			x ^= x << 25
			x ^= x >> 27
			boot.rngState = x
			v = x * 2685821657736338717
		}
		for j := 0; j < 8 && i < len(p); j++ {
			p[i] = byte(v >> (8 * j))
			i++
		}
	}
}

// handleEvents scans the 2-level pending bitmaps (xen-pv-abi.md §5.1):
// clear the selector, then for each word take the pending and unmasked
// ports, clearing each pending bit before handling it.
func handleEvents() {
	*(*uint8)(ptrAt(uintptr(sharedInfoVA))) = 0 // evtchn_upcall_pending
	sel := atomic.SwapUint64(siAt64(8), 0)
	if sel == 0 {
		sel = ^uint64(0) // a poll wake-up: look at every word
	}
	for sel != 0 {
		w := uint64(bits.TrailingZeros64(sel))
		sel &^= 1 << w
		pend := siAt64(2048 + w*8)
		mask := siAt64(2560 + w*8)
		for {
			ready := atomic.LoadUint64(pend) &^ atomic.LoadUint64(mask)
			if ready == 0 {
				break
			}
			b := uint64(bits.TrailingZeros64(ready))
			atomic.AndUint64(pend, ^(uint64(1) << b))
			dispatchPort(uint32(w*64 + b))
		}
	}
}

func dispatchPort(port uint32) {
	switch port {
	case boot.timerPort:
		// The one-shot timer is spent: it must be armed again even for
		// the same deadline (it may have fired a hair before our clock
		// reached that deadline). Deadlines are checked by the caller.
		xm.armed = 0
	case boot.consolePort:
		k.consoleProgress()
		k.portEvent(port)
	default:
		k.portEvent(port)
	}
}

// idle blocks the vCPU until an event or the deadline (0 = none), with
// events still masked: SCHEDOP_poll returns when a listed port is pending.
func idle(deadline uint64) {
	var args [3]uint64
	args[0] = uint64(uintptrOfU32(&xm.pollPorts[0]))
	args[1] = uint64(xm.nPollPorts)
	args[2] = deadline
	t0 := mNow()
	hypercall(hcSchedOp, schedopPoll, uint64(uintptrOfU64(&args[0])), 0, 0, 0)
	k.idleNS += mNow() - t0
	k.idleWakes++
}

func armTimer(deadline uint64) {
	if deadline == xm.armed {
		return
	}
	xm.armed = deadline
	hypercall(hcSetTimerOp, deadline, 0, 0, 0, 0)
}

// kentry is called by kcommon for every entry into the shim. It saves the
// interrupted context into the current thread, handles the entry, picks the
// thread to resume and writes its context into f.
func kentry(f *frame) {
	kn := &k
	if f.cs&3 == 0 {
		kernelTrap(f) // a fault inside the shim itself: fatal
	}
	cur := kn.sched.cur
	t := &kn.sched.threads[cur&(maxThreads-1)]
	t.regs = *f
	now := mNow()
	preempt := false
	switch f.vector {
	case vecSyscall:
		kn.syscall(t, now)
	case vecEvent:
		handleEvents()
		preempt = true
	case 14:
		kn.pageFault(t)
	default:
		userTrap(t)
	}
	if kn.sched.expire(now) {
		preempt = true
	}
	next := kn.sched.pick(now, preempt)
	for next < 0 {
		d := kn.sched.earliest()
		if kn.trace {
			kn.traceLine("idle-until-us", d/1000, 0)
		}
		idle(d)
		handleEvents()
		now = mNow()
		kn.sched.expire(now)
		next = kn.sched.pick(now, false)
	}
	nt := &kn.sched.threads[next&(maxThreads-1)]
	if kn.trace && next != cur {
		kn.traceLine("switch-to-tid", uint64(nt.tid), uint64(f.vector))
	}
	*f = nt.regs
	curFX = uint64(nt.fxAddr())
	wantFS = nt.fsBase
	armTimer(kn.sched.timerDeadline())
}

func (kn *kernel) pageFault(t *thread) {
	addr := atomic.LoadUint64(siAt64(16)) // vcpu_info[0].arch.cr2
	switch kn.vmas.decideFault(addr, t.regs.err) {
	case faultMapZero:
		i, _ := kn.vmas.find(addr)
		if mapUserPage(addr&^(pageSize-1), kn.vmas.v[i].prot&protWrite != 0) {
			return
		}
		var l kline
		l.s("minios: out of memory: no free page for ").x(addr).s(" (")
		l.u(mm.nrPages * pageSize >> 20).s(" MiB domain)")
		report(t, &l, addr)
	default:
		var l kline
		l.s("minios: fatal page fault at address ").x(addr)
		if addr < pageSize {
			l.s(" (nil pointer dereference)")
		}
		report(t, &l, addr)
	}
}

var trapNames = [20]string{"divide error", "debug", "NMI", "breakpoint", "overflow",
	"bound range", "invalid opcode", "device not available", "double fault", "coprocessor",
	"invalid TSS", "segment not present", "stack fault", "general protection", "page fault",
	"reserved", "x87 FP error", "alignment check", "machine check", "SIMD FP error"}

func userTrap(t *thread) {
	var l kline
	v := t.regs.vector
	if v == vecFailsafe {
		l.s("minios: failsafe callback (bad segment selector)")
	} else if v < 20 {
		l.s("minios: fatal exception: ").s(trapNames[v]).s(" (vector ").u(v).s(")")
	} else {
		l.s("minios: unexpected entry vector ").x(v)
	}
	report(t, &l, 0)
}

// report prints the fatal error, the registers and a frame-pointer
// backtrace of the user thread (map the addresses with `go tool addr2line`
// on build/gopvgrub.elf), then crashes the domain.
func report(t *thread, l *kline, addr uint64) {
	r := &t.regs
	l.s(" in thread ").u(uint64(t.tid)).s(" at rip ").x(r.rip).s(" error code ").x(r.err).s("\n")
	kconsole(l.bytes())
	var a kline
	a.s("  rax ").x(r.rax).s(" rbx ").x(r.rbx).s(" rcx ").x(r.rcx).s(" rdx ").x(r.rdx).s("\n")
	a.s("  rsi ").x(r.rsi).s(" rdi ").x(r.rdi).s(" rbp ").x(r.rbp).s(" rsp ").x(r.rsp).s("\n")
	a.s("  r8 ").x(r.r8).s(" r9 ").x(r.r9).s(" r10 ").x(r.r10).s(" r11 ").x(r.r11).s("\n")
	a.s("  r12 ").x(r.r12).s(" r13 ").x(r.r13).s(" r14 ").x(r.r14).s(" r15 ").x(r.r15).s("\n")
	kconsole(a.bytes())
	var b kline
	b.s("  backtrace: ").x(r.rip)
	fp := r.rbp
	for i := 0; i < 24 && fp != 0 && fp&7 == 0; i++ {
		if pte(fp)&ptePresent == 0 || pte(fp+8)&ptePresent == 0 {
			break
		}
		ret := *(*uint64)(ptrAt(uintptr(fp + 8)))
		next := *(*uint64)(ptrAt(uintptr(fp)))
		b.s(" ").x(ret)
		if next <= fp {
			break
		}
		fp = next
	}
	b.s("\n")
	kconsole(b.bytes())
	mShutdown(shutdownCrash)
}

// kernelTrap reports a fault in the shim's own code.
func kernelTrap(f *frame) {
	var l kline
	l.s("minios: fault in the shim: vector ").u(f.vector).s(" error ").x(f.err).s(" rip ").x(f.rip)
	l.s(" rsp ").x(f.rsp).s(" cr2 ").x(atomic.LoadUint64(siAt64(16))).s("\n")
	kconsole(l.bytes())
	mShutdown(shutdownCrash)
}

// stats fills shimabi.Stats.
func stats(s *shimabi.Stats) {
	s.PagesTotal = mm.nrPages
	s.PagesFree = k.frames.free
	s.PagesPeakUsed = k.frames.peak
	s.Syscalls, s.PageFaults = k.syscalls, k.faults
	s.Switches, s.Preemptions = k.sched.switches, k.sched.preempts
	s.Events = k.events
	s.Threads = uint64(k.sched.nthreads)
	s.IdleNS = k.idleNS
	s.WakeLateMaxNS, s.WakesLate1ms, s.IdleWakes = k.sched.lateMax, k.sched.late1ms, k.idleWakes
	s.NowNS = mNow()
}
