package minios

// File descriptors of the emulated process: 0-2 are the console, the
// runtime's netpoller gets one epoll instance and one eventfd, and each
// event channel a driver opens (SysEventFD) becomes an fd that the
// netpoller can wait on, so goroutines block on device events without
// holding a thread (go-runtime-on-xen.md §6).
//
// The netpoller registers fds edge-triggered: an fd is reported once per
// new event (edge), and the reader drains it until EAGAIN.

const (
	maxFDs   = 64
	maxPorts = 4096 // 2-level event channel ABI, 64-bit guest
)

// fd kinds
const (
	fdFree uint32 = iota
	fdConsole
	fdEpoll
	fdEventfd
	fdEvtchn
)

type fdEntry struct {
	kind    uint32
	port    uint32
	count   uint64 // eventfd counter / events received
	epData  uint64 // epoll_event.data registered for it
	inEpoll bool
	et      bool // registered edge-triggered (EPOLLET)
	edge    bool // an event not yet reported by epoll_pwait
}

// epollET is EPOLLET: the runtime registers its own eventfd
// level-triggered and file descriptors edge-triggered, and relies on both
// behaviours (a non-blocking netpoll(0) sees the eventfd without reading it;
// the blocking poller must still see it afterwards).
const epollET = 1 << 31

type fdTable struct {
	fds [maxFDs]fdEntry
	// portFD maps an event channel port to its fd+1 (0 = none), and
	// portPending counts events that came before any fd was opened.
	portFD      [maxPorts]int8
	portPending [maxPorts]uint32
}

func (ft *fdTable) init() {
	for i := 0; i < 3; i++ {
		ft.fds[i].kind = fdConsole
	}
}

func (ft *fdTable) get(fd uint64) *fdEntry {
	if fd >= maxFDs {
		return nil
	}
	e := &ft.fds[fd]
	if e.kind == fdFree {
		return nil
	}
	return e
}

// open returns the lowest free fd (Linux semantics), or -EMFILE.
func (ft *fdTable) open(kind uint32) int64 {
	for i := 3; i < maxFDs; i++ {
		if ft.fds[i].kind == fdFree {
			ft.fds[i] = fdEntry{kind: kind}
			return int64(i)
		}
	}
	return -eMFILE
}

func (ft *fdTable) close(fd uint64) int64 {
	e := ft.get(fd)
	if e == nil {
		return -eBADF
	}
	if e.kind == fdConsole {
		return 0 // stdio stays
	}
	if e.kind == fdEvtchn && e.port < maxPorts {
		ft.portFD[e.port] = 0
	}
	*e = fdEntry{}
	return 0
}

// openPort returns an fd for an event channel port; events that arrived
// before it was opened are counted.
func (ft *fdTable) openPort(port uint64) int64 {
	if port == 0 || port >= maxPorts {
		return -eINVAL
	}
	if f := ft.portFD[port]; f != 0 {
		return int64(f) - 1
	}
	fd := ft.open(fdEvtchn)
	if fd < 0 {
		return fd
	}
	e := &ft.fds[fd]
	e.port = uint32(port)
	e.count = uint64(ft.portPending[port])
	e.edge = e.count > 0
	ft.portPending[port] = 0
	ft.portFD[port] = int8(fd + 1)
	return fd
}

// portEvent records an event on port. It reports whether an fd became
// newly reportable (so an epoll waiter should be woken).
func (ft *fdTable) portEvent(port uint32) bool {
	if port >= maxPorts {
		return false
	}
	f := ft.portFD[port]
	if f == 0 {
		if ft.portPending[port] < 1<<31 {
			ft.portPending[port]++
		}
		return false
	}
	e := &ft.fds[f-1]
	e.count++
	e.edge = true
	return e.inEpoll
}

// forgetPort drops the port binding (the channel was closed).
func (ft *fdTable) forgetPort(port uint64) {
	if port < maxPorts {
		if f := ft.portFD[port]; f != 0 {
			ft.fds[f-1].port = 0
		}
		ft.portFD[port] = 0
		ft.portPending[port] = 0
	}
}

// readCounter implements read(2) on an eventfd or event channel fd: the
// 8-byte counter, reset to zero, or -EAGAIN.
func (ft *fdTable) readCounter(e *fdEntry) (uint64, int64) {
	if e.count == 0 {
		return 0, -eAGAIN
	}
	v := e.count
	e.count = 0
	e.edge = false // drained: nothing left to report
	return v, 8
}

// writeEventfd adds v to an eventfd (write(2)); it reports whether an
// epoll waiter should be woken.
func (ft *fdTable) writeEventfd(e *fdEntry, v uint64) (int64, bool) {
	if v == ^uint64(0) || e.count+v < e.count || e.count+v == ^uint64(0) {
		return -eAGAIN, false
	}
	e.count += v
	e.edge = true
	return 8, e.inEpoll
}

// epollCtl implements epoll_ctl on the single epoll instance.
func (ft *fdTable) epollCtl(op, fd uint64, events uint32, data uint64) int64 {
	e := ft.get(fd)
	if e == nil {
		return -eBADF
	}
	if e.kind != fdEventfd && e.kind != fdEvtchn {
		// What Linux says for regular files: os then uses blocking I/O.
		return -ePERM
	}
	switch op {
	case epollCtlAdd:
		if e.inEpoll {
			return -eEXIST
		}
		e.inEpoll, e.epData, e.et = true, data, events&epollET != 0
		// Level state at registration is reported once, like Linux does
		// for an fd that is already readable.
		if e.count > 0 {
			e.edge = true
		}
	case epollCtlMod:
		if !e.inEpoll {
			return -eNOENT
		}
		e.epData, e.et = data, events&epollET != 0
	case epollCtlDel:
		if !e.inEpoll {
			return -eNOENT
		}
		e.inEpoll = false
	default:
		return -eINVAL
	}
	return 0
}

// reportable: level-triggered fds while they hold data, edge-triggered ones
// once per new event.
func (e *fdEntry) reportable() bool {
	if !e.inEpoll {
		return false
	}
	if e.et {
		return e.edge
	}
	return e.count > 0
}

// epollCollect writes up to max ready events (12-byte packed
// struct epoll_event: u32 events, u64 data) through put and clears their
// edges. It returns how many it wrote.
func (ft *fdTable) epollCollect(max int, put func(i int, events uint32, data uint64)) int {
	n := 0
	for i := range ft.fds {
		if n >= max {
			break
		}
		e := &ft.fds[i]
		if !e.reportable() {
			continue
		}
		e.edge = false
		put(n, epollIn, e.epData)
		n++
	}
	return n
}

// epollReady reports whether some registered fd has an unreported event.
func (ft *fdTable) epollReady() bool {
	for i := range ft.fds {
		if ft.fds[i].reportable() {
			return true
		}
	}
	return false
}
