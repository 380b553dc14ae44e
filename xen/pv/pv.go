// Package pv is the Go program's side of the minios shim: typed wrappers
// for the shim's system calls (package minios/shimabi), and the
// implementation of the xen interfaces (Events, Memory, GrantFrames) that
// the drivers use under real Xen.
//
// On Linux, outside Xen, every call fails with ENOSYS: Available tells.
package pv

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/minios/shimabi"
)

// ErrNotXen is returned when the program does not run on the shim.
var ErrNotXen = errors.New("pv: not running on the gopvgrub shim (no Xen PV)")

func call(nr uintptr, a ...uintptr) (uintptr, error) {
	var args [6]uintptr
	copy(args[:], a)
	r, _, errno := syscall.Syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
	if errno != 0 {
		if errno == syscall.ENOSYS {
			return 0, ErrNotXen
		}
		return 0, errno
	}
	return r, nil
}

// rawcall is for calls that never block: no scheduler hand-off.
func rawcall(nr uintptr, a ...uintptr) (uintptr, error) {
	var args [6]uintptr
	copy(args[:], a)
	r, _, errno := syscall.RawSyscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
	if errno != 0 {
		if errno == syscall.ENOSYS {
			return 0, ErrNotXen
		}
		return 0, errno
	}
	return r, nil
}

// Available reports whether the shim is there.
func Available() bool {
	_, err := rawcall(shimabi.SysXenTime)
	return err == nil
}

// XenTime is Xen system time (ns since the host booted), read straight
// from the pvclock: the reference the Go clock is checked against.
func XenTime() (uint64, error) {
	r, err := rawcall(shimabi.SysXenTime)
	return uint64(r), err
}

// Info returns the boot information the shim recorded.
func Info() (*shimabi.Info, error) {
	var inf shimabi.Info
	n, err := rawcall(shimabi.SysInfo, uintptr(unsafe.Pointer(&inf)), unsafe.Sizeof(inf))
	if err != nil {
		return nil, err
	}
	if n != unsafe.Sizeof(inf) {
		return nil, fmt.Errorf("pv: shim returned %d bytes of info, want %d", n, unsafe.Sizeof(inf))
	}
	return &inf, nil
}

// Stats returns the shim's counters.
func Stats() (*shimabi.Stats, error) {
	var s shimabi.Stats
	if _, err := rawcall(shimabi.SysStats, uintptr(unsafe.Pointer(&s)), unsafe.Sizeof(s)); err != nil {
		return nil, err
	}
	return &s, nil
}

// Shutdown reasons (xen/include/public/sched.h SHUTDOWN_*).
const (
	Poweroff = 0
	Reboot   = 1
	Crash    = 3
)

// Shutdown flushes the console and ends the domain. It returns only on
// error.
func Shutdown(reason int) error {
	_, err := call(shimabi.SysShutdown, uintptr(reason))
	return err
}

// Trace switches the shim's scheduler trace on or off.
func Trace(on bool) error {
	v := uintptr(0)
	if on {
		v = 1
	}
	_, err := rawcall(shimabi.SysTrace, v)
	return err
}

// ChainP2M returns the domain's current P2M table (nr_pages entries).
func ChainP2M(nrPages uint64) ([]uint64, error) {
	p := make([]uint64, nrPages)
	if _, err := call(shimabi.SysChainP2M, uintptr(unsafe.Pointer(&p[0])), uintptr(nrPages)); err != nil {
		return nil, fmt.Errorf("pv: read P2M: %w", err)
	}
	return p, nil
}

// ChainJump hands the domain to the next kernel (shimabi.SysChainJump).
// It returns only on failure; the shim has then printed why.
func ChainJump(j *shimabi.ChainJump) error {
	_, err := call(shimabi.SysChainJump, uintptr(unsafe.Pointer(j)))
	return fmt.Errorf("pv: chainload refused: %w", err)
}
