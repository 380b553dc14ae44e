// Package ring implements the byte-stream rings that Xen uses for the PV
// console (xen/include/public/io/console.h, struct xencons_interface) and for
// xenstore (io/xs_wire.h, struct xenstore_domain_interface).
//
// Both are a power-of-two buffer with free-running 32-bit producer and
// consumer indices shared with another domain. The other side is not
// trusted: an index pair that claims more bytes than the buffer holds is
// reported as ErrCorrupt instead of being followed.
//
// The code allocates nothing and never panics on valid Streams, because the
// kernel-mode shim (package minios) writes console output through it.
package ring

import (
	"sync/atomic"
	"unsafe"
)

// Error is the type of this package's errors. They are constants rather
// than errors.New values because the shim uses this package before the Go
// runtime has run any package initialisers.
type Error string

func (e Error) Error() string { return string(e) }

// Errors reported by this package.
const (
	// ErrCorrupt: the shared indices are inconsistent, which only a
	// misbehaving peer can cause.
	ErrCorrupt = Error("ring: peer published inconsistent indices")
	// ErrSize: the buffer or page has the wrong length.
	ErrSize = Error("ring: buffer length is not a power of two or the page is short")
)

// Stream is one direction of a byte-stream ring.
type Stream struct {
	buf  []byte
	cons *uint32
	prod *uint32
}

// NewStream returns a Stream over buf (whose length must be a power of two)
// with the given shared indices.
func NewStream(buf []byte, cons, prod *uint32) (Stream, error) {
	n := len(buf)
	if n == 0 || n&(n-1) != 0 || n > 1<<30 {
		return Stream{}, ErrSize
	}
	return Stream{buf: buf, cons: cons, prod: prod}, nil
}

// Size is the buffer length.
func (s Stream) Size() int { return len(s.buf) }

// Pending returns how many bytes are waiting to be consumed.
func (s Stream) Pending() (int, error) {
	c := atomic.LoadUint32(s.cons)
	p := atomic.LoadUint32(s.prod)
	d := p - c
	if d > uint32(len(s.buf)) {
		return 0, ErrCorrupt
	}
	return int(d), nil
}

// Space returns how many bytes can be produced without overwriting data
// the consumer has not read yet.
func (s Stream) Space() (int, error) {
	d, err := s.Pending()
	if err != nil {
		return 0, err
	}
	return len(s.buf) - d, nil
}

// Produce copies as much of p as fits into the ring and publishes it. It is
// the producer side: only one goroutine (or the shim) may call it.
// The caller notifies the peer afterwards.
func (s Stream) Produce(p []byte) (int, error) {
	c := atomic.LoadUint32(s.cons)
	prod := atomic.LoadUint32(s.prod)
	used := prod - c
	size := uint32(len(s.buf))
	if used > size {
		return 0, ErrCorrupt
	}
	free := size - used
	n := uint32(len(p))
	if n > free {
		n = free
	}
	mask := size - 1
	for done := uint32(0); done < n; {
		off := (prod + done) & mask
		chunk := size - off
		if chunk > n-done {
			chunk = n - done
		}
		copy(s.buf[off:off+chunk], p[done:done+chunk])
		done += chunk
	}
	// The store of the index is a release: the peer sees the bytes first.
	atomic.StoreUint32(s.prod, prod+n)
	return int(n), nil
}

// Consume copies up to len(p) pending bytes into p and releases them to
// the producer. Only one goroutine may consume.
func (s Stream) Consume(p []byte) (int, error) {
	c := atomic.LoadUint32(s.cons)
	prod := atomic.LoadUint32(s.prod) // acquire: bytes before prod are visible
	avail := prod - c
	size := uint32(len(s.buf))
	if avail > size {
		return 0, ErrCorrupt
	}
	n := uint32(len(p))
	if n > avail {
		n = avail
	}
	mask := size - 1
	for done := uint32(0); done < n; {
		off := (c + done) & mask
		chunk := size - off
		if chunk > n-done {
			chunk = n - done
		}
		copy(p[done:done+chunk], s.buf[off:off+chunk])
		done += chunk
	}
	atomic.StoreUint32(s.cons, c+n)
	return int(n), nil
}

// Console layout, from io/console.h (struct xencons_interface).
const (
	ConsoleInSize   = 1024
	ConsoleOutSize  = 2048
	consoleInOff    = 0
	consoleOutOff   = 1024
	consoleInCons   = 3072
	consoleInProd   = 3076
	consoleOutCons  = 3080
	consoleOutProd  = 3084
	ConsolePageSize = 4096
)

// Xenstore layout, from io/xs_wire.h (struct xenstore_domain_interface).
const (
	StoreRingSize = 1024
	storeReqOff   = 0
	storeRspOff   = 1024
	storeReqCons  = 2048
	storeReqProd  = 2052
	storeRspCons  = 2056
	storeRspProd  = 2060
)

func u32At(page []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&page[off]))
}

// Console returns the guest's two streams of a console page: in (backend
// produces, guest consumes) and out (guest produces).
func Console(page []byte) (in, out Stream, err error) {
	if len(page) < ConsolePageSize {
		return Stream{}, Stream{}, ErrSize
	}
	in, _ = NewStream(page[consoleInOff:consoleInOff+ConsoleInSize], u32At(page, consoleInCons), u32At(page, consoleInProd))
	out, _ = NewStream(page[consoleOutOff:consoleOutOff+ConsoleOutSize], u32At(page, consoleOutCons), u32At(page, consoleOutProd))
	return in, out, nil
}

// Store returns the guest's two streams of a xenstore page: req (guest
// produces) and rsp (xenstored produces).
func Store(page []byte) (req, rsp Stream, err error) {
	if len(page) < ConsolePageSize {
		return Stream{}, Stream{}, ErrSize
	}
	req, _ = NewStream(page[storeReqOff:storeReqOff+StoreRingSize], u32At(page, storeReqCons), u32At(page, storeReqProd))
	rsp, _ = NewStream(page[storeRspOff:storeRspOff+StoreRingSize], u32At(page, storeRspCons), u32At(page, storeRspProd))
	return req, rsp, nil
}
