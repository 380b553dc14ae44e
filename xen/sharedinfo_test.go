package xen

import (
	"encoding/binary"
	"errors"
	"math/big"
	"testing"
	"unsafe"
)

func newPage(t *testing.T) ([]byte, SharedInfo) {
	t.Helper()
	words := make([]uint64, PageSize/8) // 8-byte aligned by construction
	page := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), PageSize)
	s, err := NewSharedInfo(page)
	if err != nil {
		t.Fatal(err)
	}
	return page, s
}

func TestNewSharedInfoChecks(t *testing.T) {
	page, _ := newPage(t)
	if _, err := NewSharedInfo(page[:3135]); !errors.Is(err, ErrSharedInfoShort) {
		t.Errorf("short: %v", err)
	}
	if _, err := NewSharedInfo(page[1:]); !errors.Is(err, ErrSharedInfoAligned) {
		t.Errorf("misaligned: %v", err)
	}
}

func TestEventBits(t *testing.T) {
	page, s := newPage(t)
	for _, tc := range []struct {
		port    Port
		byteOff int // byte of evtchn_pending holding the bit (header layout)
		bit     byte
	}{
		{0, 2048, 0x01},
		{1, 2048, 0x02},
		{9, 2049, 0x02},
		{65, 2056, 0x02},
		{4095, 2048 + 511, 0x80},
	} {
		if !s.SetPending(tc.port) {
			t.Errorf("port %d: SetPending on clear bit returned false", tc.port)
		}
		if page[tc.byteOff] != tc.bit {
			t.Errorf("port %d: pending byte %d = %#x, want %#x", tc.port, tc.byteOff, page[tc.byteOff], tc.bit)
		}
		if s.SetPending(tc.port) {
			t.Errorf("port %d: SetPending on set bit returned true", tc.port)
		}
		if !s.Pending(tc.port) || s.PendingWord(int(tc.port/64))&(1<<(tc.port%64)) == 0 {
			t.Errorf("port %d: not pending", tc.port)
		}
		s.Mask(tc.port)
		if page[tc.byteOff+512] != tc.bit || !s.Masked(tc.port) || s.MaskWord(int(tc.port/64)) == 0 {
			t.Errorf("port %d: mask bit not at %d", tc.port, tc.byteOff+512)
		}
		if !s.Unmask(tc.port) {
			t.Errorf("port %d: Unmask did not report the pending event", tc.port)
		}
		if s.Masked(tc.port) {
			t.Errorf("port %d: still masked", tc.port)
		}
		if !s.TestAndClearPending(tc.port) || s.TestAndClearPending(tc.port) || page[tc.byteOff] != 0 {
			t.Errorf("port %d: TestAndClearPending", tc.port)
		}
	}
	// Out-of-range ports touch nothing.
	if s.SetPending(4096) || s.Pending(4096) || s.TestAndClearPending(1<<20) {
		t.Error("out-of-range port accepted")
	}
	s.Mask(5000)
	if s.PendingWord(64) != 0 || s.MaskWord(-1) != 0 {
		t.Error("out-of-range word")
	}
	s.SetPending(3)
	s.SetPending(700)
	s.ClearAllPending()
	for i := 2048; i < 2560; i++ {
		if page[i] != 0 {
			t.Fatalf("ClearAllPending left byte %d", i)
		}
	}
}

func TestVCPUInfo(t *testing.T) {
	page, s := newPage(t)
	if _, ok := s.VCPU(32); ok {
		t.Error("vcpu 32 accepted")
	}
	v, ok := s.VCPU(1)
	if !ok {
		t.Fatal("vcpu 1")
	}
	base := 64
	v.SetUpcallMask(1)
	v.SetUpcallPending(1)
	if page[base+0] != 1 || page[base+1] != 1 {
		t.Errorf("flag bytes %v", page[base:base+2])
	}
	v.SetUpcallPending(0)
	if v.UpcallPending() != 0 || v.UpcallMask() != 1 {
		t.Error("SetUpcallPending clobbered the mask")
	}
	v.OrPendingSel(1 << 5)
	if got := binary.LittleEndian.Uint64(page[base+8:]); got != 1<<5 {
		t.Errorf("pending_sel %#x", got)
	}
	if old := v.SwapPendingSel(0); old != 1<<5 || v.SwapPendingSel(0) != 0 {
		t.Errorf("SwapPendingSel old %#x", old)
	}
	binary.LittleEndian.PutUint64(page[base+16:], 0xdead000)
	if v.CR2() != 0xdead000 {
		t.Error("cr2")
	}

	tm := page[base+32:]
	binary.LittleEndian.PutUint32(tm[0:], 4)
	binary.LittleEndian.PutUint64(tm[8:], 1000)
	binary.LittleEndian.PutUint64(tm[16:], 5_000_000)
	binary.LittleEndian.PutUint32(tm[24:], 0x80000000) // mul = 0.5
	tm[28] = 0xff                                      // shift -1
	tm[29] = 1
	ti, ok := v.Time()
	want := VCPUTimeInfo{Version: 4, TSCTimestamp: 1000, SystemTime: 5_000_000, TSCToSystemMul: 0x80000000, TSCShift: -1, Flags: 1}
	if !ok || ti != want {
		t.Fatalf("Time() = %+v %v", ti, ok)
	}
	binary.LittleEndian.PutUint32(tm[0:], 5) // update in progress
	if _, ok := v.Time(); ok {
		t.Error("odd version accepted")
	}
}

func TestSystemTimeAt(t *testing.T) {
	// Reference: the formula of xen.h evaluated with big integers.
	ref := func(ti VCPUTimeInfo, tsc uint64) uint64 {
		d := new(big.Int).SetUint64(tsc - ti.TSCTimestamp)
		if ti.TSCShift >= 0 {
			d.Lsh(d, uint(ti.TSCShift))
			d.And(d, new(big.Int).SetUint64(^uint64(0))) // the shift is on a u64
		} else {
			d.Rsh(d, uint(-int(ti.TSCShift)))
		}
		d.Mul(d, new(big.Int).SetUint64(uint64(ti.TSCToSystemMul)))
		d.Rsh(d, 32)
		d.Add(d, new(big.Int).SetUint64(ti.SystemTime))
		return new(big.Int).And(d, new(big.Int).SetUint64(^uint64(0))).Uint64()
	}
	for _, tc := range []struct {
		ti  VCPUTimeInfo
		tsc uint64
	}{
		{VCPUTimeInfo{TSCTimestamp: 100, SystemTime: 7, TSCToSystemMul: 1 << 31, TSCShift: 0}, 300},
		{VCPUTimeInfo{TSCTimestamp: 0, SystemTime: 0, TSCToSystemMul: 0xffffffff, TSCShift: 3}, 1 << 60},
		{VCPUTimeInfo{TSCTimestamp: 5, SystemTime: 1e9, TSCToSystemMul: 0x9a2d5a1b, TSCShift: -2}, 1<<40 + 5},
		{VCPUTimeInfo{TSCTimestamp: 1 << 50, SystemTime: 12, TSCToSystemMul: 3, TSCShift: 1}, 1<<50 + 9},
	} {
		if got, want := tc.ti.SystemTimeAt(tc.tsc), ref(tc.ti, tc.tsc); got != want {
			t.Errorf("%+v at %d: %d, want %d", tc.ti, tc.tsc, got, want)
		}
	}
	// 2.5 GHz TSC (mul = 2^32 * 0.4): 2.5e9 ticks are one second.
	ti := VCPUTimeInfo{TSCToSystemMul: 1717986918, SystemTime: 1000}
	if got := ti.SystemTimeAt(2_500_000_000); got < 1000+999_999_999 || got > 1000+1_000_000_000 {
		t.Errorf("one second at 2.5 GHz = %d ns", got-1000)
	}
}

func TestWallclockAndArch(t *testing.T) {
	page, s := newPage(t)
	binary.LittleEndian.PutUint32(page[3072:], 2)
	binary.LittleEndian.PutUint32(page[3076:], 0x6000_0000)
	binary.LittleEndian.PutUint32(page[3080:], 999)
	binary.LittleEndian.PutUint32(page[3084:], 1)
	sec, nsec, ok := s.Wallclock()
	if !ok || sec != 1<<32|0x6000_0000 || nsec != 999 {
		t.Errorf("Wallclock = %d %d %v", sec, nsec, ok)
	}
	binary.LittleEndian.PutUint32(page[3072:], 3)
	if _, _, ok := s.Wallclock(); ok {
		t.Error("odd wc_version accepted")
	}
	for i, off := range []int{3088, 3096, 3104, 3112, 3120, 3128} {
		binary.LittleEndian.PutUint64(page[off:], uint64(i+1))
	}
	if a := s.Arch(); a != (ArchInfo{1, 2, 3, 4, 5, 6}) {
		t.Errorf("Arch = %+v", a)
	}
}
