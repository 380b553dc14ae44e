// Package gnttab manages the guest's side of a version 1 Xen grant table
// (xen/include/public/grant_table.h, grant_entry_v1): handing a backend
// domain access to one of our pages and taking it back.
//
// The table lives in frames Xen owns and maps into the guest
// (xen.GrantFrames.Grow). An entry is {u16 flags, u16 domid, u32 frame};
// Xen reads it whenever the grantee maps or copies, and sets GTF_reading /
// GTF_writing in flags while the grantee has the frame mapped. Ordering
// matters: the frame and domid must be visible before the flags make the
// entry valid, and access may only be revoked while neither in-use bit is
// set. Both are done here with 32-bit atomics on the aligned word holding
// flags and domid (see Grant and End).
//
// Refs 0-7 are reserved for the toolstack (0: console, 1: xenstore) and
// are never handed out or written. Version 2 is never used: switching
// versions cannot be undone and would break the kernel we chainload.
//
// Linux and Mini-OS have equivalents (gnttab.c); this is our own, written
// against the header, because no Go library implements Xen grant tables.
package gnttab

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/xen"
)

// Ref is a grant reference: an index into the grant table.
type Ref uint32

// Error is the type of this package's sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Errors returned by Table.
const (
	// ErrInUse: the grantee still has the page mapped (GTF_reading or
	// GTF_writing is set). The grant stays active; retry End later.
	ErrInUse = Error("gnttab: grant still mapped by the peer")
	// ErrFull: every entry up to MaxFrames is in use.
	ErrFull = Error("gnttab: grant table full")
	// ErrBadRef: the reference is reserved, out of range or not active.
	ErrBadRef = Error("gnttab: grant reference not active")
	// ErrFrame: the machine frame does not fit the 32-bit v1 entry.
	ErrFrame = Error("gnttab: machine frame does not fit a v1 grant entry")
	// ErrPlatform: the platform returned a table of the wrong size.
	ErrPlatform = Error("gnttab: grant table mapping has the wrong size")
)

// endTries bounds the compare-and-swap loop in End. Only the peer's own
// mapping and unmapping make the CAS fail, so a few retries suffice; a
// peer that keeps flipping the bits is told to come back later.
const endTries = 64

// Table is the guest's grant table. It is safe for concurrent use.
type Table struct {
	gf xen.GrantFrames

	mu     sync.Mutex
	mem    []byte // frames*4096 bytes of entries
	frames int
	max    int
	next   Ref   // lowest never-used ref
	free   []Ref // ended refs, reused first
	active map[Ref]struct{}
}

// New returns a Table over the platform's grant frames. The table grows
// one frame at a time, on demand, up to the platform's MaxFrames.
func New(gf xen.GrantFrames) (*Table, error) {
	max, err := gf.MaxFrames()
	if err != nil {
		return nil, fmt.Errorf("gnttab: query size: %w", err)
	}
	if max < 1 {
		return nil, fmt.Errorf("gnttab: platform allows %d frames: %w", max, ErrFull)
	}
	return &Table{gf: gf, max: max, next: xen.GrantReservedEntries, active: map[Ref]struct{}{}}, nil
}

// MaxFrames is the size limit the platform reported.
func (t *Table) MaxFrames() int { return t.max }

// Frames is the number of frames the table has grown to.
func (t *Table) Frames() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.frames
}

// alloc returns a free ref, growing the table if needed. t.mu is held.
func (t *Table) alloc() (Ref, error) {
	if n := len(t.free); n > 0 {
		r := t.free[n-1]
		t.free = t.free[:n-1]
		return r, nil
	}
	if int(t.next) >= t.frames*xen.GrantEntriesPerFrame {
		if t.frames >= t.max {
			return 0, fmt.Errorf("gnttab: %d frames (%d refs) in use: %w", t.frames, t.frames*xen.GrantEntriesPerFrame, ErrFull)
		}
		n := t.frames + 1
		mem, err := t.gf.Grow(n)
		if err != nil {
			return 0, fmt.Errorf("gnttab: grow to %d frames: %w", n, err)
		}
		if len(mem) != n*xen.PageSize || uintptr(unsafe.Pointer(&mem[0]))%4 != 0 {
			return 0, fmt.Errorf("gnttab: grow to %d frames returned %d bytes: %w", n, len(mem), ErrPlatform)
		}
		t.mem, t.frames = mem, n
	}
	r := t.next
	t.next++
	return r, nil
}

// words returns the two 32-bit words of entry r: flags|domid<<16, frame.
func (t *Table) words(r Ref) (head, frame *uint32) {
	off := int(r) * xen.GrantEntrySize
	return (*uint32)(unsafe.Pointer(&t.mem[off])), (*uint32)(unsafe.Pointer(&t.mem[off+4]))
}

// Grant gives domain dom access to machine frame mfn, read-only if
// readonly, and returns the reference to pass to it.
func (t *Table) Grant(dom xen.DomID, mfn xen.MFN, readonly bool) (Ref, error) {
	if mfn > 0xffffffff {
		return 0, fmt.Errorf("gnttab: frame %#x: %w", uint64(mfn), ErrFrame)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, err := t.alloc()
	if err != nil {
		return 0, err
	}
	flags := uint32(xen.GTFPermitAccess)
	if readonly {
		flags |= xen.GTFReadonly
	}
	head, frame := t.words(r)
	// Frame first; then flags and domid together in one store, which
	// is a release: Xen never sees a valid entry with a stale frame or
	// domid.
	atomic.StoreUint32(frame, uint32(mfn))
	atomic.StoreUint32(head, uint32(dom)<<16|flags)
	t.active[r] = struct{}{}
	return r, nil
}

// End revokes the grant r. If the peer still has the page mapped it
// returns ErrInUse and the grant stays active: the caller must not reuse
// or free the page yet, and should call End again after the backend has
// unmapped it. On success the entry is zeroed and r may be handed out
// again.
func (t *Table) End(r Ref) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.active[r]; !ok {
		return fmt.Errorf("gnttab: end ref %d: %w", r, ErrBadRef)
	}
	head, frame := t.words(r)
	for range endTries {
		w := atomic.LoadUint32(head)
		if w&(xen.GTFReading|xen.GTFWriting) != 0 {
			return fmt.Errorf("gnttab: end ref %d: %w", r, ErrInUse)
		}
		// Clearing flags and domid at once: Xen sets the in-use bits
		// with a compare-and-swap on the same word, so either it saw
		// the grant valid and our CAS fails, or it sees it invalid.
		if atomic.CompareAndSwapUint32(head, w, 0) {
			atomic.StoreUint32(frame, 0)
			delete(t.active, r)
			t.free = append(t.free, r)
			return nil
		}
	}
	return fmt.Errorf("gnttab: end ref %d: peer keeps changing the entry: %w", r, ErrInUse)
}

// InUse reports whether the peer currently has grant r mapped.
func (t *Table) InUse(r Ref) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.active[r]; !ok {
		return false
	}
	head, _ := t.words(r)
	return atomic.LoadUint32(head)&(xen.GTFReading|xen.GTFWriting) != 0
}

// Active is the number of grants given and not yet ended. Teardown
// before a chainload asserts it is zero (xen-pv-abi.md §6.5 item 2).
func (t *Table) Active() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.active)
}

// Leaks lists the active grants in ascending order, for error messages
// when Active is not zero at teardown.
func (t *Table) Leaks() []Ref {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Ref, 0, len(t.active))
	for r := range t.active {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
