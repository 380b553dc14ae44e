package minios

import "unsafe"

// Green threads for the Go runtime's Ms. One vCPU and GOMAXPROCS=1: a
// thread runs until it blocks (futex wait, nanosleep, epoll_pwait, a full
// console) or yields, and a running thread is preempted when a sleeper's
// deadline passes (the timer event), at most once per minSlice, so that
// sysmon can run while a goroutine computes (go-runtime-on-xen.md §5.4).
//
// All state is in fixed arrays of integers: the shim runs with a fake g, so
// it must not allocate, and it must not store Go pointers (a write barrier
// would need a real g while the program's GC is marking).

const (
	maxThreads = 64
	minSlice   = 1_000_000 // ns: minimum time between preemptions
	// timerSlack: a deadline this close counts as passed. Xen's timer
	// and the guest's pvclock arithmetic can disagree by microseconds;
	// waking a sleeper early is harmless, sleeping past it is not.
	timerSlack = 50_000
	fxAreaSize = 512 + 16 // FXSAVE area plus room to align it to 16
)

// Thread states.
const (
	tsFree uint32 = iota
	tsRunnable
	tsRunning
	tsBlocked
)

// What a blocked thread waits for.
const (
	wNone uint32 = iota
	wFutex
	wSleep
	wEpoll
	wConsole
)

// frame is the register block the entry stubs push (entry_amd64.s): the
// GPRs, then the vector and error code, then Xen's iret-style frame.
type frame struct {
	r15, r14, r13, r12, r11, r10, r9, r8 uint64
	rbp, rdi, rsi, rdx, rcx, rbx, rax    uint64
	vector, err                          uint64
	rip, cs, rflags, rsp, ss             uint64
}

type thread struct {
	state    uint32
	tid      uint32
	wait     uint32
	next     int32  // run-queue link
	seq      uint64 // when it blocked: wake-ups are FIFO
	fsBase   uint64
	waitAddr uint64 // futex address / epoll events / console buffer
	waitArg  uint64 // epoll max events / console bytes left
	waitDone uint64 // console bytes already written
	deadline uint64 // ns of Xen system time, 0 = none
	regs     frame
	fx       [fxAreaSize]byte
}

// fxAddr is the 16-byte aligned FXSAVE area of t.
func (t *thread) fxAddr() uintptr {
	return (uintptr(unsafe.Pointer(&t.fx[0])) + 15) &^ 15
}

type scheduler struct {
	threads    [maxThreads]thread
	cur        int32
	head, tail int32 // run queue, linked through next; -1 = empty
	nthreads   int32
	nextTid    uint32
	seq        uint64
	lastSwitch uint64 // ns
	// counters for SysStats
	switches, preempts uint64
	lateMax, late1ms   uint64 // deadline wakes: worst lateness, count > 1 ms
}

func (s *scheduler) init() {
	s.head, s.tail = -1, -1
	s.nextTid = 1
	s.cur = 0
	t := &s.threads[0]
	t.state = tsRunning
	t.tid = s.nextTid
	s.nextTid++
	s.nthreads = 1
}

func (s *scheduler) enqueue(i int32) {
	t := &s.threads[i&(maxThreads-1)]
	t.state = tsRunnable
	t.next = -1
	if s.tail < 0 {
		s.head = i
	} else {
		s.threads[s.tail&(maxThreads-1)].next = i
	}
	s.tail = i
}

func (s *scheduler) dequeue() int32 {
	i := s.head
	if i < 0 {
		return -1
	}
	s.head = s.threads[i&(maxThreads-1)].next
	if s.head < 0 {
		s.tail = -1
	}
	return i
}

// newThread takes a free slot; -1 when the table is full.
func (s *scheduler) newThread() int32 {
	for i := int32(0); i < maxThreads; i++ {
		if s.threads[i].state == tsFree {
			t := &s.threads[i]
			t.tid = s.nextTid
			s.nextTid++
			t.wait = wNone
			t.deadline = 0
			s.nthreads++
			return i
		}
	}
	return -1
}

// block parks the current thread.
func (s *scheduler) block(kind uint32, deadline uint64) {
	t := &s.threads[s.cur&(maxThreads-1)]
	t.state = tsBlocked
	t.wait = kind
	t.deadline = deadline
	s.seq++
	t.seq = s.seq
}

// wake makes a blocked thread runnable with result as its syscall return.
func (s *scheduler) wake(i int32, result int64) {
	t := &s.threads[i&(maxThreads-1)]
	if t.state != tsBlocked {
		return
	}
	t.wait = wNone
	t.deadline = 0
	t.regs.rax = uint64(result)
	s.enqueue(i)
}

// exitCurrent frees the current thread's slot (Linux exit(2) of one thread).
func (s *scheduler) exitCurrent() {
	t := &s.threads[s.cur&(maxThreads-1)]
	t.state = tsFree
	s.nthreads--
}

// oldestBlocked returns the longest-waiting thread blocked on kind (and on
// addr when kind is wFutex), or -1.
func (s *scheduler) oldestBlocked(kind uint32, addr uint64) int32 {
	best := int32(-1)
	var bestSeq uint64
	for i := int32(0); i < maxThreads; i++ {
		t := &s.threads[i]
		if t.state != tsBlocked || t.wait != kind || (kind == wFutex && t.waitAddr != addr) {
			continue
		}
		if best < 0 || t.seq < bestSeq {
			best, bestSeq = i, t.seq
		}
	}
	return best
}

// futexWake wakes up to n threads waiting on addr, oldest first.
func (s *scheduler) futexWake(addr uint64, n int) int {
	woken := 0
	for woken < n {
		i := s.oldestBlocked(wFutex, addr)
		if i < 0 {
			break
		}
		s.wake(i, 0)
		woken++
	}
	return woken
}

// expire wakes every thread whose deadline has passed: futex waits time
// out, sleeps end, epoll waits return no events. It reports whether any
// thread woke.
func (s *scheduler) expire(now uint64) bool {
	any := false
	for i := int32(0); i < maxThreads; i++ {
		t := &s.threads[i]
		if t.state != tsBlocked || t.deadline == 0 || t.deadline > now+timerSlack {
			continue
		}
		if now > t.deadline {
			late := now - t.deadline
			if late > s.lateMax {
				s.lateMax = late
			}
			if late > 1_000_000 {
				s.late1ms++
			}
		}
		switch t.wait {
		case wFutex:
			s.wake(i, -eTIMEDOUT)
		default:
			s.wake(i, 0)
		}
		any = true
	}
	return any
}

// earliest is the nearest deadline of a blocked thread (0 = none).
func (s *scheduler) earliest() uint64 {
	var d uint64
	for i := range s.threads {
		t := &s.threads[i]
		if t.state == tsBlocked && t.deadline != 0 && (d == 0 || t.deadline < d) {
			d = t.deadline
		}
	}
	return d
}

// pick chooses the thread to run next. preempt asks to rotate a running
// thread behind the queue if it has had at least minSlice. It returns -1
// when nothing can run (the caller idles).
func (s *scheduler) pick(now uint64, preempt bool) int32 {
	cur := &s.threads[s.cur&(maxThreads-1)]
	if cur.state == tsRunning {
		if !preempt || s.head < 0 || now-s.lastSwitch < minSlice {
			return s.cur
		}
		s.enqueue(s.cur)
		s.preempts++
	}
	i := s.dequeue()
	if i < 0 {
		return -1
	}
	s.threads[i&(maxThreads-1)].state = tsRunning
	if i != s.cur {
		s.switches++
		s.lastSwitch = now
	}
	s.cur = i
	return i
}

// yield puts the current thread behind the others, if there are any.
func (s *scheduler) yield(now uint64) {
	if s.head < 0 {
		return
	}
	s.enqueue(s.cur)
	s.lastSwitch = now
}

// timerDeadline is when the one-shot timer should fire while a thread runs:
// the earliest sleeper, but not before the running thread had minSlice.
func (s *scheduler) timerDeadline() uint64 {
	d := s.earliest()
	if d != 0 && d < s.lastSwitch+minSlice {
		d = s.lastSwitch + minSlice
	}
	return d
}
