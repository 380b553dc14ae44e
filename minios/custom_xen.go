//go:build xenpv

package minios

import (
	"unsafe"

	"github.com/gopvgrub/gopvgrub/minios/shimabi"
)

// The shim's own system calls (package shimabi documents them): how the Go
// drivers reach the hypervisor. Hypercalls are forwarded only from a
// whitelist, with their argument structures checked to be mapped user
// memory, so that a driver bug gives an error rather than a fault in Xen.

func mCustomSyscall(t *thread, nr uint64) int64 {
	r := &t.regs
	a1, a2, a3, a4, a5 := r.rdi, r.rsi, r.rdx, r.r10, r.r8
	switch nr {
	case shimabi.SysHypercall:
		return passHypercall(a1, a2, a3, a4, a5)
	case shimabi.SysEventFD:
		if !knownPort(uint32(a1)) {
			return -eINVAL
		}
		return k.fds.openPort(a1)
	case shimabi.SysMapFrames:
		return mapFrames(a1, a2)
	case shimabi.SysUnmapFrames:
		return unmapArea(a1, a2, false)
	case shimabi.SysAllocPages:
		return allocPages(a1, a2)
	case shimabi.SysFreePages:
		return unmapArea(a1, a2, true)
	case shimabi.SysInfo:
		n := uint64(unsafe.Sizeof(boot.info))
		if a2 < n {
			n = a2
		}
		buf, ok := userBytes(a1, n, true)
		if !ok {
			return -eFAULT
		}
		copy(buf, unsafe.Slice((*byte)(unsafe.Pointer(&boot.info)), n))
		return int64(n)
	case shimabi.SysStats:
		var s shimabi.Stats
		stats(&s)
		n := uint64(unsafe.Sizeof(s))
		if a2 < n {
			n = a2
		}
		buf, ok := userBytes(a1, n, true)
		if !ok {
			return -eFAULT
		}
		copy(buf, unsafe.Slice((*byte)(unsafe.Pointer(&s)), n))
		return int64(n)
	case shimabi.SysShutdown:
		switch a1 {
		case shutdownPoweroff, shutdownReboot, shutdownCrash:
			mShutdown(int(a1))
		}
		return -eINVAL
	case shimabi.SysChainP2M:
		return chainP2M(a1, a2)
	case shimabi.SysChainJump:
		return chainJumpSyscall(a1)
	case shimabi.SysXenTime:
		return int64(mNow())
	}
	return -eNOSYS
}

// userPorts are the event channels the program bound through
// SysHypercall; only those (and the console's and xenstore's) may get fds
// or be closed.
var userPorts [maxPorts / 64]uint64

func knownPort(p uint32) bool {
	if p == boot.consolePort || p == boot.storePort {
		return true
	}
	return p < maxPorts && userPorts[p/64]&(1<<(p%64)) != 0
}

func passHypercall(op, a1, a2, a3, a4 uint64) int64 {
	switch op {
	case hcEventChannelOp:
		var size uint64
		switch a1 {
		case evtchnopAllocUnb:
			size = 8 // {u16 dom, u16 remote_dom, u32 port}
		case evtchnopBindInter:
			size = 12 // {u16 remote_dom, u32 remote_port, u32 local_port}
		case evtchnopSend, evtchnopUnmask:
			size = 4
		case evtchnopClose:
			size = 4
		case evtchnopStatus:
			size = 24
		default:
			return -ePERM
		}
		if !userOK(a2, size, true) {
			return -eFAULT
		}
		if a1 == evtchnopClose || a1 == evtchnopSend || a1 == evtchnopUnmask {
			p := *(*uint32)(ptrAt(uintptr(a2)))
			if p == boot.timerPort || (a1 == evtchnopClose && (p == boot.consolePort || p == boot.storePort)) {
				return -ePERM
			}
			if a1 == evtchnopClose && !knownPort(p) {
				return -eINVAL
			}
		}
		rc := hypercall(hcEventChannelOp, a1, a2, 0, 0, 0)
		if rc != 0 {
			return rc
		}
		var p uint32
		switch a1 {
		case evtchnopAllocUnb:
			p = *(*uint32)(ptrAt(uintptr(a2 + 4)))
		case evtchnopBindInter:
			p = *(*uint32)(ptrAt(uintptr(a2 + 8)))
		case evtchnopClose:
			p = *(*uint32)(ptrAt(uintptr(a2)))
			if p < maxPorts {
				userPorts[p/64] &^= 1 << (p % 64)
			}
			removePollPort(p)
			k.fds.forgetPort(uint64(p))
			return 0
		default:
			return 0
		}
		if p < maxPorts {
			userPorts[p/64] |= 1 << (p % 64)
			addPollPort(p)
		}
		return 0
	case hcGrantTableOp:
		if a3 != 1 {
			return -eINVAL
		}
		switch a1 {
		case gnttabopSetupTable:
			// struct gnttab_setup_table: u16 dom, u32 nr_frames, i16
			// status, u64 frame_list (handle to nr_frames u64 MFNs)
			if !userOK(a2, 24, true) {
				return -eFAULT
			}
			if *(*uint16)(ptrAt(uintptr(a2))) != domidSelf {
				return -ePERM
			}
			n := uint64(*(*uint32)(ptrAt(uintptr(a2 + 4))))
			list := *(*uint64)(ptrAt(uintptr(a2 + 16)))
			if n > 256 || !userOK(list, n*8, true) {
				return -eFAULT
			}
		case gnttabopQuerySize:
			if !userOK(a2, 16, true) {
				return -eFAULT
			}
		default:
			return -ePERM
		}
		return hypercall(hcGrantTableOp, a1, a2, 1, 0, 0)
	case hcXenVersion:
		if a2 != 0 && !userOK(a2, 1024, true) {
			return -eFAULT
		}
		return hypercall(hcXenVersion, a1, a2, 0, 0, 0)
	case hcMemoryOp:
		if a1 != xenmemCurrentRes && a1 != xenmemMaximumRes {
			return -ePERM
		}
		if !userOK(a2, 2, false) || *(*uint16)(ptrAt(uintptr(a2))) != domidSelf {
			return -ePERM
		}
		return hypercall(hcMemoryOp, a1, a2, 0, 0, 0)
	}
	return -ePERM
}

// mapFrames maps machine frames (the grant table's, which Xen owns and
// shares with us) at fresh addresses of the map area.
func mapFrames(mfns, n uint64) int64 {
	if n == 0 || n > 1024 || !userOK(mfns, n*8, false) {
		return -eINVAL
	}
	base := k.mapNext
	if base+(n+1)*pageSize > mapAreaBase+mapAreaSize {
		return -eNOMEM
	}
	for i := uint64(0); i < n; i++ {
		mfn := *(*uint64)(ptrAt(uintptr(mfns + i*8)))
		if !mapPage(base+i*pageSize, mfn, pteKernRW) {
			return -eNOMEM
		}
	}
	k.mapNext += (n + 1) * pageSize // and a guard page
	return int64(base)
}

// allocPages backs n fresh pages of the map area with zeroed frames and
// reports their MFNs.
func allocPages(n, mfnsOut uint64) int64 {
	if n == 0 || n > 1<<20 || !userOK(mfnsOut, n*8, true) {
		return -eINVAL
	}
	if k.frames.free < n+256 {
		return -eNOMEM
	}
	base := k.mapNext
	if base+(n+1)*pageSize > mapAreaBase+mapAreaSize {
		return -eNOMEM
	}
	for i := uint64(0); i < n; i++ {
		pfn, ok := allocFrame()
		if !ok {
			unmapArea(base, i, true)
			return -eNOMEM
		}
		mfn := p2m(pfn)
		if !mapPage(base+i*pageSize, mfn, pteKernRW) {
			k.frames.release(pfn)
			unmapArea(base, i, true)
			return -eNOMEM
		}
		*(*uint64)(ptrAt(uintptr(mfnsOut + i*8))) = mfn
	}
	k.mapNext += (n + 1) * pageSize
	return int64(base)
}

// unmapArea removes n pages of the map area at addr, freeing their frames
// when they came from allocPages.
func unmapArea(addr, n uint64, free bool) int64 {
	if addr < mapAreaBase+16*pageSize || addr&(pageSize-1) != 0 || n > 1<<20 || addr+n*pageSize > k.mapNext {
		return -eINVAL
	}
	for i := uint64(0); i < n; i++ {
		va := addr + i*pageSize
		l1, _, ok := l1For(va, false)
		if !ok {
			continue
		}
		e := readEntry(l1, ptIndex(va, 1))
		if e&ptePresent == 0 {
			continue
		}
		mmuQueue(l1<<pageShift+ptIndex(va, 1)*8, 0)
		if free {
			k.frames.release(m2p((e & pteMFNMask) >> pageShift))
		}
	}
	mmuFlush()
	tlbFlush()
	return 0
}
