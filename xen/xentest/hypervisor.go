// Package xentest simulates, in process, the parts of Xen and dom0 that
// the guest's drivers talk to, so that everything above xen.Platform runs
// in ordinary `go test`:
//
//   - Hypervisor: domains with event channels (2-level semantics: a
//     pending bit per port, masking, the edge kept while masked), machine
//     memory with fake MFNs, and grant tables backed by Go memory; plus
//     what a backend in dom0 does with them (bind to a frontend's port,
//     map or copy a granted page with Xen's checks).
//   - Xenstored: a xenstore daemon with a real tree, minimal permissions,
//     transactions with conflict detection, watches and the ring protocol
//     served over a shared page, as oxenstored/cxenstored do.
//   - Backend: a xenbus backend state machine driven like Linux's
//     blkback/netback, for simulated device backends to build on.
//
// Nothing here runs in the unikernel; it is test infrastructure, itself
// tested, used by the tests of xenstore, xenbus, blkfront, netfront and
// console.
package xentest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/xen"
)

// FirstMFN is the machine frame number of the first page a Hypervisor
// hands out; an arbitrary recognisable value well above zero.
const FirstMFN xen.MFN = 0x10000

// DefaultGrantFrames is the grant table limit of a domain unless
// DomainConfig says otherwise (Mini-OS uses 4).
const DefaultGrantFrames = 4

// maxAllocPages caps one AllocPages call, so a runaway caller fails
// instead of exhausting the test machine.
const maxAllocPages = 1 << 16

// Hypervisor is a simulated Xen: a set of domains sharing one machine
// memory and one event channel fabric. All methods are safe for
// concurrent use.
type Hypervisor struct {
	mu      sync.Mutex
	domains map[xen.DomID]*Domain
	frames  map[xen.MFN]*frame
	nextMFN xen.MFN
	maps    map[grantKey]*pin
}

type frame struct {
	owner xen.DomID
	data  []byte
	maps  int // live grant mappings of this frame
}

type grantKey struct {
	granter xen.DomID
	ref     uint32
}

// pin counts the live mappings of one grant, as Xen's pin counts do.
type pin struct {
	readers, writers int
	mfn              xen.MFN
}

// NewHypervisor returns an empty simulated machine.
func NewHypervisor() *Hypervisor {
	return &Hypervisor{
		domains: map[xen.DomID]*Domain{},
		frames:  map[xen.MFN]*frame{},
		nextMFN: FirstMFN,
		maps:    map[grantKey]*pin{},
	}
}

// DomainConfig configures a new domain.
type DomainConfig struct {
	// GrantFrames is the grant table's MaxFrames (default 4).
	GrantFrames int
	// MaxPages limits AllocPages (0: no limit).
	MaxPages int
}

// Domain is one simulated domain. It implements xen.Platform: the guest
// under test is given its Domain, and simulated backends use dom0's.
type Domain struct {
	h   *Hypervisor
	id  xen.DomID
	cfg DomainConfig

	// Guarded by h.mu.
	ports     map[xen.Port]*Port
	nextPort  xen.Port
	allocs    map[*byte]*allocation
	pages     int
	gnt       []byte // GrantFrames*4096 bytes, allocated up front
	gntFrames int
}

type allocation struct {
	mem  []byte
	mfns []xen.MFN
}

var _ xen.Platform = (*Domain)(nil)

// NewDomain creates domain id. It panics if the id is taken, which is a
// bug in the test that calls it.
func (h *Hypervisor) NewDomain(id xen.DomID, cfg DomainConfig) *Domain {
	if cfg.GrantFrames == 0 {
		cfg.GrantFrames = DefaultGrantFrames
	}
	words := make([]uint64, cfg.GrantFrames*xen.PageSize/8) // 8-byte aligned
	d := &Domain{
		h:        h,
		id:       id,
		cfg:      cfg,
		ports:    map[xen.Port]*Port{},
		nextPort: 1, // port 0 is never valid
		allocs:   map[*byte]*allocation{},
		gnt:      unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.domains[id]; dup {
		panic(fmt.Sprintf("xentest: domain %d created twice", id))
	}
	h.domains[id] = d
	return d
}

// Domain returns the domain with the given id, or nil.
func (h *Hypervisor) Domain(id xen.DomID) *Domain {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.domains[id]
}

// ID is the domain's id.
func (d *Domain) ID() xen.DomID { return d.id }

func (d *Domain) resolve(id xen.DomID) xen.DomID {
	if id == xen.DomSelf {
		return d.id
	}
	return id
}

// ---- Event channels ----

type portState int

const (
	portUnbound portState = iota
	portInterdomain
	portClosed
)

// Port is one end of a simulated event channel; it implements
// xen.Channel. Like Xen's 2-level ABI it has a pending bit and a mask
// bit: Notify on the peer sets pending, Wait consumes it, and an event
// that arrives while masked stays pending until Unmask.
type Port struct {
	d    *Domain
	port xen.Port

	// Guarded by d.h.mu.
	state     portState
	remoteDom xen.DomID // who may bind (unbound) or is bound
	peer      *Port
	pending   bool
	masked    bool
	wake      chan struct{} // capacity 1: a waiter's doorbell

	sent, received atomic.Int64
}

func (d *Domain) newPort(remote xen.DomID) *Port {
	p := &Port{d: d, port: d.nextPort, remoteDom: remote, wake: make(chan struct{}, 1)}
	d.nextPort++
	d.ports[p.port] = p
	return p
}

// AllocUnbound implements xen.Events (EVTCHNOP_alloc_unbound).
func (d *Domain) AllocUnbound(remote xen.DomID) (xen.Channel, error) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	return d.newPort(d.resolve(remote)), nil
}

// BindInterdomain implements xen.Events (EVTCHNOP_bind_interdomain). As
// in Xen, the remote port must be unbound and allocated for this domain.
func (d *Domain) BindInterdomain(remote xen.DomID, remotePort xen.Port) (xen.Channel, error) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	rd := d.h.domains[d.resolve(remote)]
	if rd == nil {
		return nil, fmt.Errorf("xentest: bind to d%d port %d: no such domain: %w", remote, remotePort, xen.ESRCH)
	}
	rp := rd.ports[remotePort]
	if rp == nil || rp.state != portUnbound || rp.remoteDom != d.id {
		return nil, fmt.Errorf("xentest: d%d binds to d%d port %d: not an unbound port offered to it: %w", d.id, rd.id, remotePort, xen.EINVAL)
	}
	p := d.newPort(rd.id)
	p.state, p.peer = portInterdomain, rp
	rp.state, rp.peer = portInterdomain, p
	return p, nil
}

// Connect returns a bound event channel between domains a and b (what
// the toolstack does for the xenstore and console rings).
func (h *Hypervisor) Connect(a, b *Domain) (*Port, *Port, error) {
	ca, err := a.AllocUnbound(b.id)
	if err != nil {
		return nil, nil, err
	}
	cb, err := b.BindInterdomain(a.id, ca.Port())
	if err != nil {
		return nil, nil, err
	}
	return ca.(*Port), cb.(*Port), nil
}

// Port implements xen.Channel.
func (p *Port) Port() xen.Port { return p.port }

// Domain is the domain owning this end.
func (p *Port) Domain() *Domain { return p.d }

// Notify implements xen.Channel (EVTCHNOP_send). On an unbound port the
// event is dropped, as Xen does.
func (p *Port) Notify() error {
	h := p.d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	switch p.state {
	case portClosed:
		return fmt.Errorf("xentest: notify d%d port %d: closed: %w", p.d.id, p.port, xen.EINVAL)
	case portUnbound:
		return nil
	}
	p.sent.Add(1)
	q := p.peer
	q.pending = true
	if !q.masked {
		poke(q.wake)
	}
	return nil
}

// Wait implements xen.Channel: it returns once the pending bit is set
// while unmasked (clearing it), or when ctx is done.
func (p *Port) Wait(ctx context.Context) error {
	h := p.d.h
	for {
		h.mu.Lock()
		if p.state == portClosed {
			h.mu.Unlock()
			return fmt.Errorf("xentest: wait on d%d port %d: closed: %w", p.d.id, p.port, xen.EINVAL)
		}
		if p.pending && !p.masked {
			p.pending = false
			h.mu.Unlock()
			p.received.Add(1)
			return nil
		}
		h.mu.Unlock()
		select {
		case <-p.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Mask implements xen.Channel.
func (p *Port) Mask() error {
	h := p.d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.state == portClosed {
		return xen.EINVAL
	}
	p.masked = true
	return nil
}

// Unmask implements xen.Channel; an event that arrived while masked wakes
// the next Wait.
func (p *Port) Unmask() error {
	h := p.d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.state == portClosed {
		return xen.EINVAL
	}
	p.masked = false
	if p.pending {
		poke(p.wake)
	}
	return nil
}

// Close implements xen.Channel (EVTCHNOP_close): the peer's end becomes
// unbound again, and a Wait on this end returns an error.
func (p *Port) Close() error {
	h := p.d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.state == portClosed {
		return fmt.Errorf("xentest: close d%d port %d: already closed: %w", p.d.id, p.port, xen.EINVAL)
	}
	if q := p.peer; q != nil {
		q.peer, q.state, q.remoteDom = nil, portUnbound, p.d.id
	}
	p.peer, p.state = nil, portClosed
	delete(p.d.ports, p.port)
	poke(p.wake)
	return nil
}

// Sent is how many notifications this end has sent to a bound peer.
func (p *Port) Sent() int64 { return p.sent.Load() }

// Received is how many times Wait has returned an event on this end.
func (p *Port) Received() int64 { return p.received.Load() }

// Pending reports this end's pending bit.
func (p *Port) Pending() bool {
	p.d.h.mu.Lock()
	defer p.d.h.mu.Unlock()
	return p.pending
}

// Bound reports whether this end is connected to a peer.
func (p *Port) Bound() bool {
	p.d.h.mu.Lock()
	defer p.d.h.mu.Unlock()
	return p.state == portInterdomain
}

// OpenPorts is the number of ports the domain has not closed: a guest
// that hands over to a new kernel must have closed all but its console
// and xenstore ports.
func (d *Domain) OpenPorts() int {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	return len(d.ports)
}

// ---- Memory ----

// AllocPages implements xen.Memory: n zeroed pages, each with its own
// fake machine frame, in one contiguous Go slice.
func (d *Domain) AllocPages(n int) ([]byte, []xen.MFN, error) {
	if n < 1 || n > maxAllocPages {
		return nil, nil, fmt.Errorf("xentest: allocate %d pages: %w", n, xen.EINVAL)
	}
	h := d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if d.cfg.MaxPages > 0 && d.pages+n > d.cfg.MaxPages {
		return nil, nil, fmt.Errorf("xentest: d%d: %d pages in use, limit %d: %w", d.id, d.pages, d.cfg.MaxPages, xen.ENOMEM)
	}
	words := make([]uint64, n*xen.PageSize/8) // page contents, 8-byte aligned
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n*xen.PageSize)
	mfns := make([]xen.MFN, n)
	for i := range mfns {
		mfns[i] = h.nextMFN
		h.nextMFN++
		h.frames[mfns[i]] = &frame{owner: d.id, data: mem[i*xen.PageSize : (i+1)*xen.PageSize : (i+1)*xen.PageSize]}
	}
	d.allocs[&mem[0]] = &allocation{mem: mem, mfns: mfns}
	d.pages += n
	return mem, append([]xen.MFN(nil), mfns...), nil
}

// FreePages implements xen.Memory. Freeing a page a backend still has
// mapped through a grant is reported as EBUSY: on real Xen the page
// would stay referenced, and it is always a frontend bug.
func (d *Domain) FreePages(mem []byte) error {
	if len(mem) == 0 {
		return fmt.Errorf("xentest: free empty slice: %w", xen.EINVAL)
	}
	h := d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	a := d.allocs[&mem[0]]
	if a == nil || len(a.mem) != len(mem) {
		return fmt.Errorf("xentest: d%d frees memory it did not allocate: %w", d.id, xen.EINVAL)
	}
	for _, m := range a.mfns {
		if f := h.frames[m]; f.maps > 0 {
			return fmt.Errorf("xentest: d%d frees frame %#x still mapped through a grant: %w", d.id, uint64(m), xen.EBUSY)
		}
	}
	for _, m := range a.mfns {
		delete(h.frames, m)
	}
	delete(d.allocs, &mem[0])
	d.pages -= len(a.mfns)
	return nil
}

// Pages is the number of pages the domain has allocated and not freed.
func (d *Domain) Pages() int {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	return d.pages
}

// Frame returns the 4096 bytes of machine frame mfn, for simulated
// backends and toolstack code (the Xen equivalent is a foreign mapping).
func (h *Hypervisor) Frame(mfn xen.MFN) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.frames[mfn]
	if f == nil {
		return nil, fmt.Errorf("xentest: no machine frame %#x: %w", uint64(mfn), xen.EINVAL)
	}
	return f.data, nil
}

// ---- Grant tables ----

// MaxFrames implements xen.GrantFrames.
func (d *Domain) MaxFrames() (int, error) { return d.cfg.GrantFrames, nil }

// Grow implements xen.GrantFrames (GNTTABOP_setup_table): the first n
// frames of the table, which never shrinks.
func (d *Domain) Grow(n int) ([]byte, error) {
	if n < 1 || n > d.cfg.GrantFrames {
		return nil, fmt.Errorf("xentest: d%d: grant table of %d frames (max %d): %w", d.id, n, d.cfg.GrantFrames, xen.GNTSTGeneralError)
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if n > d.gntFrames {
		d.gntFrames = n
	}
	return d.gnt[: n*xen.PageSize : n*xen.PageSize], nil
}

// GrantFrames is how many frames the table has been grown to.
func (d *Domain) GrantFrames() int {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	return d.gntFrames
}

func (d *Domain) grantHead(ref uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&d.gnt[int(ref)*xen.GrantEntrySize]))
}

func (d *Domain) grantFrame(ref uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&d.gnt[int(ref)*xen.GrantEntrySize+4]))
}

// GrantEntry reads entry ref of the domain's table (flags, domid, frame),
// whether or not the guest has grown the table that far.
func (d *Domain) GrantEntry(ref uint32) (flags uint16, dom xen.DomID, frame uint32, err error) {
	if int(ref) >= d.cfg.GrantFrames*xen.GrantEntriesPerFrame {
		return 0, 0, 0, fmt.Errorf("xentest: ref %d beyond the table: %w", ref, xen.GNTSTBadGntref)
	}
	w := atomic.LoadUint32(d.grantHead(ref))
	return uint16(w), xen.DomID(w >> 16), atomic.LoadUint32(d.grantFrame(ref)), nil
}

// SetGrantEntry writes an entry directly, as the toolstack seeds the
// reserved refs 0 (console) and 1 (xenstore) before the guest starts.
func (d *Domain) SetGrantEntry(ref uint32, flags uint16, dom xen.DomID, frame uint32) error {
	if int(ref) >= d.cfg.GrantFrames*xen.GrantEntriesPerFrame {
		return fmt.Errorf("xentest: ref %d beyond the table: %w", ref, xen.GNTSTBadGntref)
	}
	atomic.StoreUint32(d.grantFrame(ref), frame)
	atomic.StoreUint32(d.grantHead(ref), uint32(dom)<<16|uint32(flags))
	return nil
}

// GrantMapping is a backend's mapping of a granted frame
// (GNTTABOP_map_grant_ref). While it exists the granter's entry carries
// GTF_reading, and GTF_writing unless it is read-only.
type GrantMapping struct {
	h        *Hypervisor
	key      grantKey
	mapper   xen.DomID
	readonly bool
	done     bool
	// Data is the granted frame. A read-only mapping must not be
	// written; Go cannot enforce that.
	Data []byte
}

// MapGrant maps ref of domain granter into domain mapper, performing the
// checks Xen makes: the ref lies in the table the granter set up, the
// entry permits access to mapper, a writable mapping of a read-only grant
// is refused, and the frame belongs to the granter.
func (h *Hypervisor) MapGrant(mapper, granter xen.DomID, ref uint32, readonly bool) (*GrantMapping, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.domains[granter]
	if g == nil {
		return nil, fmt.Errorf("xentest: map d%d ref %d: %w", granter, ref, xen.GNTSTBadDomain)
	}
	if int(ref) >= g.gntFrames*xen.GrantEntriesPerFrame {
		return nil, fmt.Errorf("xentest: map d%d ref %d: beyond the %d frames set up: %w", granter, ref, g.gntFrames, xen.GNTSTBadGntref)
	}
	head := g.grantHead(ref)
	for {
		w := atomic.LoadUint32(head)
		flags, dom := uint16(w), xen.DomID(w>>16)
		if flags&xen.GTFTypeMask != xen.GTFPermitAccess || dom != mapper {
			return nil, fmt.Errorf("xentest: d%d maps d%d ref %d: entry flags %#x grant d%d: %w", mapper, granter, ref, flags, dom, xen.GNTSTGeneralError)
		}
		if !readonly && flags&xen.GTFReadonly != 0 {
			return nil, fmt.Errorf("xentest: d%d write-maps read-only d%d ref %d: %w", mapper, granter, ref, xen.GNTSTGeneralError)
		}
		mfn := xen.MFN(atomic.LoadUint32(g.grantFrame(ref)))
		f := h.frames[mfn]
		if f == nil || f.owner != granter {
			return nil, fmt.Errorf("xentest: d%d ref %d grants frame %#x it does not own: %w", granter, ref, uint64(mfn), xen.GNTSTBadPage)
		}
		nw := w | xen.GTFReading
		if !readonly {
			nw |= xen.GTFWriting
		}
		if !atomic.CompareAndSwapUint32(head, w, nw) {
			continue // the granter changed the entry under us; re-check
		}
		k := grantKey{granter, ref}
		p := h.maps[k]
		if p == nil {
			p = &pin{mfn: mfn}
			h.maps[k] = p
		}
		if readonly {
			p.readers++
		} else {
			p.writers++
		}
		f.maps++
		return &GrantMapping{h: h, key: k, mapper: mapper, readonly: readonly, Data: f.data}, nil
	}
}

// Unmap ends the mapping (GNTTABOP_unmap_grant_ref); when the last
// mapping of the grant goes, the in-use bits are cleared.
func (m *GrantMapping) Unmap() error {
	h := m.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.done {
		return fmt.Errorf("xentest: unmap d%d ref %d twice: %w", m.key.granter, m.key.ref, xen.GNTSTBadHandle)
	}
	m.done = true
	p := h.maps[m.key]
	if m.readonly {
		p.readers--
	} else {
		p.writers--
	}
	if f := h.frames[p.mfn]; f != nil {
		f.maps--
	}
	var clear uint32
	if p.writers == 0 {
		clear |= xen.GTFWriting
	}
	if p.readers+p.writers == 0 {
		clear |= xen.GTFReading
		delete(h.maps, m.key)
	}
	if g := h.domains[m.key.granter]; g != nil && clear != 0 {
		atomic.AndUint32(g.grantHead(m.key.ref), ^clear)
	}
	return nil
}

// Mappings is the number of live grant mappings in the machine; tests
// check it returns to zero once backends disconnect.
func (h *Hypervisor) Mappings() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, p := range h.maps {
		n += p.readers + p.writers
	}
	return n
}

// CopyFromGrant copies len(dst) bytes at offset off of the page granted
// by ref into dst (what GNTTABOP_copy does for a backend reading guest
// memory). The grant is mapped only for the duration of the copy.
func (h *Hypervisor) CopyFromGrant(mapper, granter xen.DomID, ref uint32, off int, dst []byte) error {
	if off < 0 || off > xen.PageSize || len(dst) > xen.PageSize-off {
		return fmt.Errorf("xentest: copy %d bytes at %d: %w", len(dst), off, xen.GNTSTBadCopyArg)
	}
	m, err := h.MapGrant(mapper, granter, ref, true)
	if err != nil {
		return err
	}
	copy(dst, m.Data[off:])
	return m.Unmap()
}

// CopyToGrant copies src into the page granted by ref at offset off; the
// grant must be writable.
func (h *Hypervisor) CopyToGrant(mapper, granter xen.DomID, ref uint32, off int, src []byte) error {
	if off < 0 || off > xen.PageSize || len(src) > xen.PageSize-off {
		return fmt.Errorf("xentest: copy %d bytes at %d: %w", len(src), off, xen.GNTSTBadCopyArg)
	}
	m, err := h.MapGrant(mapper, granter, ref, false)
	if err != nil {
		return err
	}
	copy(m.Data[off:], src)
	return m.Unmap()
}
