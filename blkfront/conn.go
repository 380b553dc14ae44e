package blkfront

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"sync"

	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
	"github.com/gopvgrub/gopvgrub/xen/sring"
	"github.com/gopvgrub/gopvgrub/xen/xenbus"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
)

// Limits on backend nodes, so that absurd values are refused rather
// than followed.
const (
	maxSectors      = 1 << 54 // bytes fit an int64
	maxSectorSize   = blkif.PageSize
	maxBackendSegs  = 1 << 20
	maxBackendOrder = 32
)

// conn is one connection of a Device to its backend: everything from
// the xenbus handshake to the teardown.
type conn struct {
	d    *Device
	name string
	fe   *xenbus.Frontend
	info Info

	ch       xen.Channel
	ringMem  []byte
	ringRefs []gnttab.Ref
	ss       int
	size     int64
	maxSegs  int

	// life is held shared by every ReadAt, WriteAt and Sync and
	// exclusively by close once it has woken them all: the teardown
	// never frees a page a caller is copying from or into.
	life   sync.RWMutex
	closed bool // under life

	mu      sync.Mutex
	eng     *engine
	pool    *pool
	closing bool
	changed chan struct{}           // closed and replaced when requests finish or state changes
	rmw     map[int64]chan struct{} // sectors being read-modify-written, closed when done
	// gen counts write submissions and completions: data read while it
	// stayed the same cannot predate a write (readahead.go).
	gen   uint64
	ra    readahead
	raMax int64       // most bytes read ahead; 0: none
	cache *blockCache // nil: no cache

	stopReader context.CancelFunc
	readerDone chan struct{}
	monitor    *xenbus.Monitor
}

// connect performs the frontend side of the blkif handshake.
func connect(ctx context.Context, d *Device) (_ *conn, err error) {
	fe, err := xenbus.Open(ctx, d.cfg.Store, d.dev)
	if err != nil {
		return nil, fmt.Errorf("blkfront: %s: %w", d.dev.Dir, err)
	}
	c := &conn{d: d, name: DeviceName(d.dev.ID), fe: fe, changed: make(chan struct{}), rmw: map[int64]chan struct{}{}}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.DrainTimeout)
			defer cancel()
			if terr := c.teardown(cctx); terr != nil {
				err = errors.Join(err, terr)
			}
		}
	}()
	if err := c.readIdentity(ctx); err != nil {
		return nil, err
	}
	if err := fe.WaitReady(ctx); err != nil {
		return nil, c.errorf("%w", err)
	}
	order, err := c.ringOrder(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := c.setupRing(order)
	if err != nil {
		return nil, err
	}
	if err := fe.Publish(ctx, xen.StateInitialised, keys...); err != nil {
		return nil, c.errorf("%w", err)
	}
	if err := fe.WaitConnected(ctx); err != nil {
		return nil, c.errorf("%w", err)
	}
	if err := c.readProperties(ctx); err != nil {
		return nil, err
	}
	c.start(ctx)
	return c, nil
}

func (c *conn) errorf(format string, args ...any) error {
	return fmt.Errorf("blkfront: %s: "+format, append([]any{c.name}, args...)...)
}

// optional reads a node, reporting absence as ok == false.
func optional(v string, err error) (string, bool, error) {
	if errors.Is(err, xenstore.ErrNotExist) {
		return "", false, nil
	}
	return v, err == nil, err
}

// optionalUint reads an optional decimal node no larger than max.
func (c *conn) optionalUint(ctx context.Context, key string, max uint64) (uint64, bool, error) {
	n, err := c.fe.ReadBackendUint(ctx, key, max)
	if errors.Is(err, xenstore.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, c.errorf("backend %s: %w", key, err)
	}
	return n, true, nil
}

// readIdentity reads our own directory: virtual-device and device-type.
func (c *conn) readIdentity(ctx context.Context) error {
	c.info.VirtualDevice = c.d.dev.ID
	for _, key := range []string{"virtual-device", "virtual-device-ext"} {
		v, ok, err := optional(c.fe.ReadFrontend(ctx, key))
		if err != nil {
			return c.errorf("%s: %w", key, err)
		}
		if !ok {
			continue
		}
		if n, perr := strconv.ParseUint(v, 10, 32); perr == nil {
			c.info.VirtualDevice = uint32(n)
			break
		}
	}
	c.name = DeviceName(c.info.VirtualDevice)
	dt, _, err := optional(c.fe.ReadFrontend(ctx, "device-type"))
	if err != nil {
		return c.errorf("device-type: %w", err)
	}
	c.info.DeviceType = dt
	c.info.Backend, c.info.BackendID = c.fe.Backend, c.fe.BackendID
	return nil
}

// ringOrder picks the ring size: the backend's maximum
// (max-ring-page-order, or the deprecated max-ring-pages), capped by
// the options.
func (c *conn) ringOrder(ctx context.Context) (int, error) {
	order, ok, err := c.optionalUint(ctx, "max-ring-page-order", maxBackendOrder)
	if err != nil {
		return 0, err
	}
	if !ok {
		pages, ok, err := c.optionalUint(ctx, "max-ring-pages", 1<<maxBackendOrder)
		if err != nil {
			return 0, err
		}
		if ok && pages > 0 {
			order = uint64(bits.Len64(pages) - 1)
		}
	}
	return min(int(order), c.d.opts.MaxRingOrder, sring.MaxPageOrder), nil
}

// setupRing allocates and grants the ring, allocates the event channel
// and returns the keys to publish.
func (c *conn) setupRing(order int) ([]xenbus.KV, error) {
	cfg := c.d.cfg
	mem, mfns, err := cfg.Platform.AllocPages(1 << order)
	if err != nil {
		return nil, c.errorf("allocate ring: %w", err)
	}
	c.ringMem = mem
	ring, err := sring.NewFront(mem, blkif.SlotSize)
	if err != nil {
		return nil, c.errorf("ring: %w", err)
	}
	for _, m := range mfns {
		ref, err := cfg.Grants.Grant(c.fe.BackendID, m, false)
		if err != nil {
			return nil, c.errorf("grant ring: %w", err)
		}
		c.ringRefs = append(c.ringRefs, ref)
	}
	if c.ch, err = cfg.Platform.AllocUnbound(c.fe.BackendID); err != nil {
		return nil, c.errorf("event channel: %w", err)
	}
	c.eng = newEngine(ring, uint16(c.d.dev.ID))
	c.info.RingPages, c.info.RingSlots = len(mfns), ring.Size()

	var keys []xenbus.KV
	if order == 0 {
		keys = append(keys, xenbus.KV{Key: "ring-ref", Value: strconv.FormatUint(uint64(c.ringRefs[0]), 10)})
	} else {
		keys = append(keys, xenbus.KV{Key: "ring-page-order", Value: strconv.Itoa(order)})
		for i, r := range c.ringRefs {
			keys = append(keys, xenbus.KV{Key: "ring-ref" + strconv.Itoa(i), Value: strconv.FormatUint(uint64(r), 10)})
		}
	}
	keys = append(keys,
		xenbus.KV{Key: "event-channel", Value: strconv.FormatUint(uint64(c.ch.Port()), 10)},
		xenbus.KV{Key: "protocol", Value: blkif.Protocol},
	)
	if !c.d.opts.NoPersistent {
		keys = append(keys, xenbus.KV{Key: "feature-persistent", Value: "1"})
	}
	return keys, nil
}

// readProperties reads what the backend published for the connection
// and sizes requests and the bounce-page pool.
func (c *conn) readProperties(ctx context.Context) error {
	i := &c.info
	sectors, err := c.fe.ReadBackendUint(ctx, "sectors", maxSectors)
	if err != nil {
		return c.errorf("backend sectors: %w", err)
	}
	i.Sectors = sectors
	vdisk, _, err := c.optionalUint(ctx, "info", 1<<32-1)
	if err != nil {
		return err
	}
	i.VDisk = uint32(vdisk)
	ss, ok, err := c.optionalUint(ctx, "sector-size", 1<<32-1)
	if err != nil {
		return err
	}
	if !ok {
		ss = blkif.SectorSize // what backends without the node mean
	}
	if ss < blkif.SectorSize || ss&(ss-1) != 0 || ss > maxSectorSize {
		return c.errorf("%w: sector-size %d", ErrUnsupported, ss)
	}
	i.SectorSize = int(ss)
	// A physical sector size that is not a multiple of the logical
	// one is nonsense; it is only informative, so ignore it.
	i.PhysicalSectorSize = i.SectorSize
	pss, ok, err := c.optionalUint(ctx, "physical-sector-size", 1<<32-1)
	if err != nil {
		return err
	}
	if ok && pss >= ss && pss%ss == 0 {
		i.PhysicalSectorSize = int(pss)
	}
	fp, _, err := optional(c.fe.ReadBackend(ctx, "feature-persistent"))
	if err != nil {
		return c.errorf("backend feature-persistent: %w", err)
	}
	persistent := fp == "1" && !c.d.opts.NoPersistent
	indirectMax, _, err := c.optionalUint(ctx, "feature-max-indirect-segments", maxBackendSegs)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		key string
		dst *bool
	}{{"feature-flush-cache", &i.FlushCache}, {"feature-barrier", &i.Barrier}} {
		v, _, err := optional(c.fe.ReadBackend(ctx, f.key))
		if err != nil {
			return c.errorf("backend %s: %w", f.key, err)
		}
		// Linux reads these as unsigned, anything else as 0.
		n, perr := strconv.ParseUint(v, 10, 64)
		*f.dst = perr == nil && n != 0
	}
	for _, kv := range []struct {
		key string
		dst *string
	}{{"mode", &i.Mode}, {"params", &i.Params}, {"type", &i.Type}} {
		v, _, err := optional(c.fe.ReadBackend(ctx, kv.key))
		if err != nil {
			return c.errorf("backend %s: %w", kv.key, err)
		}
		*kv.dst = v
	}

	opts := c.d.opts
	i.MaxSegments = min(blkif.MaxSegments, opts.MaxSegments)
	if indirectMax > blkif.MaxSegments && opts.MaxSegments > blkif.MaxSegments {
		i.Indirect = true
		i.MaxSegments = min(int(indirectMax), opts.MaxSegments, blkif.MaxIndirectSegments)
	}
	i.Persistent = persistent
	perRequest := i.MaxSegments
	if i.Indirect {
		perRequest += blkif.IndirectPages(i.MaxSegments)
	}
	c.ss = i.SectorSize
	c.size = usableSize(i.Sectors, i.SectorSize)
	c.maxSegs = i.MaxSegments
	c.pool = &pool{
		mem:        c.d.cfg.Platform,
		gnt:        c.d.cfg.Grants,
		dom:        c.fe.BackendID,
		persistent: persistent,
		limit:      max(opts.BufferPages, perRequest),
	}
	// Read-ahead takes at most half the pool, so that the reads it runs
	// ahead of are never short of pages. A read also keeps the requests
	// holding its last cache block (and a request either side) for the
	// next: a pool whose half cannot hold that gets no read-ahead.
	half := int64(c.pool.limit/2) * blkif.PageSize
	c.raMax = min(int64(opts.ReadAhead), half)
	if half < cacheBlock+2*int64(perRequest)*blkif.PageSize {
		c.raMax = 0
	}
	c.ra.end = -1
	if opts.CacheBlocks > 0 {
		c.cache = newBlockCache(opts.CacheBlocks)
	}
	return nil
}

// start runs the response reader and the backend-state monitor.
func (c *conn) start(ctx context.Context) {
	rctx, cancel := context.WithCancel(context.Background())
	c.stopReader = cancel
	c.readerDone = make(chan struct{})
	go c.reader(rctx)

	// Without the monitor a vanished backend shows up as timeouts.
	c.monitor = c.fe.Monitor(ctx, func(s xen.XenbusState) {
		c.mu.Lock()
		c.finishLocked(c.eng.fail(c.errorf("%w: backend state %v", ErrBackendGone, s)))
		c.mu.Unlock()
	})
}

// reader completes requests as responses arrive: it drains the ring
// (with the final check that re-arms rsp_event) and sleeps on the event
// channel.
func (c *conn) reader(ctx context.Context) {
	defer close(c.readerDone)
	for {
		c.mu.Lock()
		done, err := c.eng.complete()
		c.finishLocked(done)
		c.mu.Unlock()
		if err != nil {
			return // broken: requests were failed, nothing more to read
		}
		if werr := c.ch.Wait(ctx); werr != nil {
			if ctx.Err() != nil {
				return
			}
			c.mu.Lock()
			c.finishLocked(c.eng.fail(c.errorf("event channel: %w", werr)))
			c.mu.Unlock()
			return
		}
	}
}

// broadcastLocked wakes everyone waiting for a change.
func (c *conn) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// finishLocked hands completed requests to their readers.
func (c *conn) finishLocked(done []*request) {
	if len(done) == 0 {
		return
	}
	for _, r := range done {
		if r.err != nil {
			c.d.st.errors.Add(1)
		}
		if r.op == blkif.OpWrite {
			c.gen++ // reads submitted while it was in flight may predate it
		}
		close(r.done)
		if r.orphan {
			c.releaseLocked(r)
		}
	}
	c.broadcastLocked()
}

// releaseLocked returns a finished request's pages to the pool, unless
// they are tainted: the request failed without a response, so the
// backend may still use them; they wait for the teardown.
func (c *conn) releaseLocked(r *request) {
	if r.tainted {
		return
	}
	c.pool.put(r.data)
	c.pool.put(r.ind)
	r.data, r.ind = nil, nil
	c.broadcastLocked()
}

// drain waits until no request is in flight.
func (c *conn) drain(ctx context.Context) error {
	for {
		c.mu.Lock()
		n, ch := c.eng.count, c.changed
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return c.errorf("%d requests in flight: %w", n, ctx.Err())
		}
	}
}

// close is Device.Close for this connection.
func (c *conn) close(ctx context.Context) error {
	var errs []error
	c.mu.Lock()
	c.closing = true
	c.dropLocked()
	c.broadcastLocked()
	c.mu.Unlock()

	dctx, cancel := context.WithTimeout(ctx, c.d.opts.DrainTimeout)
	if err := c.drain(dctx); err != nil {
		c.mu.Lock()
		c.finishLocked(c.eng.fail(c.errorf("%w with the request in flight", ErrClosed)))
		c.mu.Unlock()
		errs = append(errs, fmt.Errorf("%w (abandoned)", err))
	}
	cancel()
	// Every reader has been woken (closing, or its request failed);
	// wait for them to let go of their pages.
	c.life.Lock()
	c.closed = true
	c.life.Unlock()
	errs = append(errs, c.teardown(ctx))
	return errors.Join(errs...)
}

// teardown undoes connect, as far as it got: watch, xenbus handoff,
// reader, grants, pages, event channel.
func (c *conn) teardown(ctx context.Context) error {
	var errs []error
	if err := c.monitor.Close(ctx); err != nil {
		errs = append(errs, c.errorf("%w", err))
	}
	c.monitor = nil
	if c.fe != nil {
		if err := c.fe.Close(ctx); err != nil {
			errs = append(errs, c.errorf("%w", err))
		}
	}
	if c.stopReader != nil {
		c.stopReader()
		<-c.readerDone
		c.stopReader = nil
	}
	cfg := c.d.cfg
	var leaks []gnttab.Ref
	ringBusy := false
	for _, r := range c.ringRefs {
		if err := cfg.Grants.End(r); err != nil {
			if !errors.Is(err, gnttab.ErrInUse) {
				errs = append(errs, c.errorf("end ring grant %d: %w", r, err))
			}
			leaks = append(leaks, r)
			ringBusy = true
		}
	}
	c.ringRefs = nil
	if c.pool != nil {
		l, err := c.pool.teardown()
		leaks = append(leaks, l...)
		if err != nil {
			errs = append(errs, c.errorf("%w", err))
		}
	}
	if c.ringMem != nil && !ringBusy {
		if err := cfg.Platform.FreePages(c.ringMem); err != nil {
			errs = append(errs, c.errorf("free ring: %w", err))
		}
	}
	c.ringMem = nil
	if c.ch != nil {
		if err := c.ch.Close(); err != nil {
			errs = append(errs, c.errorf("close event channel: %w", err))
		}
		c.ch = nil
	}
	if len(leaks) > 0 {
		errs = append(errs, c.errorf("%w: refs %v (pages leaked)", ErrLeak, leaks))
	}
	return errors.Join(errs...)
}

// notify kicks the backend.
func (c *conn) notify() {
	c.d.st.notifies.Add(1)
	if err := c.ch.Notify(); err != nil {
		c.mu.Lock()
		c.finishLocked(c.eng.fail(c.errorf("notify backend: %w", err)))
		c.mu.Unlock()
	}
}
