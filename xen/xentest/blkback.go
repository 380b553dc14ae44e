package xentest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/sring"
)

// BlkbackConfig describes a simulated block device and its backend.
// The zero value of every feature field means "not offered", which is
// how an old backend looks.
type BlkbackConfig struct {
	Front xen.DomID // the guest; default 1
	Back  xen.DomID // the backend's domain; default 0
	// DevID is the device id and "virtual-device" (default 51712, xvda).
	DevID uint32
	// Image is the disk; its length must be a multiple of 512 and of
	// SectorSize. The backend works on a copy: see Blkback.Image.
	Image []byte

	// SectorSize is "sector-size"; 0 leaves the node out (the frontend
	// must assume 512).
	SectorSize int
	// PhysicalSectorSize is "physical-sector-size"; 0 leaves it out.
	PhysicalSectorSize int
	// MaxRingPageOrder is "max-ring-page-order" (0..4); 0 leaves it out.
	MaxRingPageOrder int
	// MaxIndirectSegments is "feature-max-indirect-segments"; 0 leaves
	// it out (no BLKIF_OP_INDIRECT).
	MaxIndirectSegments int
	// Persistent offers "feature-persistent": if the frontend agrees,
	// data grants stay mapped until the frontend disconnects.
	Persistent bool
	// MaxPersistent caps the persistently mapped grants (Linux
	// blkback's max_persistent_grants, 1056 by default here too);
	// beyond it grants are copied through as without the feature.
	MaxPersistent int
	// ReadOnly sets mode "r" and VDISK_READONLY, and writes are
	// answered BLKIF_RSP_ERROR (see also SetReadOnly).
	ReadOnly bool
	// FlushCache offers "feature-flush-cache" and Barrier
	// "feature-barrier": BLKIF_OP_FLUSH_DISKCACHE and
	// BLKIF_OP_WRITE_BARRIER make the writes before them durable (see
	// Durable). Not offered, they are answered BLKIF_RSP_EOPNOTSUPP.
	FlushCache bool
	Barrier    bool
	// CDROM sets device-type "cdrom" and VDISK_CDROM.
	CDROM bool
	// Params is the toolstack's "params" node (the image path).
	Params string
	// Offline: see BackendConfig.Offline.
	Offline bool

	// Fault injection. Each hook is called from the backend's goroutine
	// with the request as decoded, under the backend's lock: hooks must
	// not call the Blkback's methods.

	// Status, if set and returning non-zero, answers the request with
	// that status instead of serving it: a write so answered does not
	// reach the image.
	Status func(r BlkRequest) int16
	// Drop, if set and returning true, consumes the request and never
	// answers it.
	Drop func(r BlkRequest) bool
	// Mangle, if set, may rewrite any field of a response before it is
	// written to the ring (bogus ids, wrong operations, odd statuses).
	Mangle func(r BlkRequest, rsp *blkif.Response)
	// Reorder answers each batch of requests in reverse order.
	Reorder bool
}

// BlkRequest is a request as the backend decoded it.
type BlkRequest struct {
	ID         uint64
	Op         uint8 // as on the ring: OpRead, OpWrite, OpIndirect…
	IndirectOp uint8 // for OpIndirect
	Sector     uint64
	Handle     uint16
	Segments   []blkif.Segment
}

// BlkbackStats counts what the backend did.
type BlkbackStats struct {
	Requests     int   // requests consumed
	Indirect     int   // of which BLKIF_OP_INDIRECT
	Segments     int   // data segments served
	Bytes        int64 // data bytes served, read or written
	Writes       int   // write requests served
	Written      int64 // bytes written to the image
	Flushes      int   // flush and barrier requests served
	Unflushed    int   // writes served since the last flush
	Errors       int   // requests answered with an error status
	MaxInFlight  int   // most requests consumed and not yet answered at once
	Notifies     int   // event channel notifications sent
	Persistent   int   // grants currently mapped persistently
	Connects     int
	Disconnects  int
	PersistentOn bool // the last connection negotiated persistent grants
	RingPages    int  // pages of the last connection's ring
}

// Blkback is a simulated Linux blkback serving Image to one guest
// through the xenbus handshake of Backend, the simulated grant tables
// and event channels. It checks what the frontend sends the way blkback
// does and records every violation (ProtocolErrors), so that tests can
// assert a frontend never made one.
type Blkback struct {
	h   *Hypervisor
	cfg BlkbackConfig
	be  *Backend

	mu       sync.Mutex
	image    []byte // what reads see
	durable  []byte // what survives a crash: image at the last flush; nil until the first write
	readOnly bool   // writes are refused
	sess     *blkSession
	stats    BlkbackStats
	protoErr []error
	held     bool
	queue    []BlkRequest  // consumed while held
	grew     chan struct{} // closed when queue grows
}

// blkSession is one connection: the mapped ring, the bound port and the
// persistent mappings.
type blkSession struct {
	ring       *sring.Back
	ringMem    []byte
	ringMaps   []*GrantMapping
	port       xen.Channel
	persistent bool
	pmaps      map[uint32]*GrantMapping
	inFlight   int
	cancel     context.CancelFunc
	done       chan struct{}
	dead       bool
}

// NewBlkback creates the device's xenstore nodes (as libxl does) and
// starts its backend, which waits in InitWait for the guest's frontend.
func NewBlkback(h *Hypervisor, x *Xenstored, cfg BlkbackConfig) (*Blkback, error) {
	if cfg.Front == 0 {
		cfg.Front = 1
	}
	if cfg.DevID == 0 {
		cfg.DevID = 51712
	}
	if cfg.MaxPersistent == 0 {
		cfg.MaxPersistent = 1056
	}
	ss := cfg.SectorSize
	if ss == 0 {
		ss = blkif.SectorSize
	}
	if ss < blkif.SectorSize || ss&(ss-1) != 0 {
		return nil, fmt.Errorf("xentest: blkback: sector size %d", cfg.SectorSize)
	}
	if len(cfg.Image)%ss != 0 {
		return nil, fmt.Errorf("xentest: blkback: image of %d bytes is not a multiple of the sector size %d", len(cfg.Image), ss)
	}
	if cfg.MaxRingPageOrder < 0 || cfg.MaxRingPageOrder > sring.MaxPageOrder {
		return nil, fmt.Errorf("xentest: blkback: max-ring-page-order %d", cfg.MaxRingPageOrder)
	}
	if h.Domain(cfg.Back) == nil {
		return nil, fmt.Errorf("xentest: blkback: no backend domain %d", cfg.Back)
	}
	bb := &Blkback{h: h, cfg: cfg, grew: make(chan struct{}), image: slices.Clone(cfg.Image), readOnly: cfg.ReadOnly}
	if bb.image == nil {
		bb.image = []byte{}
	}
	devType, mode := "disk", "w"
	if cfg.CDROM {
		devType = "cdrom"
	}
	if cfg.ReadOnly {
		mode = "r"
	}
	bkeys := map[string]string{"mode": mode, "type": "phy", "device-type": devType}
	if cfg.Params != "" {
		bkeys["params"] = cfg.Params
	}
	if cfg.MaxRingPageOrder > 0 {
		bkeys["max-ring-page-order"] = strconv.Itoa(cfg.MaxRingPageOrder)
	}
	be, err := NewBackend(x, BackendConfig{
		Type:  "vbd",
		DevID: cfg.DevID,
		Front: cfg.Front,
		Back:  cfg.Back,
		FrontendKeys: map[string]string{
			"virtual-device": strconv.FormatUint(uint64(cfg.DevID), 10),
			"device-type":    devType,
		},
		BackendKeys: bkeys,
		Offline:     cfg.Offline,
		Connect:     bb.connect,
		Disconnect:  func(*Backend) { bb.disconnect() },
	})
	if err != nil {
		return nil, err
	}
	bb.be = be
	return bb, nil
}

// Backend is the xenbus side of the device.
func (bb *Blkback) Backend() *Backend { return bb.be }

// Close stops the backend: it disconnects (unmapping everything) and
// stops reacting to the frontend. The xenstore nodes stay.
func (bb *Blkback) Close() {
	bb.be.Close()
	bb.disconnect()
}

// Image returns a copy of the disk as the backend now has it, writes
// included.
func (bb *Blkback) Image() []byte {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	return slices.Clone(bb.image)
}

// Durable returns a copy of the disk as it would survive a crash of
// the host: the writes served before the last flush or barrier, none
// after (the simulated disk has a volatile write cache).
func (bb *Blkback) Durable() []byte {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	if bb.durable == nil {
		return slices.Clone(bb.image)
	}
	return slices.Clone(bb.durable)
}

// SetReadOnly makes the backend refuse (or accept) writes from now on
// without changing the nodes it published, as when the image turns
// read-only underneath blkback: the frontend cannot know in advance.
func (bb *Blkback) SetReadOnly(ro bool) {
	bb.mu.Lock()
	bb.readOnly = ro
	bb.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (bb *Blkback) Stats() BlkbackStats {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	s := bb.stats
	if bb.sess != nil {
		s.Persistent = len(bb.sess.pmaps)
	}
	return s
}

// ProtocolErrors lists what the frontend did wrong, in order: malformed
// requests, bad grants, ring overflows, bad xenstore nodes.
func (bb *Blkback) ProtocolErrors() []error {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	return slices.Clone(bb.protoErr)
}

func (bb *Blkback) violation(format string, args ...any) error {
	err := fmt.Errorf("xentest: blkback d%d/%d: "+format, append([]any{bb.cfg.Front, bb.cfg.DevID}, args...)...)
	bb.protoErr = append(bb.protoErr, err)
	return err
}

// Hold makes the backend consume requests without answering them until
// Release: requests pile up in flight, as with a slow disk.
func (bb *Blkback) Hold() {
	bb.mu.Lock()
	bb.held = true
	bb.mu.Unlock()
}

// Release answers every held request (in reverse order if Reorder) and
// returns to answering at once.
func (bb *Blkback) Release() {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	bb.held = false
	q := bb.queue
	bb.queue = nil
	if s := bb.sess; s != nil && !s.dead {
		bb.answerLocked(s, q)
	}
}

// Held is the number of requests held and unanswered.
func (bb *Blkback) Held() int {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	return len(bb.queue)
}

// WaitHeld waits until at least n requests are held, or ctx ends.
func (bb *Blkback) WaitHeld(ctx context.Context, n int) error {
	for {
		bb.mu.Lock()
		held, grew := len(bb.queue), bb.grew
		bb.mu.Unlock()
		if held >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("xentest: blkback: %d requests held, waiting for %d: %w", held, n, ctx.Err())
		case <-grew:
		}
	}
}

// InjectResponse publishes rsp in the next response slot whether or not
// a request is waiting for it, and notifies the frontend: the way to
// test a frontend against a backend that answers too often. The ring is
// unusable afterwards.
func (bb *Blkback) InjectResponse(rsp blkif.Response) error {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	s := bb.sess
	if s == nil || s.dead {
		return ErrBlkbackNotConnected
	}
	h := s.ring.Shared()
	prod := h.RspProd()
	n := uint32(s.ring.Size())
	off := sring.HeaderSize + int(prod&(n-1))*blkif.SlotSize
	rsp.Put(s.ringMem[off : off+blkif.SlotSize])
	h.SetRspProd(prod + 1)
	bb.stats.Notifies++
	return s.port.Notify()
}

// Disconnect makes the backend give up on the device while the
// frontend is connected, as when the toolstack detaches it: the ring
// and grants are unmapped, unanswered requests are dropped, and the
// backend switches to Closing.
func (bb *Blkback) Disconnect() error {
	bb.disconnect()
	return bb.be.SetState(xen.StateClosing)
}

// connect is the Backend's Connect hook: blkback's connect_ring and
// connect.
func (bb *Blkback) connect(be *Backend) error {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	if bb.sess != nil {
		return bb.violation("connect while connected")
	}
	if p, err := be.ReadFrontend("protocol"); err == nil && p != blkif.Protocol {
		return bb.violation("unsupported protocol %q", p)
	}
	order := 0
	if v, err := be.ReadFrontend("ring-page-order"); err == nil {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > bb.cfg.MaxRingPageOrder {
			return bb.violation("ring-page-order %q (max %d)", v, bb.cfg.MaxRingPageOrder)
		}
		order = n
	}
	var refs []uint32
	if order == 0 {
		if _, err := be.ReadFrontend("ring-page-order"); err == nil {
			// Linux accepts order 0 with ring-ref0 as well.
			if r, err := be.ReadFrontendUint("ring-ref0"); err == nil {
				refs = append(refs, uint32(r))
			}
		}
		if refs == nil {
			r, err := be.ReadFrontendUint("ring-ref")
			if err != nil {
				return bb.violation("ring-ref: %v", err)
			}
			refs = append(refs, uint32(r))
		}
	} else {
		for i := 0; i < 1<<order; i++ {
			r, err := be.ReadFrontendUint("ring-ref" + strconv.Itoa(i))
			if err != nil {
				return bb.violation("ring-ref%d: %v", i, err)
			}
			refs = append(refs, uint32(r))
		}
	}
	evtchn, err := be.ReadFrontendUint("event-channel")
	if err != nil {
		return bb.violation("event-channel: %v", err)
	}
	persistent := false
	if v, err := be.ReadFrontend("feature-persistent"); err == nil {
		persistent = v == "1" && bb.cfg.Persistent
	}

	s := &blkSession{persistent: persistent, pmaps: map[uint32]*GrantMapping{}, done: make(chan struct{})}
	fail := func(err error) error {
		for _, m := range s.ringMaps {
			m.Unmap()
		}
		if s.port != nil {
			s.port.Close()
		}
		return err
	}
	for _, r := range refs {
		m, err := bb.h.MapGrant(bb.cfg.Back, bb.cfg.Front, r, false)
		if err != nil {
			return fail(bb.violation("map ring ref %d: %v", r, err))
		}
		s.ringMaps = append(s.ringMaps, m)
	}
	// Linux vmaps the ring pages contiguously; in the simulation they
	// are contiguous when the frontend allocated them together.
	base := unsafe.Pointer(&s.ringMaps[0].Data[0])
	for i, m := range s.ringMaps {
		if unsafe.Pointer(&m.Data[0]) != unsafe.Add(base, i*xen.PageSize) {
			return fail(bb.violation("ring pages not allocated together (simulation limit)"))
		}
	}
	s.ringMem = unsafe.Slice((*byte)(base), len(refs)*xen.PageSize)
	if s.ring, err = sring.NewBack(s.ringMem, blkif.SlotSize); err != nil {
		return fail(bb.violation("ring: %v", err))
	}
	if n, err := s.ring.Unconsumed(); err != nil || n != 0 {
		return fail(bb.violation("ring not empty at connect: %d requests, %v", n, err))
	}
	dom := bb.h.Domain(bb.cfg.Back)
	if s.port, err = dom.BindInterdomain(bb.cfg.Front, xen.Port(evtchn)); err != nil {
		return fail(bb.violation("bind event channel %d: %v", evtchn, err))
	}

	// Device properties, written in blkback's connect().
	info := 0
	if bb.cfg.CDROM {
		info |= blkif.VDiskCDROM
	}
	if bb.cfg.ReadOnly {
		info |= blkif.VDiskReadOnly
	}
	props := [][2]string{
		{"sectors", strconv.Itoa(len(bb.image) / blkif.SectorSize)},
		{"info", strconv.Itoa(info)},
		{"feature-persistent", boolNode(bb.cfg.Persistent)},
	}
	if bb.cfg.SectorSize != 0 {
		props = append(props, [2]string{"sector-size", strconv.Itoa(bb.cfg.SectorSize)})
	}
	if bb.cfg.PhysicalSectorSize != 0 {
		props = append(props, [2]string{"physical-sector-size", strconv.Itoa(bb.cfg.PhysicalSectorSize)})
	}
	if bb.cfg.MaxIndirectSegments != 0 {
		props = append(props, [2]string{"feature-max-indirect-segments", strconv.Itoa(bb.cfg.MaxIndirectSegments)})
	}
	if bb.cfg.FlushCache {
		props = append(props, [2]string{"feature-flush-cache", "1"})
	}
	if bb.cfg.Barrier {
		props = append(props, [2]string{"feature-barrier", "1"})
	}
	for _, kv := range props {
		if err := be.x.Write(be.Dir()+"/"+kv[0], kv[1]); err != nil {
			return fail(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	bb.sess = s
	bb.stats.Connects++
	bb.stats.PersistentOn = persistent
	bb.stats.RingPages = len(refs)
	go bb.serve(ctx, s)
	return nil
}

func boolNode(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// disconnect is blkback's xen_blkif_disconnect: stop serving, drop what
// was not answered, unmap everything, unbind.
func (bb *Blkback) disconnect() {
	bb.mu.Lock()
	s := bb.sess
	bb.sess = nil
	bb.queue = nil
	bb.mu.Unlock()
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
	bb.mu.Lock()
	defer bb.mu.Unlock()
	s.dead = true
	for _, m := range s.pmaps {
		m.Unmap()
	}
	s.pmaps = nil
	for _, m := range s.ringMaps {
		m.Unmap()
	}
	s.port.Close()
	bb.stats.Disconnects++
}

// serve is the backend's thread: consume, answer, sleep on the event
// channel.
func (bb *Blkback) serve(ctx context.Context, s *blkSession) {
	defer close(s.done)
	for {
		bb.mu.Lock()
		more, err := bb.drainLocked(s)
		bb.mu.Unlock()
		if err != nil {
			return // the ring is corrupt: blkback stops too
		}
		if more {
			continue
		}
		if err := s.port.Wait(ctx); err != nil {
			return
		}
	}
}

// drainLocked consumes every waiting request and answers those it may.
// It reports whether more arrived after the final check.
func (bb *Blkback) drainLocked(s *blkSession) (bool, error) {
	slot := make([]byte, blkif.SlotSize)
	var batch []BlkRequest
	for {
		ok, err := s.ring.NextRequest(slot)
		if err != nil {
			bb.violation("request ring: %v", err)
			return false, err
		}
		if !ok {
			break
		}
		bb.stats.Requests++
		s.inFlight++
		bb.stats.MaxInFlight = max(bb.stats.MaxInFlight, s.inFlight)
		r := bb.decode(slot)
		if bb.cfg.Drop != nil && bb.cfg.Drop(r) {
			continue
		}
		batch = append(batch, r)
	}
	if bb.held {
		bb.queue = append(bb.queue, batch...)
		if len(batch) > 0 {
			close(bb.grew)
			bb.grew = make(chan struct{})
		}
	} else {
		bb.answerLocked(s, batch)
	}
	more, err := s.ring.FinalCheck()
	if err != nil {
		bb.violation("request ring: %v", err)
	}
	return more, err
}

// decode turns a slot into a BlkRequest; problems are found by serve.
func (bb *Blkback) decode(slot []byte) BlkRequest {
	op, _ := blkif.Op(slot)
	if op == blkif.OpIndirect {
		ir, _ := blkif.ParseIndirectRequest(slot)
		r := BlkRequest{ID: ir.ID, Op: op, IndirectOp: ir.IndirectOp, Sector: ir.Sector, Handle: ir.Handle}
		n := int(ir.NrSegments)
		if n < 1 || n > bb.cfg.MaxIndirectSegments || n > blkif.MaxIndirectSegments {
			r.Segments = nil // invalid: answered with an error
			return r
		}
		buf := make([]byte, blkif.PageSize)
		for p := 0; p < blkif.IndirectPages(n); p++ {
			k := min(n-p*blkif.SegmentsPerIndirectPage, blkif.SegmentsPerIndirectPage)
			if err := bb.h.CopyFromGrant(bb.cfg.Back, bb.cfg.Front, ir.Grefs[p], 0, buf[:k*blkif.SegmentSize]); err != nil {
				bb.violation("indirect page %d (ref %d): %v", p, ir.Grefs[p], err)
				return BlkRequest{ID: ir.ID, Op: op, IndirectOp: ir.IndirectOp, Sector: ir.Sector}
			}
			for i := 0; i < k; i++ {
				seg, _ := blkif.ParseSegment(buf[i*blkif.SegmentSize:])
				r.Segments = append(r.Segments, seg)
			}
		}
		return r
	}
	rq, _ := blkif.ParseRequest(slot)
	r := BlkRequest{ID: rq.ID, Op: op, Sector: rq.Sector, Handle: rq.Handle}
	if n := int(rq.NrSegments); n >= 1 && n <= blkif.MaxSegments {
		r.Segments = slices.Clone(rq.Seg[:n])
	}
	return r
}

// answerLocked serves and answers a batch, then pushes and notifies.
func (bb *Blkback) answerLocked(s *blkSession, batch []BlkRequest) {
	if bb.cfg.Reorder {
		slices.Reverse(batch)
	}
	for _, r := range batch {
		var status int16
		if bb.cfg.Status != nil {
			status = bb.cfg.Status(r)
		}
		if status == 0 {
			status = bb.execute(s, r)
		}
		if status != blkif.RspOkay {
			bb.stats.Errors++
		}
		op := r.Op
		if op == blkif.OpIndirect {
			op = r.IndirectOp // as Linux blkback answers
		}
		rsp := blkif.Response{ID: r.ID, Op: op, Status: status}
		if bb.cfg.Mangle != nil {
			bb.cfg.Mangle(r, &rsp)
		}
		slot, err := s.ring.NextResponse()
		if err != nil {
			bb.violation("response ring: %v", err)
			return
		}
		rsp.Put(slot)
		s.inFlight--
	}
	if s.ring.Push() {
		bb.stats.Notifies++
		s.port.Notify()
	}
}

// execute checks a request as blkback's dispatch_rw_block_io does and
// serves it: a read copies the image into the frontend's pages, a
// write the other way, a flush or barrier (with data, after writing
// it) makes the image durable.
func (bb *Blkback) execute(s *blkSession, r BlkRequest) int16 {
	op := r.Op
	if op == blkif.OpIndirect {
		if bb.cfg.MaxIndirectSegments == 0 {
			bb.violation("indirect request %#x but indirect segments not offered", r.ID)
			return blkif.RspError
		}
		op = r.IndirectOp
		if op != blkif.OpRead && op != blkif.OpWrite {
			bb.violation("indirect request %#x: operation %d", r.ID, op)
			return blkif.RspError
		}
	}
	flush := false
	switch op {
	case blkif.OpRead, blkif.OpWrite:
	case blkif.OpFlushDiskcache, blkif.OpWriteBarrier:
		if op == blkif.OpFlushDiskcache && !bb.cfg.FlushCache || op == blkif.OpWriteBarrier && !bb.cfg.Barrier {
			return blkif.RspEOPNOTSUPP
		}
		flush = true
	case blkif.OpDiscard:
		return blkif.RspEOPNOTSUPP
	default:
		bb.violation("request %#x: unknown operation %d", r.ID, op)
		return blkif.RspError
	}
	// Linux blkback refuses every non-read of a read-only vbd.
	if op != blkif.OpRead && bb.readOnly {
		return blkif.RspError
	}
	if r.Handle != uint16(bb.cfg.DevID) {
		// Linux blkback ignores the handle (the low 16 bits of the
		// device id, as Linux blkfront sends it); we check it.
		bb.violation("request %#x: handle %d, device is %d", r.ID, r.Handle, uint16(bb.cfg.DevID))
	}
	if flush && len(r.Segments) == 0 {
		bb.flushLocked()
		return blkif.RspOkay
	}
	if len(r.Segments) == 0 {
		bb.violation("request %#x: bad number of segments", r.ID)
		return blkif.RspError
	}
	ss := bb.cfg.SectorSize
	if ss == 0 {
		ss = blkif.SectorSize
	}
	total := 0
	for i, seg := range r.Segments {
		if !seg.Valid() {
			bb.violation("request %#x segment %d: sectors %d..%d", r.ID, i, seg.FirstSect, seg.LastSect)
			return blkif.RspError
		}
		if (int(seg.FirstSect)*blkif.SectorSize)%ss != 0 || (seg.Sectors()*blkif.SectorSize)%ss != 0 {
			bb.violation("request %#x segment %d: sectors %d..%d not aligned to %d bytes", r.ID, i, seg.FirstSect, seg.LastSect, ss)
			return blkif.RspError
		}
		total += seg.Sectors()
	}
	if (r.Sector*blkif.SectorSize)%uint64(ss) != 0 {
		bb.violation("request %#x: sector %d not aligned to %d bytes", r.ID, r.Sector, ss)
		return blkif.RspError
	}
	nsect := uint64(len(bb.image) / blkif.SectorSize)
	if r.Sector >= nsect || uint64(total) > nsect-r.Sector {
		bb.violation("request %#x: sectors %d+%d beyond the disk (%d)", r.ID, r.Sector, total, nsect)
		return blkif.RspError
	}
	write := op != blkif.OpRead
	if write && bb.durable == nil {
		bb.durable = slices.Clone(bb.image)
	}
	pos := int(r.Sector) * blkif.SectorSize
	for i, seg := range r.Segments {
		n := seg.Sectors() * blkif.SectorSize
		off := int(seg.FirstSect) * blkif.SectorSize
		var err error
		if write {
			err = bb.copyIn(s, seg.Gref, off, bb.image[pos:pos+n])
		} else {
			err = bb.copyOut(s, seg.Gref, off, bb.image[pos:pos+n])
		}
		if err != nil {
			bb.violation("request %#x segment %d (ref %d): %v", r.ID, i, seg.Gref, err)
			return blkif.RspError
		}
		pos += n
		bb.stats.Segments++
		bb.stats.Bytes += int64(n)
		if write {
			bb.stats.Written += int64(n)
		}
	}
	if r.Op == blkif.OpIndirect {
		bb.stats.Indirect++
	}
	if write {
		bb.stats.Writes++
		bb.stats.Unflushed++
	}
	if flush {
		bb.flushLocked()
	}
	return blkif.RspOkay
}

// flushLocked makes every write served so far durable.
func (bb *Blkback) flushLocked() {
	if bb.durable != nil {
		copy(bb.durable, bb.image)
	}
	bb.stats.Flushes++
	bb.stats.Unflushed = 0
}

// mapping returns the persistent mapping of ref, made on first use and
// kept until disconnect, or nil when grants are not persistent or the
// cap is reached (the caller then copies).
func (bb *Blkback) mapping(s *blkSession, ref uint32) (*GrantMapping, error) {
	if !s.persistent {
		return nil, nil
	}
	m := s.pmaps[ref]
	if m == nil && len(s.pmaps) < bb.cfg.MaxPersistent {
		// Writable even for writes, as Linux maps persistent grants:
		// they are reused for reads.
		var err error
		if m, err = bb.h.MapGrant(bb.cfg.Back, bb.cfg.Front, ref, false); err != nil {
			return nil, err
		}
		s.pmaps[ref] = m
	}
	return m, nil
}

// copyOut writes data into the frontend's page at off: through a
// persistent mapping when negotiated, otherwise with a grant copy.
func (bb *Blkback) copyOut(s *blkSession, ref uint32, off int, data []byte) error {
	m, err := bb.mapping(s, ref)
	if err != nil {
		return err
	}
	if m != nil {
		copy(m.Data[off:], data)
		return nil
	}
	return bb.h.CopyToGrant(bb.cfg.Back, bb.cfg.Front, ref, off, data)
}

// copyIn reads the frontend's page at off into dst: through a
// persistent mapping when negotiated, otherwise with a grant copy,
// which a read-only grant allows.
func (bb *Blkback) copyIn(s *blkSession, ref uint32, off int, dst []byte) error {
	m, err := bb.mapping(s, ref)
	if err != nil {
		return err
	}
	if m != nil {
		copy(dst, m.Data[off:])
		return nil
	}
	return bb.h.CopyFromGrant(bb.cfg.Back, bb.cfg.Front, ref, off, dst)
}

// ErrBlkbackNotConnected is returned by operations that need a
// connected frontend.
var ErrBlkbackNotConnected = errors.New("xentest: blkback not connected")
