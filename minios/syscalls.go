package minios

import "github.com/gopvgrub/gopvgrub/minios/shimabi"

// The Linux system calls the Go runtime makes, emulated for one process on
// one vCPU (go-runtime-on-xen.md §3 lists each with its caller). Every call
// not handled here returns -ENOSYS and prints one console line naming it, so
// that a new Go release's new syscall is visible at once.

// kernel is all shim state. One global; integers and arrays only.
type kernel struct {
	sched  scheduler
	fds    fdTable
	vmas   vmaSet
	frames frameAllocator

	syscalls, faults, events uint64
	idleNS                   uint64
	idleWakes                uint64
	trace                    bool
	warned                   [maxSyscallNameable / 64]uint64
	// the next fresh address for shim-made mappings (SysMapFrames,
	// SysAllocPages)
	mapNext uint64
}

var k kernel

// Linux signal numbers the runtime sends to itself.
const (
	sigURG  = 23
	sigABRT = 6
)

// Helpers for user memory. mUserOK makes sure the range is mapped (faulting
// in demand-zero pages) so the shim never takes a page fault itself.

func userU32(addr uint64) (uint32, bool) {
	if addr&3 != 0 || !mUserOK(addr, 4, false) {
		return 0, false
	}
	return *(*uint32)(ptrAt(uintptr(addr))), true
}

func userU64(addr uint64) (uint64, bool) {
	if !mUserOK(addr, 8, false) {
		return 0, false
	}
	return *(*uint64)(ptrAt(uintptr(addr))), true
}

func putU64(addr, v uint64) bool {
	if !mUserOK(addr, 8, true) {
		return false
	}
	*(*uint64)(ptrAt(uintptr(addr))) = v
	return true
}

func putU32(addr uint64, v uint32) bool {
	if !mUserOK(addr, 4, true) {
		return false
	}
	*(*uint32)(ptrAt(uintptr(addr))) = v
	return true
}

func userBytes(addr, n uint64, write bool) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	if n > 1<<30 || !mUserOK(addr, n, write) {
		return nil, false
	}
	return bytesAt(uintptr(addr), int(n)), true
}

// timespecNS reads a struct timespec; ok=false for a bad address or value.
func timespecNS(addr uint64) (int64, bool) {
	sec, ok1 := userU64(addr)
	nsec, ok2 := userU64(addr + 8)
	if !ok1 || !ok2 || int64(sec) < 0 || nsec >= 1e9 {
		return 0, false
	}
	if sec > 1<<32 { // far future: clamp, nobody waits 136 years
		sec = 1 << 32
	}
	return int64(sec)*1e9 + int64(nsec), true
}

func putTimespec(addr, ns uint64) bool {
	return putU64(addr, ns/1e9) && putU64(addr+8, ns%1e9)
}

// syscall runs the system call the current thread t made. The result goes
// into its saved RAX, or the thread blocks and gets its result when woken.
func (kn *kernel) syscall(t *thread, now uint64) {
	nr := t.regs.rax
	kn.doSyscall(t, now)
	if kn.trace {
		kn.traceSyscall(t, nr, now)
	}
}

func (kn *kernel) doSyscall(t *thread, now uint64) {
	kn.syscalls++
	r := &t.regs
	nr := r.rax
	a1, a2, a3, a4 := r.rdi, r.rsi, r.rdx, r.r10
	ret := int64(-eNOSYS)
	switch nr {
	case sysRead:
		ret = kn.read(a1, a2, a3)
	case sysWrite:
		ret = kn.write(t, a1, a2, a3)
		if t.state == tsBlocked {
			return
		}
	case sysClose:
		ret = kn.fds.close(a1)
	case sysMmap:
		ret = kn.mmap(a1, a2, a3, a4, r.r8)
	case sysMunmap:
		ret = kn.munmap(a1, a2)
	case sysMadvise:
		ret = kn.madvise(a1, a2, a3)
	case sysRtSigaction:
		ret = 0
		if a3 != 0 { // old action: SIG_DFL, no flags
			for i := uint64(0); i < 32; i += 8 {
				if !putU64(a3+i, 0) {
					ret = -eFAULT
				}
			}
		}
	case sysRtSigprocmask:
		ret = 0
		if a3 != 0 && !putU64(a3, 0) {
			ret = -eFAULT
		}
	case sysSigaltstack:
		ret = 0
		if a2 != 0 && !(putU64(a2, 0) && putU64(a2+8, ssDisable) && putU64(a2+16, 0)) {
			ret = -eFAULT
		}
	case sysSchedYield:
		kn.sched.yield(now)
		ret = 0
	case sysNanosleep:
		ns, ok := timespecNS(a1)
		if !ok {
			ret = -eINVAL
			break
		}
		ret = 0
		if ns > 0 {
			r.rax = 0
			kn.sched.block(wSleep, now+uint64(ns))
			return
		}
		kn.sched.yield(now)
	case sysGetpid:
		ret = 1
	case sysClone:
		ret = kn.clone(t, a1, a2, r.r8)
	case sysExit:
		if kn.sched.nthreads <= 1 {
			kn.exitGroup(a1)
		}
		kn.sched.exitCurrent()
		return
	case sysExitGroup:
		kn.exitGroup(a1)
		return
	case sysKill, sysTgkill, sysTkill:
		sig := a2
		if nr == sysTgkill {
			sig = a3
		}
		ret = 0
		if sig != 0 && sig != sigURG {
			var l kline
			kconsole(l.s("minios: the program sent itself signal ").u(sig).s("; stopping\n").bytes())
			mShutdown(shutdownCrash)
		}
	case sysUname:
		ret = kn.uname(a1)
	case sysFcntl:
		ret = kn.fcntl(a1, a2)
	case sysPrctl:
		ret = -eINVAL // PR_SET_VMA: the runtime then stops naming mappings
	case sysArchPrctl:
		switch a1 {
		case archSetFS:
			t.fsBase = a2
			ret = 0
		case archGetFS:
			ret = 0
			if !putU64(a2, t.fsBase) {
				ret = -eFAULT
			}
		default:
			ret = -eINVAL
		}
	case sysGettid:
		ret = int64(t.tid)
	case sysFutex:
		ret = kn.futex(t, now, a1, a2, a3, a4)
		if t.state == tsBlocked {
			return
		}
	case sysSchedGetaffin:
		// One CPU: with GOMAXPROCS=1 only one M runs Go code, which is
		// what makes cooperative switching safe (go-runtime-on-xen.md §5.4).
		ret = -eINVAL
		if a2 >= 8 {
			ret = 8
			if !putU64(a3, 1) {
				ret = -eFAULT
			}
		}
	case sysClockGettime:
		ret = 0
		var ns uint64
		switch a1 {
		case clockRealtime, clockRTCoarse:
			sec, nsec := mWallclock()
			ns = sec*1e9 + nsec
		case clockMonotone, clockMonoRaw, clockMonoCrs, clockBoottime, clockProcCPU, clockThrCPU:
			ns = now
		default:
			ret = -eINVAL
		}
		if ret == 0 && !putTimespec(a2, ns) {
			ret = -eFAULT
		}
	case sysEpollCreate1:
		ret = kn.fds.open(fdEpoll)
	case sysEventfd2:
		ret = kn.fds.open(fdEventfd)
		if ret >= 0 {
			kn.fds.fds[ret].count = uint64(uint32(a1))
		}
	case sysEpollCtl:
		ret = kn.epollCtl(a1, a2, a3, a4)
	case sysEpollPwait:
		ret = kn.epollWait(t, now, a1, a2, a3, a4)
		if t.state == tsBlocked {
			return
		}
	case sysOpenat, sysNewfstatat:
		ret = -eNOENT // no files: THP size, cgroups, /etc/localtime are absent
	case sysPread64:
		ret = -eBADF
	case sysPrlimit64:
		ret = -eNOSYS
	case sysGetrandom:
		buf, ok := userBytes(a1, a2, true)
		if !ok {
			ret = -eFAULT
			break
		}
		mRandom(buf)
		ret = int64(a2)
	case shimabi.SysTrace:
		kn.trace = a1 != 0
		ret = 0
	default:
		if nr >= sysGopvgrubFirst && nr < sysGopvgrubLimit {
			ret = mCustomSyscall(t, nr)
			if t.state == tsBlocked {
				return
			}
			break
		}
		kn.warnOnce(nr, r.rip)
	}
	r.rax = uint64(ret)
}

// traceSyscall prints the scheduling-relevant syscalls (SysTrace).
func (kn *kernel) traceSyscall(t *thread, nr, now uint64) {
	switch nr {
	case sysFutex, sysNanosleep, sysEpollPwait, sysWrite, sysRead, sysSchedYield, sysClone:
	default:
		return
	}
	var l kline
	l.s("TRACE ").u(now / 1000).s("us tid ").u(uint64(t.tid)).s(" sys ").u(nr).s(" a1 ").x(t.regs.rdi)
	if t.state == tsBlocked {
		l.s(" BLOCK")
		if t.deadline != 0 {
			l.s(" for ").d(int64(t.deadline-now) / 1000).s("us")
		}
	} else {
		l.s(" = ").d(int64(t.regs.rax))
	}
	kconsole(l.s("\n").bytes())
}

func (kn *kernel) traceLine(what string, a, b uint64) {
	var l kline
	kconsole(l.s("TRACE ").u(mNow() / 1000).s("us ").s(what).s(" ").u(a).s(" ").u(b).s("\n").bytes())
}

func (kn *kernel) warnOnce(nr, rip uint64) {
	if nr < maxSyscallNameable {
		w := &kn.warned[nr/64]
		if *w&(1<<(nr%64)) != 0 {
			return
		}
		*w |= 1 << (nr % 64)
	}
	var l kline
	kconsole(l.s("minios: unhandled syscall ").u(nr).s(" at rip ").x(rip).s(" (returning ENOSYS)\n").bytes())
}

func (kn *kernel) exitGroup(code uint64) {
	var l kline
	reason := shutdownPoweroff
	if code != 0 {
		reason = shutdownCrash
		kconsole(l.s("minios: program exited with status ").u(code & 0xff).s("\n").bytes())
	}
	mShutdown(reason)
}

func (kn *kernel) read(fd, buf, n uint64) int64 {
	e := kn.fds.get(fd)
	if e == nil {
		return -eBADF
	}
	switch e.kind {
	case fdConsole:
		return 0 // console input is read from the ring by package console
	case fdEventfd, fdEvtchn:
		if n < 8 {
			return -eINVAL
		}
		if !mUserOK(buf, 8, true) {
			return -eFAULT
		}
		v, ret := kn.fds.readCounter(e)
		if ret == 8 {
			putU64(buf, v)
		}
		return ret
	}
	return -eINVAL
}

func (kn *kernel) write(t *thread, fd, buf, n uint64) int64 {
	e := kn.fds.get(fd)
	if e == nil {
		return -eBADF
	}
	switch e.kind {
	case fdConsole:
		if n == 0 {
			return 0
		}
		if n > 1<<30 || !mUserOK(buf, n, false) {
			return -eFAULT
		}
		t.waitAddr, t.waitArg, t.waitDone = buf, n, 0
		// Writers queue behind a blocked writer so output keeps its order.
		if kn.sched.oldestBlocked(wConsole, 0) < 0 && kn.consoleStep(t) {
			return int64(n)
		}
		kn.sched.block(wConsole, 0)
		return 0
	case fdEventfd:
		if n < 8 {
			return -eINVAL
		}
		v, ok := userU64(buf)
		if !ok {
			return -eFAULT
		}
		ret, wake := kn.fds.writeEventfd(e, v)
		if wake {
			kn.wakeEpoll()
		}
		return ret
	}
	return -eINVAL
}

// consoleStep writes as much of t's pending console output as fits and
// reports whether all of it is out.
func (kn *kernel) consoleStep(t *thread) bool {
	for t.waitDone < t.waitArg {
		p := bytesAt(uintptr(t.waitAddr+t.waitDone), int(t.waitArg-t.waitDone))
		w := mConsoleWrite(p)
		if w <= 0 {
			return false
		}
		t.waitDone += uint64(w)
	}
	return true
}

// consoleProgress continues blocked console writers in order; called when
// the console backend consumed output.
func (kn *kernel) consoleProgress() {
	for {
		i := kn.sched.oldestBlocked(wConsole, 0)
		if i < 0 {
			return
		}
		t := &kn.sched.threads[i&(maxThreads-1)]
		if !kn.consoleStep(t) {
			return
		}
		kn.sched.wake(i, int64(t.waitArg))
	}
}

func (kn *kernel) fcntl(fd, cmd uint64) int64 {
	e := kn.fds.get(fd)
	if e == nil {
		return -eBADF
	}
	nonblock := e.kind == fdEventfd || e.kind == fdEvtchn || e.kind == fdEpoll
	switch cmd {
	case fGetfd:
		if nonblock {
			return 1 // FD_CLOEXEC
		}
		return 0
	case fGetfl:
		if nonblock {
			return oRDWR | oNonblock
		}
		return oRDWR // stdio stays blocking and never meets the netpoller
	case fSetfd, fSetfl:
		return 0
	}
	return -eINVAL
}

func (kn *kernel) uname(addr uint64) int64 {
	buf, ok := userBytes(addr, 6*65, true)
	if !ok {
		return -eFAULT
	}
	for i := range buf {
		buf[i] = 0
	}
	fields := [6]string{"Linux", "gopvgrub", "6.1.0-gopvgrub", "#1", "x86_64", "(none)"}
	for i, f := range fields {
		copy(buf[i*65:i*65+64], f)
	}
	return 0
}

// mmap implements anonymous private mappings, all the runtime uses.
func (kn *kernel) mmap(addr, length, prot, flags, fd uint64) int64 {
	if length == 0 || length > userTop || addr&(pageSize-1) != 0 {
		return -eINVAL
	}
	if flags&mapAnonymous == 0 || flags&mapShared != 0 {
		return -eINVAL // no files, no sharing
	}
	size := (length + pageSize - 1) &^ (pageSize - 1)
	p := uint32(prot & (protRead | protWrite | protExec))
	if p&protExec != 0 {
		p |= protRead
	}
	if flags&(mapFixed|mapFixedNoRep) != 0 {
		if addr+size > userTop || addr+size < addr || addr < pageSize {
			return -eINVAL
		}
		if flags&mapFixedNoRep != 0 && !kn.vmas.isFree(addr, addr+size) {
			return -eEXIST
		}
		// MAP_FIXED replaces what was there with zero-filled memory.
		mDropPages(addr, addr+size)
		if !kn.vmas.remove(addr, addr+size) || !kn.vmas.insert(addr, addr+size, p) {
			return -eNOMEM
		}
		return int64(addr)
	}
	// The address is a hint: honour it when the range is free.
	if addr != 0 && addr+size <= userTop && addr+size > addr && kn.vmas.isFree(addr, addr+size) {
		if !kn.vmas.insert(addr, addr+size, p) {
			return -eNOMEM
		}
		return int64(addr)
	}
	a, ok := kn.vmas.findGap(size, 1<<32, mmapTop)
	if !ok || !kn.vmas.insert(a, a+size, p) {
		return -eNOMEM
	}
	return int64(a)
}

func (kn *kernel) munmap(addr, length uint64) int64 {
	if addr&(pageSize-1) != 0 || length == 0 {
		return -eINVAL
	}
	end := (addr + length + pageSize - 1) &^ (pageSize - 1)
	if end > userTop || end < addr {
		return -eINVAL
	}
	mDropPages(addr, end)
	if !kn.vmas.remove(addr, end) {
		return -eNOMEM
	}
	return 0
}

func (kn *kernel) madvise(addr, length, advice uint64) int64 {
	if addr&(pageSize-1) != 0 {
		return -eINVAL
	}
	if advice == madvDontneed || advice == madvFree {
		// DONTNEED: the runtime relies on Linux's semantics, the next
		// touch reads zeros (go-runtime-on-xen.md §4.4); dropping the
		// frames does it. FREE lets the kernel reclaim the pages when it
		// likes, and the runtime zeroes them itself on reuse: reclaiming
		// at once is what gives the memory back to the shim.
		end := (addr + length + pageSize - 1) &^ (pageSize - 1)
		if end > userTop || end < addr {
			return -eINVAL
		}
		mDropPages(addr, end)
	}
	return 0 // the huge-page hints are fine as no-ops
}

func (kn *kernel) clone(t *thread, flags, stack, tls uint64) int64 {
	if flags&(cloneVM|cloneThread) != cloneVM|cloneThread {
		return -eINVAL // only threads: there is one address space
	}
	i := kn.sched.newThread()
	if i < 0 {
		var l kline
		kconsole(l.s("minios: thread table full (").u(maxThreads).s(" threads)\n").bytes())
		return -eNOMEM
	}
	c := &kn.sched.threads[i&(maxThreads-1)]
	c.regs = t.regs
	c.regs.rax = 0
	c.regs.rsp = stack
	c.fx = t.fx
	// fx was copied at the parent's alignment; the child's area may be
	// aligned differently, so move the saved state to the right offset.
	src := t.fxAddr() - uintptrOf(&t.fx[0])
	dst := c.fxAddr() - uintptrOf(&c.fx[0])
	if src != dst {
		copy(c.fx[dst:dst+512], t.fx[src:src+512])
	}
	c.fsBase = t.fsBase
	if flags&cloneSettls != 0 {
		c.fsBase = tls
	}
	kn.sched.enqueue(i)
	return int64(c.tid)
}

func (kn *kernel) futex(t *thread, now, uaddr, op, val, timeout uint64) int64 {
	switch op & futexCmdMask {
	case futexWait:
		v, ok := userU32(uaddr)
		if !ok {
			return -eFAULT
		}
		if v != uint32(val) {
			return -eAGAIN
		}
		var deadline uint64
		if timeout != 0 {
			ns, ok := timespecNS(timeout)
			if !ok {
				return -eINVAL
			}
			if ns <= 0 {
				return -eTIMEDOUT
			}
			deadline = now + uint64(ns)
		}
		t.waitAddr = uaddr
		t.regs.rax = 0
		kn.sched.block(wFutex, deadline)
		return 0
	case futexWake:
		n := int(val)
		if val > 1<<20 {
			n = 1 << 20
		}
		return int64(kn.sched.futexWake(uaddr, n))
	}
	return -eNOSYS
}

func (kn *kernel) epollCtl(epfd, op, fd, event uint64) int64 {
	if e := kn.fds.get(epfd); e == nil || e.kind != fdEpoll {
		return -eBADF
	}
	var events uint32
	var data uint64
	if op != epollCtlDel {
		ev, ok := userBytes(event, 12, false)
		if !ok {
			return -eFAULT
		}
		events = uint32(ev[0]) | uint32(ev[1])<<8 | uint32(ev[2])<<16 | uint32(ev[3])<<24
		for i := 0; i < 8; i++ {
			data |= uint64(ev[4+i]) << (8 * i)
		}
	}
	return kn.fds.epollCtl(op, fd, events, data)
}

// putEpollEvents is the writer epollCollect uses: packed 12-byte
// struct epoll_event at base.
func putEpollEvent(base uint64, i int, events uint32, data uint64) {
	b := bytesAt(uintptr(base+uint64(i)*12), 12)
	for j := 0; j < 4; j++ {
		b[j] = byte(events >> (8 * j))
	}
	for j := 0; j < 8; j++ {
		b[4+j] = byte(data >> (8 * j))
	}
}

func (kn *kernel) epollWait(t *thread, now, epfd, events, max, timeout uint64) int64 {
	if e := kn.fds.get(epfd); e == nil || e.kind != fdEpoll {
		return -eBADF
	}
	if int64(max) <= 0 || max > 1024 {
		return -eINVAL
	}
	if !mUserOK(events, max*12, true) {
		return -eFAULT
	}
	n := kn.fds.epollCollect(int(max), func(i int, ev uint32, d uint64) { putEpollEvent(events, i, ev, d) })
	if n > 0 || timeout == 0 {
		return int64(n)
	}
	var deadline uint64
	if ms := int64(int32(timeout)); ms > 0 {
		deadline = now + uint64(ms)*1e6
	}
	t.waitAddr, t.waitArg = events, max
	t.regs.rax = 0
	kn.sched.block(wEpoll, deadline)
	return 0
}

// wakeEpoll hands newly ready events to the longest-waiting epoll_pwait.
func (kn *kernel) wakeEpoll() {
	i := kn.sched.oldestBlocked(wEpoll, 0)
	if i < 0 {
		return
	}
	t := &kn.sched.threads[i&(maxThreads-1)]
	base := t.waitAddr
	n := kn.fds.epollCollect(int(t.waitArg), func(j int, ev uint32, d uint64) { putEpollEvent(base, j, ev, d) })
	if n > 0 {
		kn.sched.wake(i, int64(n))
	}
}

// portEvent is called for every event channel event the hypervisor
// delivers that the shim does not consume itself.
func (kn *kernel) portEvent(port uint32) {
	kn.events++
	if kn.fds.portEvent(port) {
		kn.wakeEpoll()
	}
}
