//go:build !xenpv

package minios

// The simulated machine under the shim's logic, for host tests: a settable
// clock, a console that accepts a limited number of bytes, user memory that
// is ordinary Go memory, and a shutdown that panics so tests can observe it.

var sim struct {
	now         uint64
	wallSec     uint64
	console     []byte
	consoleRoom int // bytes the console accepts before it is "full"
	klog        []byte
	dropped     [][2]uint64
	badUser     uint64 // an address range start that mUserOK refuses
	shutdown    int
}

type simShutdown struct{ reason int }

func simReset() {
	k = kernel{}
	sim.now, sim.wallSec = 1_000_000_000, 1_700_000_000
	sim.console, sim.klog, sim.dropped = nil, nil, nil
	sim.consoleRoom = 1 << 30
	sim.badUser = 0
	sim.shutdown = -1
	k.sched.init()
	k.fds.init()
}

func mNow() uint64 { return sim.now }

func mWallclock() (uint64, uint64) { return sim.wallSec + sim.now/1e9, sim.now % 1e9 }

func mConsoleWrite(p []byte) int {
	n := len(p)
	if n > sim.consoleRoom {
		n = sim.consoleRoom
	}
	sim.consoleRoom -= n
	sim.console = append(sim.console, p[:n]...)
	return n
}

func kconsole(p []byte) { sim.klog = append(sim.klog, p...) }

func mUserOK(addr, n uint64, write bool) bool {
	if addr == 0 || addr+n < addr {
		return false
	}
	return sim.badUser == 0 || addr+n <= sim.badUser || addr >= sim.badUser+pageSize
}

func mDropPages(start, end uint64) { sim.dropped = append(sim.dropped, [2]uint64{start, end}) }

func mShutdown(reason int) {
	sim.shutdown = reason
	panic(simShutdown{reason})
}

func mRandom(p []byte) {
	for i := range p {
		p[i] = byte(i*131 + 7)
	}
}

func mCustomSyscall(t *thread, nr uint64) int64 { return -eNOSYS }
