// Package shimabi is the contract between the kernel-mode shim (package
// minios) and the Go program above it: the syscall numbers the shim adds to
// the Linux ones, and the layouts of the structures they exchange.
//
// The numbers start at 0x1000, far above Linux's, so a Go program run on
// Linux by mistake gets ENOSYS instead of a different system call.
package shimabi

// Syscall numbers.
const (
	// SysHypercall(op, a1, a2, a3, a4) forwards a whitelisted hypercall:
	// event_channel_op (alloc_unbound, bind_interdomain, send, close,
	// status, unmask), grant_table_op (setup_table, query_size),
	// xen_version, memory_op (current/maximum_reservation for DOMID_SELF).
	// Pointer arguments are user addresses. Returns Xen's result.
	SysHypercall = 0x1000
	// SysEventFD(port) returns a file descriptor for an event channel
	// bound through SysHypercall (or the console/xenstore ports): read
	// returns the 8-byte count of events since the last read, or EAGAIN;
	// it is non-blocking and epoll-able, so os.NewFile reads it through
	// the Go netpoller and goroutines block without a thread.
	SysEventFD = 0x1001
	// SysMapFrames(mfns *uint64, n) maps n machine frames (grant table
	// frames) writable at fresh addresses and returns the address.
	SysMapFrames = 0x1002
	// SysAllocPages(n, mfns *uint64) allocates n zeroed pages outside the
	// Go heap, writes their machine frames to mfns and returns the address.
	SysAllocPages = 0x1003
	// SysFreePages(addr, n) frees pages from SysAllocPages.
	SysFreePages = 0x1004
	// SysInfo(buf *Info, size) copies boot information.
	SysInfo = 0x1005
	// SysStats(buf *Stats, size) copies counters.
	SysStats = 0x1006
	// SysShutdown(reason) flushes the console and shuts the domain down
	// (0 poweroff, 1 reboot, 3 crash).
	SysShutdown = 0x1007
	// SysXenTime() returns Xen system time in nanoseconds, read directly
	// from the vCPU's pvclock.
	SysXenTime = 0x1008
	// SysUnmapFrames(addr, n) removes a SysMapFrames mapping.
	SysUnmapFrames = 0x1009
	// SysTrace(on) switches the shim's scheduler trace on the console
	// (blocking syscalls, wake-ups, switches, idle periods): a debugging
	// aid for timing problems.
	SysTrace = 0x100a
)

// StartInfoSize is sizeof(start_info_t) on x86_64 (xen.h).
const StartInfoSize = 1168

// MaxInitialPT is how many initial page-table frames Info records.
const MaxInitialPT = 64

// Info is what SysInfo returns.
type Info struct {
	// StartInfo is start_info exactly as the domain builder wrote it.
	StartInfo [StartInfoSize]byte
	// Addresses where the shim mapped shared pages, for the drivers.
	StoreVA, ConsoleVA, SharedInfoVA uint64
	NrPages                          uint64
	// What the domain builder laid out (for the layout e2e test):
	// the end of the initial mapping, and the initial page-table frames
	// in the order found (PFN | level<<60).
	VirtBase, InitialMapEnd uint64
	NumInitialPT            uint64
	InitialPT               [MaxInitialPT]uint64
	// InitialPTHash digests each of them as the builder wrote it
	// (minios tableHash; loader/layout/xendump has the definition).
	InitialPTHash [MaxInitialPT]uint64
	// The image's own extent and its demand-paged BSS tail.
	ImageEnd, LazyBSSStart, LazyBSSEnd uint64
	// Xen system time at the first instruction and at user entry.
	BootNS, UserEntryNS uint64
	// Domain memory free when the Go program started, in pages.
	FreeAtEntry uint64
	XenVersion  uint64 // major<<16 | minor
	// A ramdisk= module (PV-GRUB accepted menu.lst this way): its address
	// in the direct map and its length; 0 when there is none.
	ModVA, ModLen uint64
}

// Stats is what SysStats returns.
type Stats struct {
	PagesTotal, PagesFree, PagesPeakUsed uint64
	Syscalls, PageFaults, Switches       uint64
	Events, Preemptions, Threads         uint64
	IdleNS, NowNS                        uint64
	// Timer accuracy: how late threads woke after their deadline passed
	// (the worst case, and how many wakes were over 1 ms late), and how
	// many times the idle vCPU was woken.
	WakeLateMaxNS, WakesLate1ms, IdleWakes uint64
}

// Chainloading (package loader/boot drives these).
const (
	// SysChainP2M(buf *uint64, n) copies the domain's current P2M table
	// (n must be nr_pages) into buf.
	SysChainP2M = 0x100b
	// SysChainJump(j *ChainJump) hands the domain to the next kernel:
	// write-protects its page tables, pins the new L4, tears down the
	// shim's events, traps and callbacks, applies the new P2M to Xen's
	// M2P and jumps through the trampoline. It returns only on failure,
	// before the point of no return.
	SysChainJump = 0x100c
)

// ChainJump describes the prepared image to SysChainJump. PFNs are in the
// new layout's numbering; P2M maps each of them to its machine frame.
type ChainJump struct {
	P2M, NrPages        uint64 // address of the new P2M (NrPages entries)
	Window, WindowPages uint64 // the SysAllocPages area holding the image: unmapped, kept
	Tables, NrTables    uint64 // address of the PFNs of every new page-table page
	L4PFN               uint64
	BootStackPFN        uint64 // the trampoline runs in this page...
	BootStackVA         uint64 // ...mapped here in both the old and new tables
	Entry, Stack        uint64 // RIP and RSP at the kernel's entry
	StartInfo           uint64 // RSI: start_info's address in the new layout
}
