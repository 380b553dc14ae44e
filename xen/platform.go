// Package xen holds the Xen PV ABI as Go types (each mirrors the public
// header named in its comment) and the small interfaces through which the
// drivers (xenstore, xenbus, blkfront, netfront, console) reach the
// hypervisor.
//
// Drivers depend only on these interfaces. Under Xen they are implemented by
// package xen/pv on top of the minios shim; in tests by package xen/xentest,
// an in-process simulation of the hypervisor's event channels, grant tables
// and machine memory that the simulated backends use too.
package xen

import "context"

// Port is an event channel port (xen/include/public/event_channel.h
// evtchn_port_t).
type Port uint32

// DomID is a domain id (xen.h domid_t).
type DomID uint16

// DomSelf names the calling domain in hypercalls (xen.h DOMID_SELF).
const DomSelf DomID = 0x7FF0

// MFN is a machine frame number.
type MFN uint64

// PageSize is the x86 page size.
const PageSize = 4096

// Channel is one bound event channel (2-level ABI only: FIFO cannot be
// undone by the next kernel).
type Channel interface {
	Port() Port
	// Notify sends an event to the remote end (EVTCHNOP_send).
	Notify() error
	// Wait blocks until at least one event has arrived since the previous
	// Wait returned, or ctx is done. It never busy-polls.
	Wait(ctx context.Context) error
	// Mask and Unmask set the port's mask bit; events arriving while
	// masked are delivered by the next Wait after Unmask.
	Mask() error
	Unmask() error
	// Close unbinds the port (EVTCHNOP_close).
	Close() error
}

// Events creates event channels.
type Events interface {
	// AllocUnbound allocates a port that remote may bind to
	// (EVTCHNOP_alloc_unbound); frontends publish it in xenstore.
	AllocUnbound(remote DomID) (Channel, error)
	// BindInterdomain binds to a port the remote domain allocated.
	BindInterdomain(remote DomID, remotePort Port) (Channel, error)
}

// Memory hands out pages whose machine frames can be granted to backends.
type Memory interface {
	// AllocPages returns n zeroed, page-aligned pages that stay at fixed
	// machine frames until freed, and those frames.
	AllocPages(n int) (mem []byte, mfns []MFN, err error)
	// FreePages returns pages obtained from AllocPages.
	FreePages(mem []byte) error
}

// GrantFrames grows the grant table (GNTTABOP_setup_table) and maps its
// frames into the caller's address space.
type GrantFrames interface {
	// MaxFrames is the table's size limit (GNTTABOP_query_size).
	MaxFrames() (int, error)
	// Grow makes the table n frames long (never shrinks) and returns all
	// n*4096 bytes of it, mapped writable. Earlier returned slices stay
	// valid and alias the same frames.
	Grow(n int) ([]byte, error)
}

// Platform bundles what a frontend driver needs from the hypervisor.
type Platform interface {
	Events
	Memory
	GrantFrames
}
