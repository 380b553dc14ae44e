//go:build !xenpv

package minios

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unsafe"
)

// call makes thread ti issue syscall nr and returns its RAX afterwards
// (meaningful unless the thread blocked).
func call(t *testing.T, ti int32, nr uint64, args ...uint64) int64 {
	t.Helper()
	var a [6]uint64
	copy(a[:], args)
	runThread(t, ti)
	th := &k.sched.threads[ti]
	th.regs.rax = nr
	th.regs.rdi, th.regs.rsi, th.regs.rdx, th.regs.r10, th.regs.r8, th.regs.r9 = a[0], a[1], a[2], a[3], a[4], a[5]
	k.syscall(th, sim.now)
	return int64(th.regs.rax)
}

// runThread makes thread i the running one, as the scheduler would.
func runThread(t *testing.T, i int32) {
	t.Helper()
	th := &k.sched.threads[i]
	if th.state == tsRunning {
		if k.sched.cur != i {
			t.Fatalf("thread %d running but not current", i)
		}
		return
	}
	if th.state != tsRunnable {
		t.Fatalf("thread %d not runnable (state %d)", i, th.state)
	}
	// take it out of the queue
	for {
		j := k.sched.dequeue()
		if j == i {
			break
		}
		if j < 0 {
			t.Fatalf("thread %d not in run queue", i)
		}
		k.sched.enqueue(j)
	}
	if k.sched.threads[k.sched.cur].state == tsRunning {
		k.sched.enqueue(k.sched.cur)
	}
	th.state = tsRunning
	k.sched.cur = i
}

func addr[T any](p *T) uint64 { return uint64(uintptr(unsafe.Pointer(p))) }

// pinned keeps test buffers on the heap: syscall arguments are raw
// addresses, and a stack-allocated buffer moves when the stack grows.
var pinned []any

func alloc[T any]() *T { var zero T; return heap(zero) }

func heap[T any](v T) *T {
	p := &v
	pinned = append(pinned, p)
	return p
}

func newThread(t *testing.T) int32 {
	t.Helper()
	i := k.sched.newThread()
	if i < 0 {
		t.Fatal("no thread slot")
	}
	k.sched.enqueue(i)
	return i
}

func TestFutexWaitWakeTimeout(t *testing.T) {
	simReset()
	word := alloc[uint32]()
	*word = 7
	if r := call(t, 0, sysFutex, addr(word), futexWait|futexPrivate, 6); r != -eAGAIN {
		t.Fatalf("wait with stale value = %d, want -EAGAIN", r)
	}
	call(t, 0, sysFutex, addr(word), futexWait|futexPrivate, 7)
	if k.sched.threads[0].state != tsBlocked {
		t.Fatal("waiter did not block")
	}
	w := newThread(t)
	if r := call(t, w, sysFutex, addr(word), futexWake|futexPrivate, 1); r != 1 {
		t.Fatalf("wake = %d, want 1", r)
	}
	if th := k.sched.threads[0]; th.state != tsRunnable || th.regs.rax != 0 {
		t.Fatalf("woken waiter: state %d rax %d", th.state, int64(th.regs.rax))
	}
	if r := call(t, w, sysFutex, addr(word), futexWake|futexPrivate, 1); r != 0 {
		t.Fatalf("second wake woke %d", r)
	}
	// A timed wait ends with ETIMEDOUT once its deadline passes.
	ts := heap([2]uint64{0, 5_000_000})
	call(t, w, sysFutex, addr(word), futexWait|futexPrivate, 7, addr(ts))
	if k.sched.earliest() != sim.now+5_000_000 {
		t.Fatalf("earliest deadline %d", k.sched.earliest())
	}
	if k.sched.expire(sim.now + 4_999_999 - timerSlack) {
		t.Fatal("expired early")
	}
	if !k.sched.expire(sim.now+5_000_000) || int64(k.sched.threads[w].regs.rax) != -eTIMEDOUT {
		t.Fatalf("timeout result %d", int64(k.sched.threads[w].regs.rax))
	}
	if r := call(t, 0, sysFutex, addr(word), 5 /*FUTEX_FD*/, 0); r != -eNOSYS {
		t.Fatalf("unsupported futex op = %d", r)
	}
}

func TestFutexWakeOrderAndCount(t *testing.T) {
	simReset()
	word := alloc[uint32]()
	*word = 1
	var waiters []int32
	for i := 0; i < 3; i++ {
		w := newThread(t)
		call(t, w, sysFutex, addr(word), futexWait|futexPrivate, 1)
		waiters = append(waiters, w)
	}
	if r := call(t, 0, sysFutex, addr(word), futexWake|futexPrivate, 2); r != 2 {
		t.Fatalf("wake(2) = %d", r)
	}
	// the two oldest woke, the youngest still waits
	if k.sched.threads[waiters[0]].state != tsRunnable || k.sched.threads[waiters[1]].state != tsRunnable || k.sched.threads[waiters[2]].state != tsBlocked {
		t.Fatalf("wake-up order is not FIFO: %d %d %d", k.sched.threads[waiters[0]].state, k.sched.threads[waiters[1]].state, k.sched.threads[waiters[2]].state)
	}
}

func TestNanosleepAndPreemption(t *testing.T) {
	simReset()
	ts := heap([2]uint64{0, 20_000}) // sysmon's 20 µs
	s := newThread(t)
	call(t, s, sysNanosleep, addr(ts), 0)
	if k.sched.threads[s].state != tsBlocked {
		t.Fatal("sleeper did not block")
	}
	// thread 0 runs; the timer must fire no earlier than minSlice after
	// the last switch.
	if got := k.sched.pick(sim.now, false); got != 0 {
		t.Fatalf("picked %d after the sleeper blocked", got)
	}
	k.sched.lastSwitch = sim.now
	if d := k.sched.timerDeadline(); d != sim.now+minSlice {
		t.Fatalf("timer deadline %d, want now+minSlice", d-sim.now)
	}
	sim.now += 30_000
	k.sched.expire(sim.now)
	if got := k.sched.pick(sim.now, true); got != 0 {
		t.Fatalf("preempted before minSlice: picked %d", got)
	}
	sim.now += minSlice
	if got := k.sched.pick(sim.now, true); got != s {
		t.Fatalf("after minSlice picked %d, want the sleeper %d", got, s)
	}
	if k.sched.threads[0].state != tsRunnable || k.sched.preempts != 1 {
		t.Fatal("preempted thread not queued")
	}
	// A zero sleep just yields.
	zero := heap([2]uint64{0, 0})
	if r := call(t, s, sysNanosleep, addr(zero), 0); r != 0 {
		t.Fatalf("zero sleep = %d", r)
	}
	bad := heap([2]uint64{0, 2e9})
	if r := call(t, s, sysNanosleep, addr(bad), 0); r != -eINVAL {
		t.Fatalf("nsec out of range = %d", r)
	}
}

func TestYieldRotates(t *testing.T) {
	simReset()
	a := newThread(t)
	k.sched.threads[a].state = tsBlocked
	k.sched.wake(a, 0) // runnable, queued
	call(t, 0, sysSchedYield)
	if got := k.sched.pick(sim.now, false); got != a {
		t.Fatalf("after yield picked %d, want %d", got, a)
	}
	if got := k.sched.pick(sim.now, false); got != a {
		t.Fatal("running thread not kept")
	}
	k.sched.block(wSleep, 0)
	if got := k.sched.pick(sim.now, false); got != 0 {
		t.Fatalf("picked %d, want the yielded thread 0", got)
	}
	k.sched.block(wSleep, 0)
	if got := k.sched.pick(sim.now, false); got != -1 {
		t.Fatalf("nothing runnable but picked %d", got)
	}
}

func TestEpollEventfd(t *testing.T) {
	simReset()
	ep := call(t, 0, sysEpollCreate1, 0x80000)
	efd := call(t, 0, sysEventfd2, 0, 0x80800)
	if ep < 3 || efd < 3 || ep == efd {
		t.Fatalf("fds %d %d", ep, efd)
	}
	ev := alloc[[12]byte]()
	binary.LittleEndian.PutUint32(ev[0:], epollIn|epollET)
	binary.LittleEndian.PutUint64(ev[4:], 0xdeadbeef)
	if r := call(t, 0, sysEpollCtl, uint64(ep), epollCtlAdd, uint64(efd), addr(ev)); r != 0 {
		t.Fatalf("epoll_ctl = %d", r)
	}
	if r := call(t, 0, sysEpollCtl, uint64(ep), epollCtlAdd, 1, addr(ev)); r != -ePERM {
		t.Fatalf("epoll_ctl on stdout = %d, want -EPERM", r)
	}
	out := alloc[[4 * 12]byte]()
	if r := call(t, 0, sysEpollPwait, uint64(ep), addr(out), 4, 0); r != 0 {
		t.Fatalf("idle poll = %d", r)
	}
	// A blocked epoll_pwait is woken by a write to the eventfd.
	call(t, 0, sysEpollPwait, uint64(ep), addr(out), 4, ^uint64(0))
	if k.sched.threads[0].state != tsBlocked || k.sched.earliest() != 0 {
		t.Fatal("infinite epoll_pwait did not block without deadline")
	}
	w := newThread(t)
	one := alloc[uint64]()
	*one = 1
	if r := call(t, w, sysWrite, uint64(efd), addr(one), 8); r != 8 {
		t.Fatalf("eventfd write = %d", r)
	}
	if th := k.sched.threads[0]; th.state != tsRunnable || th.regs.rax != 1 {
		t.Fatalf("epoll waiter: state %d rax %d", th.state, int64(th.regs.rax))
	}
	if binary.LittleEndian.Uint32(out[0:]) != epollIn || binary.LittleEndian.Uint64(out[4:]) != 0xdeadbeef {
		t.Fatalf("event written: % x", (*out)[:12])
	}
	// Edge-triggered: no second report until a new event.
	if r := call(t, w, sysEpollPwait, uint64(ep), addr(out), 4, 0); r != 0 {
		t.Fatalf("edge reported twice: %d", r)
	}
	v := alloc[uint64]()
	if r := call(t, w, sysRead, uint64(efd), addr(v), 8); r != 8 || *v != 1 {
		t.Fatalf("eventfd read = %d, %d", r, *v)
	}
	if r := call(t, w, sysRead, uint64(efd), addr(v), 8); r != -eAGAIN {
		t.Fatalf("empty eventfd read = %d", r)
	}
	if r := call(t, w, sysFcntl, uint64(efd), fGetfl); r&oNonblock == 0 {
		t.Fatal("eventfd not reported non-blocking")
	}
	if r := call(t, w, sysFcntl, 0, fGetfd); r != 0 {
		t.Fatalf("fcntl(0, F_GETFD) = %d (checkfds needs >= 0)", r)
	}
	// A timed epoll_pwait returns 0 at its deadline.
	call(t, w, sysEpollPwait, uint64(ep), addr(out), 4, 10)
	k.sched.expire(sim.now + 10_000_000)
	if th := k.sched.threads[w]; th.state != tsRunnable || th.regs.rax != 0 {
		t.Fatal("timed epoll_pwait did not time out with 0")
	}
}

// TestEpollLevelTriggeredEventfd is the runtime's netpollBreak protocol:
// sysmon's non-blocking netpoll(0) sees the level-triggered eventfd but
// does not read it; the blocking poller must still get it.
func TestEpollLevelTriggeredEventfd(t *testing.T) {
	simReset()
	ep := call(t, 0, sysEpollCreate1, 0)
	efd := call(t, 0, sysEventfd2, 0, 0)
	ev := alloc[[12]byte]()
	binary.LittleEndian.PutUint32(ev[0:], epollIn) // no EPOLLET, as netpollinit does
	call(t, 0, sysEpollCtl, uint64(ep), epollCtlAdd, uint64(efd), addr(ev))
	one := heap(uint64(1))
	call(t, 0, sysWrite, uint64(efd), addr(one), 8)
	out := alloc[[12]byte]()
	for i := 0; i < 2; i++ {
		if r := call(t, 0, sysEpollPwait, uint64(ep), addr(out), 1, 0); r != 1 {
			t.Fatalf("poll %d of an unread level-triggered eventfd = %d, want 1", i, r)
		}
	}
	v := alloc[uint64]()
	call(t, 0, sysRead, uint64(efd), addr(v), 8)
	if r := call(t, 0, sysEpollPwait, uint64(ep), addr(out), 1, 0); r != 0 {
		t.Fatalf("poll after read = %d, want 0", r)
	}
	// Edge-triggered registration (os.File fds) reports once per event.
	fd := k.fds.openPort(9)
	binary.LittleEndian.PutUint32(ev[0:], epollIn|epollET)
	call(t, 0, sysEpollCtl, uint64(ep), epollCtlAdd, uint64(fd), addr(ev))
	k.portEvent(9)
	if r := call(t, 0, sysEpollPwait, uint64(ep), addr(out), 1, 0); r != 1 {
		t.Fatalf("first report of an edge = %d", r)
	}
	if r := call(t, 0, sysEpollPwait, uint64(ep), addr(out), 1, 0); r != 0 {
		t.Fatalf("edge reported twice = %d", r)
	}
}

func TestEventChannelFD(t *testing.T) {
	simReset()
	// Events before anyone opens the port are kept.
	k.portEvent(5)
	k.portEvent(5)
	fd := k.fds.openPort(5)
	if fd < 3 || k.fds.openPort(5) != fd {
		t.Fatalf("openPort = %d", fd)
	}
	v := alloc[uint64]()
	if r := call(t, 0, sysRead, uint64(fd), addr(v), 8); r != 8 || *v != 2 {
		t.Fatalf("read = %d, %d; want the 2 early events", r, *v)
	}
	ep := call(t, 0, sysEpollCreate1, 0)
	ev := alloc[[12]byte]()
	binary.LittleEndian.PutUint32(ev[0:], epollIn|epollET)
	binary.LittleEndian.PutUint64(ev[4:], 42)
	call(t, 0, sysEpollCtl, uint64(ep), epollCtlAdd, uint64(fd), addr(ev))
	out := alloc[[12]byte]()
	call(t, 0, sysEpollPwait, uint64(ep), addr(out), 1, ^uint64(0))
	k.portEvent(5)
	if th := k.sched.threads[0]; th.state != tsRunnable || th.regs.rax != 1 || binary.LittleEndian.Uint64(out[4:]) != 42 {
		t.Fatal("event on port did not wake the epoll waiter")
	}
	if r := k.fds.openPort(0); r != -eINVAL {
		t.Fatal("port 0 accepted")
	}
	before := k.fds.fds[fd].count
	k.fds.forgetPort(5)
	k.portEvent(5) // counted as pending for a future fd, not delivered to the old one
	if k.fds.fds[fd].count != before || k.fds.portPending[5] != 1 {
		t.Fatal("closed port still feeds its old fd")
	}
}

func TestClone(t *testing.T) {
	simReset()
	p := &k.sched.threads[0]
	p.regs.r13, p.regs.r12, p.regs.rip = 0x1313, 0x1212, 0x401000
	p.fsBase = 0x1111
	for i := range p.fx {
		p.fx[i] = byte(i)
	}
	tid := call(t, 0, sysClone, 0xd0f00, 0xc000100000, 0, 0, 0x2222)
	if tid <= 1 {
		t.Fatalf("clone = %d", tid)
	}
	var c *thread
	for i := range k.sched.threads {
		if k.sched.threads[i].tid == uint32(tid) {
			c = &k.sched.threads[i]
		}
	}
	if c == nil || c.state != tsRunnable {
		t.Fatal("child not runnable")
	}
	want := p.regs
	want.rax, want.rsp = 0, 0xc000100000
	if c.regs != want || c.regs.r13 != 0x1313 || c.regs.r12 != 0x1212 || c.regs.rip != 0x401000 || c.fsBase != 0x2222 {
		t.Fatalf("child registers %+v fs %#x, want %+v", c.regs, c.fsBase, want)
	}
	// FP state is the parent's, at the child's own alignment.
	pfx := bytesAt(p.fxAddr(), 512)
	cfx := bytesAt(c.fxAddr(), 512)
	if !bytes.Equal(pfx, cfx) {
		t.Fatal("child FP state differs from the parent's")
	}
	if r := call(t, 0, sysClone, 0x11, 0, 0, 0, 0); r != -eINVAL {
		t.Fatalf("fork-like clone = %d, want -EINVAL", r)
	}
}

func TestConsoleWriteBlocksAndKeepsOrder(t *testing.T) {
	simReset()
	sim.consoleRoom = 5
	a := []byte("hello, world")
	if r := call(t, 0, sysWrite, 1, addr(&a[0]), uint64(len(a))); k.sched.threads[0].state != tsBlocked {
		t.Fatalf("write to a full console returned %d without blocking", r)
	}
	b := newThread(t)
	bb := []byte("!second")
	call(t, b, sysWrite, 2, addr(&bb[0]), uint64(len(bb)))
	if k.sched.threads[b].state != tsBlocked {
		t.Fatal("second writer overtook the blocked one")
	}
	sim.consoleRoom = 100
	k.consoleProgress()
	if string(sim.console) != "hello, world!second" {
		t.Fatalf("console got %q", sim.console)
	}
	if k.sched.threads[0].regs.rax != uint64(len(a)) || k.sched.threads[b].regs.rax != uint64(len(bb)) {
		t.Fatal("writers did not get their full counts")
	}
}

func TestUnknownSyscallWarnsOnce(t *testing.T) {
	simReset()
	for i := 0; i < 3; i++ {
		if r := call(t, 0, 999); r != -eNOSYS {
			t.Fatalf("unknown syscall = %d", r)
		}
	}
	call(t, 0, 998)
	log := string(sim.klog)
	if strings.Count(log, "syscall 999") != 1 || strings.Count(log, "syscall 998") != 1 {
		t.Fatalf("warnings: %q", log)
	}
	if r := call(t, 0, sysOpenat, 0, 0, 0); r != -eNOENT {
		t.Fatalf("openat = %d", r)
	}
}

func TestMmap(t *testing.T) {
	simReset()
	const G = 1 << 30
	rw := uint64(protRead | protWrite)
	hint := uint64(0xc000000000)
	if r := call(t, 0, sysMmap, hint, 64<<20, 0, mapPrivate|mapAnonymous, ^uint64(0), 0); uint64(r) != hint {
		t.Fatalf("hint not honoured: %#x", r)
	}
	// the same hint again is taken: the kernel picks another place
	r := call(t, 0, sysMmap, hint, 64<<20, 0, mapPrivate|mapAnonymous, ^uint64(0), 0)
	if uint64(r) == hint || r <= 0 || uint64(r)+64<<20 > mmapTop {
		t.Fatalf("occupied hint: %#x", r)
	}
	// MAP_FIXED RW inside the reservation drops old pages and splits it
	if r := call(t, 0, sysMmap, hint, 4<<20, rw, mapPrivate|mapAnonymous|mapFixed, ^uint64(0), 0); uint64(r) != hint {
		t.Fatalf("MAP_FIXED = %#x", r)
	}
	if len(sim.dropped) != 1 || sim.dropped[0] != [2]uint64{hint, hint + 4<<20} {
		t.Fatalf("dropped %v", sim.dropped)
	}
	if k.vmas.decideFault(hint+8, 6) != faultMapZero || k.vmas.decideFault(hint+5<<20, 6) != faultFatal {
		t.Fatal("protections after MAP_FIXED")
	}
	if r := call(t, 0, sysMadvise, hint, 1<<20, madvDontneed); r != 0 || len(sim.dropped) != 2 {
		t.Fatal("MADV_DONTNEED did not drop pages")
	}
	if r := call(t, 0, sysMadvise, hint, 1<<20, madvFree); r != 0 || len(sim.dropped) != 3 {
		t.Fatal("MADV_FREE did not give the pages back")
	}
	if r := call(t, 0, sysMadvise, hint, 1<<20, 14 /* MADV_HUGEPAGE */); r != 0 || len(sim.dropped) != 3 {
		t.Fatal("a hint dropped pages")
	}
	if r := call(t, 0, sysMunmap, hint, 64<<20); r != 0 || k.vmas.decideFault(hint, 6) != faultFatal {
		t.Fatal("munmap")
	}
	bad := []struct {
		a, l, f uint64
	}{{0, 0, mapPrivate | mapAnonymous}, {1, 4096, mapPrivate | mapAnonymous | mapFixed}, {0, 4096, mapShared | mapAnonymous}, {0, 4096, mapPrivate}, {0, 2 * userTop, mapPrivate | mapAnonymous}}
	for _, c := range bad {
		if r := call(t, 0, sysMmap, c.a, c.l, rw, c.f, ^uint64(0), 0); r >= 0 {
			t.Errorf("mmap(%#x, %#x, flags %#x) = %#x, want an error", c.a, c.l, c.f, r)
		}
	}
	_ = G
}

func TestExitGroupShutsDown(t *testing.T) {
	for _, c := range []struct {
		code uint64
		want int
	}{{0, shutdownPoweroff}, {2, shutdownCrash}} {
		simReset()
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Fatal("exit_group returned")
				}
			}()
			call(t, 0, sysExitGroup, c.code)
		}()
		if sim.shutdown != c.want {
			t.Errorf("exit_group(%d) shut down with %d, want %d", c.code, sim.shutdown, c.want)
		}
	}
}

func TestSmallCalls(t *testing.T) {
	simReset()
	mask := alloc[[16]byte]()
	if r := call(t, 0, sysSchedGetaffin, 0, 16, addr(mask)); r != 8 || mask[0] != 1 {
		t.Fatalf("sched_getaffinity = %d mask %v", r, mask[:8])
	}
	ts := alloc[[2]uint64]()
	if r := call(t, 0, sysClockGettime, clockMonotone, addr(ts)); r != 0 || (*ts)[0]*1e9+(*ts)[1] != sim.now {
		t.Fatalf("clock_gettime = %d %v", r, *ts)
	}
	if r := call(t, 0, sysClockGettime, 99, addr(ts)); r != -eINVAL {
		t.Fatal("bad clock accepted")
	}
	if r := call(t, 0, sysArchPrctl, archSetFS, 0x7000); r != 0 || k.sched.threads[0].fsBase != 0x7000 {
		t.Fatal("arch_prctl SET_FS")
	}
	fs := alloc[uint64]()
	if r := call(t, 0, sysArchPrctl, archGetFS, addr(fs)); r != 0 || *fs != 0x7000 {
		t.Fatal("arch_prctl GET_FS")
	}
	if r := call(t, 0, sysGettid); r != 1 {
		t.Fatalf("gettid = %d", r)
	}
	old := heap([4]uint64{1, 2, 3, 4})
	if r := call(t, 0, sysRtSigaction, 10, 0, addr(old), 8); r != 0 || *old != [4]uint64{} {
		t.Fatal("rt_sigaction old action")
	}
	ss := alloc[[3]uint64]()
	if r := call(t, 0, sysSigaltstack, 0, addr(ss)); r != 0 || ss[1] != ssDisable {
		t.Fatal("sigaltstack old")
	}
	rnd := alloc[[32]byte]()
	if r := call(t, 0, sysGetrandom, addr(rnd), 32, 0); r != 32 || *rnd == [32]byte{} {
		t.Fatal("getrandom")
	}
	uts := alloc[[6 * 65]byte]()
	if r := call(t, 0, sysUname, addr(uts)); r != 0 || string(uts[:5]) != "Linux" {
		t.Fatal("uname")
	}
	sim.badUser = addr(ts) &^ (pageSize - 1)
	if r := call(t, 0, sysClockGettime, clockMonotone, addr(ts)); r != -eFAULT {
		t.Fatalf("bad user address: %d", r)
	}
	if r := call(t, 0, sysTgkill, 1, 1, sigURG); r != 0 {
		t.Fatal("tgkill SIGURG")
	}
}
