package xen

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// shared_info layout, x86_64 (xen.h struct shared_info, struct vcpu_info,
// struct vcpu_time_info; arch-x86/xen.h struct arch_shared_info,
// struct arch_vcpu_info). Checked against gcc in sharedinfo_test.go.
const (
	SharedInfoSize = 3136 // used part of the shared_info page
	MaxLegacyVCPUs = 32   // XEN_LEGACY_MAX_VCPUS: vcpu_info slots in shared_info
	VCPUInfoSize   = 64

	shEvtchnPending = 2048 // u64 evtchn_pending[64]
	shEvtchnMask    = 2560 // u64 evtchn_mask[64]
	shWcVersion     = 3072
	shWcSec         = 3076
	shWcNsec        = 3080
	shWcSecHi       = 3084
	shMaxPFN        = 3088 // arch.max_pfn
	shP2MFrameList  = 3096 // arch.pfn_to_mfn_frame_list_list
	shNMIReason     = 3104 // arch.nmi_reason
	shP2MCR3        = 3112
	shP2MVaddr      = 3120
	shP2MGeneration = 3128

	viUpcallPending = 0  // u8 evtchn_upcall_pending
	viUpcallMask    = 1  // u8 evtchn_upcall_mask
	viPendingSel    = 8  // u64 evtchn_pending_sel
	viCR2           = 16 // arch.cr2
	viTime          = 32 // struct vcpu_time_info

	vtVersion   = 0
	vtTSC       = 8
	vtSysTime   = 16
	vtMul       = 24
	vtShift     = 28
	vtFlags     = 29
	evtchnWords = EvtchnPorts2L / 64
)

// Errors from NewSharedInfo.
const (
	ErrSharedInfoShort   = Error("xen: shared_info page shorter than 3136 bytes")
	ErrSharedInfoAligned = Error("xen: shared_info page is not 8-byte aligned")
)

// seqlockTries bounds how often a seqlock-protected read is retried before
// giving up: Xen holds the lock for a few instructions, so more retries
// mean the writer is not Xen.
const seqlockTries = 1000

// SharedInfo is a view of the shared_info page Xen maps for the domain.
// Xen writes it concurrently from other physical CPUs, so every access is
// atomic and nothing is cached.
type SharedInfo struct {
	p unsafe.Pointer
}

// NewSharedInfo returns a view of page, which must cover SharedInfoSize
// bytes and be 8-byte aligned (it is page-aligned under Xen).
func NewSharedInfo(page []byte) (SharedInfo, error) {
	if len(page) < SharedInfoSize {
		return SharedInfo{}, ErrSharedInfoShort
	}
	p := unsafe.Pointer(&page[0])
	if uintptr(p)%8 != 0 {
		return SharedInfo{}, ErrSharedInfoAligned
	}
	return SharedInfo{p: p}, nil
}

func (s SharedInfo) u64(off uintptr) *uint64 { return (*uint64)(unsafe.Add(s.p, off)) }
func (s SharedInfo) u32(off uintptr) *uint32 { return (*uint32)(unsafe.Add(s.p, off)) }

// word returns the pending or mask word holding port's bit, and the bit.
func (s SharedInfo) word(base uintptr, port Port) (*uint64, uint64, bool) {
	if port >= EvtchnPorts2L {
		return nil, 0, false
	}
	return s.u64(base + uintptr(port/64)*8), 1 << (port % 64), true
}

// Pending reports whether port's PENDING bit is set.
func (s SharedInfo) Pending(port Port) bool {
	w, bit, ok := s.word(shEvtchnPending, port)
	return ok && atomic.LoadUint64(w)&bit != 0
}

// SetPending sets port's PENDING bit and reports whether it was clear
// before. Xen does this; the guest only in simulations.
func (s SharedInfo) SetPending(port Port) bool {
	w, bit, ok := s.word(shEvtchnPending, port)
	return ok && atomic.OrUint64(w, bit)&bit == 0
}

// TestAndClearPending clears port's PENDING bit and reports whether it
// was set: the guest clears the bit before handling the event so that a
// new event is never lost.
func (s SharedInfo) TestAndClearPending(port Port) bool {
	w, bit, ok := s.word(shEvtchnPending, port)
	return ok && atomic.AndUint64(w, ^bit)&bit != 0
}

// Masked reports whether port's MASK bit is set.
func (s SharedInfo) Masked(port Port) bool {
	w, bit, ok := s.word(shEvtchnMask, port)
	return ok && atomic.LoadUint64(w)&bit != 0
}

// Mask sets port's MASK bit.
func (s SharedInfo) Mask(port Port) {
	if w, bit, ok := s.word(shEvtchnMask, port); ok {
		atomic.OrUint64(w, bit)
	}
}

// Unmask clears port's MASK bit and reports whether the port is pending:
// an event that arrived while masked raised no upcall (the edge is lost),
// so the caller must handle it itself or use EVTCHNOP_unmask.
func (s SharedInfo) Unmask(port Port) bool {
	if w, bit, ok := s.word(shEvtchnMask, port); ok {
		atomic.AndUint64(w, ^bit)
	}
	return s.Pending(port)
}

// PendingWord returns word i (0..63) of evtchn_pending.
func (s SharedInfo) PendingWord(i int) uint64 {
	if i < 0 || i >= evtchnWords {
		return 0
	}
	return atomic.LoadUint64(s.u64(shEvtchnPending + uintptr(i)*8))
}

// MaskWord returns word i (0..63) of evtchn_mask.
func (s SharedInfo) MaskWord(i int) uint64 {
	if i < 0 || i >= evtchnWords {
		return 0
	}
	return atomic.LoadUint64(s.u64(shEvtchnMask + uintptr(i)*8))
}

// ClearAllPending zeroes every evtchn_pending word (handoff, §6.5 item 4).
func (s SharedInfo) ClearAllPending() {
	for i := 0; i < evtchnWords; i++ {
		atomic.StoreUint64(s.u64(shEvtchnPending+uintptr(i)*8), 0)
	}
}

// VCPU returns the view of vcpu_info[i], or false if i is not one of the
// 32 legacy slots.
func (s SharedInfo) VCPU(i int) (VCPUInfo, bool) {
	if i < 0 || i >= MaxLegacyVCPUs {
		return VCPUInfo{}, false
	}
	return VCPUInfo{p: unsafe.Add(s.p, i*VCPUInfoSize)}, true
}

// Wallclock returns the wall-clock base (seconds and nanoseconds since the
// Unix epoch at system time 0), read under the wc_version seqlock. ok is
// false if no consistent snapshot could be taken.
func (s SharedInfo) Wallclock() (sec uint64, nsec uint32, ok bool) {
	for range seqlockTries {
		v := atomic.LoadUint32(s.u32(shWcVersion))
		if v&1 != 0 {
			continue
		}
		lo := atomic.LoadUint32(s.u32(shWcSec))
		hi := atomic.LoadUint32(s.u32(shWcSecHi))
		ns := atomic.LoadUint32(s.u32(shWcNsec))
		if atomic.LoadUint32(s.u32(shWcVersion)) == v {
			return uint64(hi)<<32 | uint64(lo), ns, true
		}
	}
	return 0, 0, false
}

// ArchInfo is struct arch_shared_info (arch-x86/xen.h).
type ArchInfo struct {
	MaxPFN                uint64
	PFNToMFNFrameListList uint64
	NMIReason             uint64
	P2MCR3                uint64
	P2MVaddr              uint64
	P2MGeneration         uint64
}

// Arch reads arch_shared_info.
func (s SharedInfo) Arch() ArchInfo {
	return ArchInfo{
		MaxPFN:                atomic.LoadUint64(s.u64(shMaxPFN)),
		PFNToMFNFrameListList: atomic.LoadUint64(s.u64(shP2MFrameList)),
		NMIReason:             atomic.LoadUint64(s.u64(shNMIReason)),
		P2MCR3:                atomic.LoadUint64(s.u64(shP2MCR3)),
		P2MVaddr:              atomic.LoadUint64(s.u64(shP2MVaddr)),
		P2MGeneration:         atomic.LoadUint64(s.u64(shP2MGeneration)),
	}
}

// VCPUInfo is a view of one struct vcpu_info (xen.h).
type VCPUInfo struct {
	p unsafe.Pointer
}

// The two flag bytes live in the first aligned 32-bit word; byte updates
// are done with a compare-and-swap on that word so that Xen's concurrent
// byte stores are never overwritten with stale values.
func (v VCPUInfo) flagWord() *uint32 { return (*uint32)(v.p) }

func (v VCPUInfo) byteAt(off uint) uint8 {
	return uint8(atomic.LoadUint32(v.flagWord()) >> (8 * off))
}

func (v VCPUInfo) setByte(off uint, val uint8) {
	w := v.flagWord()
	for {
		old := atomic.LoadUint32(w)
		nw := old&^(0xff<<(8*off)) | uint32(val)<<(8*off)
		if atomic.CompareAndSwapUint32(w, old, nw) {
			return
		}
	}
}

// UpcallPending returns evtchn_upcall_pending.
func (v VCPUInfo) UpcallPending() uint8 { return v.byteAt(viUpcallPending) }

// SetUpcallPending writes evtchn_upcall_pending.
func (v VCPUInfo) SetUpcallPending(x uint8) { v.setByte(viUpcallPending, x) }

// UpcallMask returns evtchn_upcall_mask.
func (v VCPUInfo) UpcallMask() uint8 { return v.byteAt(viUpcallMask) }

// SetUpcallMask writes evtchn_upcall_mask.
func (v VCPUInfo) SetUpcallMask(x uint8) { v.setByte(viUpcallMask, x) }

// SwapPendingSel atomically replaces evtchn_pending_sel and returns the
// old selector (the first step of the 2-level scan).
func (v VCPUInfo) SwapPendingSel(x uint64) uint64 {
	return atomic.SwapUint64((*uint64)(unsafe.Add(v.p, viPendingSel)), x)
}

// OrPendingSel sets bits in evtchn_pending_sel (what Xen does).
func (v VCPUInfo) OrPendingSel(x uint64) {
	atomic.OrUint64((*uint64)(unsafe.Add(v.p, viPendingSel)), x)
}

// CR2 returns arch.cr2, the faulting address Xen stores for #PF.
func (v VCPUInfo) CR2() uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Add(v.p, viCR2)))
}

// VCPUTimeInfo is struct vcpu_time_info (xen.h), the pvclock.
type VCPUTimeInfo struct {
	Version        uint32
	TSCTimestamp   uint64 // TSC at the last update
	SystemTime     uint64 // ns since boot at TSCTimestamp
	TSCToSystemMul uint32
	TSCShift       int8
	Flags          uint8 // XEN_PVCLOCK_*
}

// Time reads the vCPU's time record under its version seqlock. ok is false
// if no consistent snapshot could be taken.
func (v VCPUInfo) Time() (t VCPUTimeInfo, ok bool) {
	base := unsafe.Add(v.p, viTime)
	ver := (*uint32)(unsafe.Add(base, vtVersion))
	for range seqlockTries {
		t.Version = atomic.LoadUint32(ver)
		if t.Version&1 != 0 {
			continue
		}
		t.TSCTimestamp = atomic.LoadUint64((*uint64)(unsafe.Add(base, vtTSC)))
		t.SystemTime = atomic.LoadUint64((*uint64)(unsafe.Add(base, vtSysTime)))
		t.TSCToSystemMul = atomic.LoadUint32((*uint32)(unsafe.Add(base, vtMul)))
		w := atomic.LoadUint32((*uint32)(unsafe.Add(base, vtShift))) // shift, flags, pad
		t.TSCShift = int8(w)
		t.Flags = uint8(w >> 8)
		if atomic.LoadUint32(ver) == t.Version {
			return t, true
		}
	}
	return VCPUTimeInfo{}, false
}

// SystemTimeAt converts a TSC reading to Xen system time in ns:
// system_time + ((tsc - tsc_timestamp) << shift) * mul >> 32, with the
// shift to the right for negative shifts and a 128-bit product.
func (t VCPUTimeInfo) SystemTimeAt(tsc uint64) uint64 {
	d := tsc - t.TSCTimestamp
	if t.TSCShift >= 0 {
		d <<= uint(t.TSCShift)
	} else {
		d >>= uint(-int(t.TSCShift))
	}
	hi, lo := bits.Mul64(d, uint64(t.TSCToSystemMul))
	return t.SystemTime + (hi<<32 | lo>>32)
}
