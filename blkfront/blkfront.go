// Package blkfront is the guest's driver for Xen virtual block devices
// (vbd): it connects to each device's backend through xenbus, speaks the
// blkif ring protocol (xen/include/public/io/blkif.h, package blkif) and
// presents the disk as an io.ReaderAt and io.WriterAt.
//
// A read or write is cut into BLKIF_OP_READ or BLKIF_OP_WRITE ring
// requests of up to the negotiated number of segments (11, or more with
// BLKIF_OP_INDIRECT), as many in flight as the ring and the bounce-page
// budget allow, answered in any order and matched by id. The data goes
// through bounce pages granted to the backend (xen.Memory pages, never
// the caller's buffer): the backend writes into them for a read and the
// data is copied out; for a write the data is copied in and the pages
// are granted read-only (unless persistent). Requests are
// sector-aligned: reads of any offset and length copy out the part
// asked for, and writes read-modify-write a partial first or last
// sector. Sync sends BLKIF_OP_FLUSH_DISKCACHE (or WRITE_BARRIER) after
// writes when the backend offers it. Read-only devices and CD-ROMs
// refuse writes before anything is sent.
//
// Reads are helped two ways (readahead.go): a sequential reader gets
// read-ahead, requests past its read left in flight for the next one, so
// that the ring does not drain between reads; and reads under 64 KiB,
// the way filesystems read their metadata, go through a small cache of
// 64 KiB blocks. Neither ever serves data older than a write.
//
// Negotiated with the backend: multi-page rings (max-ring-page-order ->
// ring-page-order and ring-ref0..N-1), indirect requests
// (feature-max-indirect-segments), persistent grants (feature-persistent:
// bounce pages are granted once and reused LIFO), sector-size and
// physical-sector-size, mode and info (read-only, CD-ROM),
// feature-flush-cache and feature-barrier. A backend that
// offers none of them gets a one-page ring, 11-segment requests and
// per-request grants.
//
// The backend is another domain and is not trusted: a response with an
// id that is not in flight, the wrong operation, or a ring index that
// claims more responses than requests breaks the connection (ErrProtocol)
// and fails every request in flight, whose pages are then kept away from
// reuse until the backend has let go of them; an error status fails only
// its request. A backend that leaves Connected fails the connection with
// ErrBackendGone. Every wait is bounded by a context.
//
// Close hands the device back for the kernel we chainload: it waits for
// requests in flight, performs the xenbus Closing -> Closed ->
// Initialising handoff (package xenbus) so the backend is in InitWait
// again, ends every grant (reporting any the backend still maps, which
// are leaked rather than freed), frees the pages and closes the event
// channel. A closed Device can be opened again with Reopen.
//
// Linux (drivers/block/xen-blkfront.c) and Mini-OS (blkfront.c) have the
// same driver; this one is written for this project, against the
// headers, because no Go implementation exists and ours must run on
// the xen.Platform interfaces.
package blkfront

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopvgrub/gopvgrub/blkfront/blkif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
	"github.com/gopvgrub/gopvgrub/xen/xenbus"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
)

// Error is the type of this package's sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Errors. Returned errors wrap them with the device name and details.
const (
	// ErrClosed: the device is closed (or closing).
	ErrClosed = Error("blkfront: device closed")
	// ErrIO: the backend answered BLKIF_RSP_ERROR (or a status the
	// protocol does not define).
	ErrIO = Error("blkfront: backend reported an I/O error")
	// ErrNotSupported: the backend answered BLKIF_RSP_EOPNOTSUPP.
	ErrNotSupported = Error("blkfront: backend does not support the operation")
	// ErrProtocol: the backend broke the ring protocol; the connection
	// is unusable until the device is closed and reopened.
	ErrProtocol = Error("blkfront: backend protocol violation")
	// ErrBackendGone: the backend left Connected while we used it.
	ErrBackendGone = Error("blkfront: backend closed the device")
	// ErrUnsupported: the device has parameters this driver cannot
	// serve (a sector size above 4096, an absurd size).
	ErrUnsupported = Error("blkfront: unsupported device parameters")
	// ErrNoBuffers: no bounce page can be had (allocation or grant
	// table exhausted) and none will come back.
	ErrNoBuffers = Error("blkfront: out of bounce pages")
	// ErrLeak: at Close, the backend still mapped some of our grants;
	// their pages were leaked rather than freed.
	ErrLeak = Error("blkfront: grants still mapped by the backend at close")
	// ErrReadOnly: a write to a read-only device or a CD-ROM, refused
	// before anything was sent.
	ErrReadOnly = Error("blkfront: device is read-only")
	// ErrPastEnd: a write reaching beyond the end of the device; what
	// fits was written.
	ErrPastEnd = Error("blkfront: beyond the end of the device")
)

// detail is a sentinel without its "blkfront: " prefix, for messages
// that already start with it; errors.Is still finds the sentinel.
type detail struct{ err Error }

func (d detail) Error() string { return strings.TrimPrefix(string(d.err), "blkfront: ") }
func (d detail) Unwrap() error { return d.err }

// Defaults of Options. Measured under the test bed (make bench
// BENCH=blkfront): 128-page (512 KiB) requests from a 1024-page pool read
// 256 MiB at about 1000 MB/s, against about 680 MB/s with 32-page
// requests from 256 pages; larger requests or pools gained nothing, and
// without persistent grants it fell to about 350 MB/s. 1024 pages plus
// the indirect pages stay under Linux blkback's default limit of 1056
// persistent grants per ring (max_persistent_grants), above which it maps
// and unmaps grants per request again. Read-ahead (half the pool, 2 MiB)
// then took 4 MiB reads from about 860 to about 1100 MB/s in the same
// run. The cache is 2 MiB of 64 KiB blocks: a filesystem's metadata
// reads cluster within a few blocks at a time.
const (
	DefaultMaxRingOrder = 4
	DefaultMaxSegments  = 128
	DefaultBufferPages  = 1024
	DefaultReadAhead    = 4 << 20
	DefaultCacheBlocks  = 32
	DefaultIOTimeout    = 30 * time.Second
	DefaultDrainTimeout = 5 * time.Second
)

// Options tune the negotiation; the zero value gives the defaults.
type Options struct {
	// SinglePage keeps the ring to one page even if the backend offers
	// more; otherwise up to MaxRingOrder (default 4: 16 pages, 512
	// requests) is used.
	SinglePage   bool
	MaxRingOrder int
	// MaxSegments caps the pages of one request (default 128, 512 KiB);
	// above 11 it needs feature-max-indirect-segments. 11 or less
	// disables indirect requests.
	MaxSegments int
	// NoPersistent does not offer feature-persistent.
	NoPersistent bool
	// BufferPages caps the bounce pages (default 1024, 4 MiB), hence the
	// grants, the device uses for data; it is raised to what one request
	// needs.
	BufferPages int
	// ReadAhead caps the bytes read ahead of a sequential reader
	// (default 4 MiB, and never more than half of BufferPages);
	// negative disables read-ahead.
	ReadAhead int
	// CacheBlocks is how many 64 KiB blocks the cache for reads under
	// 64 KiB keeps (default 32, 2 MiB); negative disables the cache.
	CacheBlocks int
	// IOTimeout bounds ReadAt and WriteAt (ReadAtContext and
	// WriteAtContext take a context instead).
	IOTimeout time.Duration
	// DrainTimeout bounds how long Close waits for requests in flight
	// before abandoning them (within Close's context).
	DrainTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxRingOrder <= 0 || o.MaxRingOrder > DefaultMaxRingOrder {
		o.MaxRingOrder = DefaultMaxRingOrder
	}
	if o.SinglePage {
		o.MaxRingOrder = 0
	}
	if o.MaxSegments <= 0 {
		o.MaxSegments = DefaultMaxSegments
	}
	if o.BufferPages <= 0 {
		o.BufferPages = DefaultBufferPages
	}
	if o.ReadAhead == 0 {
		o.ReadAhead = DefaultReadAhead
	}
	if o.CacheBlocks == 0 {
		o.CacheBlocks = DefaultCacheBlocks
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = DefaultIOTimeout
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	return o
}

// Config is what a Device needs: the xenstore client, the platform (event
// channels and memory) and the domain's grant table, shared by all
// drivers.
type Config struct {
	Store    *xenstore.Client
	Platform xen.Platform
	Grants   *gnttab.Table
	Options  Options
}

// Info describes a connected device: the xenstore nodes read and what
// was negotiated.
type Info struct {
	VirtualDevice uint32 // "virtual-device"
	DeviceType    string // frontend "device-type": "disk", "cdrom"…
	Backend       string // backend directory
	BackendID     xen.DomID
	Params        string // backend "params" (the toolstack's target)
	Type          string // backend "type": "phy", "file", "qdisk"…
	Mode          string // backend "mode": "r" or "w"

	Sectors            uint64 // "sectors": 512-byte units
	SectorSize         int    // "sector-size" (512 if absent)
	PhysicalSectorSize int    // "physical-sector-size" (SectorSize if absent)
	VDisk              uint32 // "info": VDISK_* bits

	FlushCache bool // backend "feature-flush-cache": Sync flushes after writes
	Barrier    bool // backend "feature-barrier": the same, by WRITE_BARRIER

	RingPages   int  // pages of the ring (2^ring-page-order)
	RingSlots   int  // requests the ring holds
	Persistent  bool // both sides do persistent grants
	Indirect    bool // BLKIF_OP_INDIRECT is used
	MaxSegments int  // pages per request
}

// Stats counts a device's activity over all its connections.
type Stats struct {
	Reads       uint64 // ReadAt calls
	Bytes       uint64 // bytes returned by ReadAt
	Writes      uint64 // WriteAt calls
	Written     uint64 // bytes WriteAt wrote
	Flushes     uint64 // flush or barrier requests (by Sync)
	Requests    uint64 // ring requests issued
	Indirect    uint64 // of which BLKIF_OP_INDIRECT
	Segments    uint64 // data pages transferred
	Errors      uint64 // requests that failed
	Notifies    uint64 // event channel notifications sent
	ReadAhead   uint64 // bytes requested ahead of sequential reads
	CacheHits   uint64 // short reads' blocks found in the cache
	CacheMisses uint64 // and read
	InFlight    int    // requests in flight now
	MaxInFlight int    // most requests in flight at once
	Connects    int
}

type stats struct {
	reads, bytes, requests, indirect, segments, errors, notifies atomic.Uint64
	writes, written, flushes                                     atomic.Uint64
	readAhead, cacheHits, cacheMisses                            atomic.Uint64
	maxInFlight                                                  atomic.Int64
	connects                                                     atomic.Int64
}

// Device is one virtual block device. ReadAt, WriteAt, Sync and the
// accessors are safe for concurrent use; Close and Reopen are
// serialised with each other.
type Device struct {
	cfg  Config
	opts Options
	dev  xenbus.Device

	op sync.Mutex // serialises connect and close

	mu   sync.Mutex
	conn *conn
	info Info // of the last connection
	name string

	st stats
	// Write requests issued, and how many of them the last successful
	// flush covered: Sync flushes only when they differ. Kept across
	// Reopen, since the backend's cache is.
	wgen, fgen atomic.Uint64
}

// Open connects to one device (an entry of xenbus.Enumerate(…, "vbd")).
func Open(ctx context.Context, cfg Config, dev xenbus.Device) (*Device, error) {
	if cfg.Store == nil || cfg.Platform == nil || cfg.Grants == nil {
		return nil, fmt.Errorf("blkfront: %s: Config needs Store, Platform and Grants", dev.Dir)
	}
	d := &Device{cfg: cfg, opts: cfg.Options.withDefaults(), dev: dev, name: DeviceName(dev.ID)}
	if err := d.Reopen(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// OpenAll opens every vbd of the domain, in xenbus.Enumerate order (the
// order PV-GRUB names hd0, hd1…). Devices that fail to connect are left
// out and their errors joined; the others are returned either way.
func OpenAll(ctx context.Context, cfg Config) ([]*Device, error) {
	devs, err := xenbus.Enumerate(ctx, cfg.Store, "vbd")
	if err != nil {
		return nil, fmt.Errorf("blkfront: %w", err)
	}
	var out []*Device
	var errs []error
	for _, dv := range devs {
		d, err := Open(ctx, cfg, dv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

// Reopen connects a closed device again (as the next frontend would).
func (d *Device) Reopen(ctx context.Context) error {
	d.op.Lock()
	defer d.op.Unlock()
	d.mu.Lock()
	open := d.conn != nil
	d.mu.Unlock()
	if open {
		return fmt.Errorf("blkfront: %s: already open", d.name)
	}
	c, err := connect(ctx, d)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.conn = c
	d.info = c.info
	d.name = DeviceName(c.info.VirtualDevice)
	d.mu.Unlock()
	d.st.connects.Add(1)
	return nil
}

// Close waits for requests in flight (up to Options.DrainTimeout), hands
// the device back to its backend (xenbus Closing -> Closed ->
// Initialising, backend back in InitWait), ends every grant, frees the
// pages and closes the event channel. Reads after Close fail with
// ErrClosed; Reopen connects again. Every step is attempted even if an
// earlier one failed; the errors are joined. Closing a closed device
// does nothing.
func (d *Device) Close(ctx context.Context) error {
	d.op.Lock()
	defer d.op.Unlock()
	d.mu.Lock()
	c := d.conn
	d.mu.Unlock()
	if c == nil {
		return nil
	}
	err := c.close(ctx)
	d.mu.Lock()
	d.conn = nil
	d.mu.Unlock()
	return err
}

// Name is the Linux name of the device ("xvda", "hdc", "sdb"), from its
// virtual-device number.
func (d *Device) Name() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.name
}

// ID is the device id: its directory under device/vbd.
func (d *Device) ID() uint32 { return d.dev.ID }

// Info returns what the last connection read and negotiated.
func (d *Device) Info() Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info
}

// Size is the readable size in bytes: "sectors" × 512, rounded down to
// the sector size.
func (d *Device) Size() int64 {
	i := d.Info()
	return usableSize(i.Sectors, i.SectorSize)
}

func usableSize(sectors uint64, ss int) int64 {
	b := int64(sectors) * 512
	return b - b%int64(ss)
}

// SectorSize is the logical block size: requests are aligned to it.
func (d *Device) SectorSize() int { return d.Info().SectorSize }

// PhysicalSectorSize is the backend's physical block size.
func (d *Device) PhysicalSectorSize() int { return d.Info().PhysicalSectorSize }

// ReadOnly reports whether the backend exports the device read-only
// (mode "r" or VDISK_READONLY). WriteAt refuses such devices, and
// CD-ROMs.
func (d *Device) ReadOnly() bool { return d.Info().readOnly() }

func (i Info) readOnly() bool { return i.Mode == "r" || i.VDisk&blkif.VDiskReadOnly != 0 }

// CDROM reports whether the device is a CD-ROM (device-type "cdrom" or
// VDISK_CDROM).
func (d *Device) CDROM() bool { return d.Info().cdrom() }

func (i Info) cdrom() bool { return i.DeviceType == "cdrom" || i.VDisk&blkif.VDiskCDROM != 0 }

// writable returns why writes are refused, or nil.
func (i Info) writable() error {
	switch {
	case i.readOnly():
		return detail{ErrReadOnly}
	case i.cdrom():
		return fmt.Errorf("%w (CD-ROM)", detail{ErrReadOnly})
	}
	return nil
}

// Removable reports VDISK_REMOVABLE.
func (d *Device) Removable() bool { return d.Info().VDisk&blkif.VDiskRemovable != 0 }

// Params is the backend's "params" node: what the toolstack attached.
func (d *Device) Params() string { return d.Info().Params }

// Stats returns the counters.
func (d *Device) Stats() Stats {
	s := Stats{
		Reads:       d.st.reads.Load(),
		Bytes:       d.st.bytes.Load(),
		Writes:      d.st.writes.Load(),
		Written:     d.st.written.Load(),
		Flushes:     d.st.flushes.Load(),
		Requests:    d.st.requests.Load(),
		Indirect:    d.st.indirect.Load(),
		Segments:    d.st.segments.Load(),
		Errors:      d.st.errors.Load(),
		Notifies:    d.st.notifies.Load(),
		ReadAhead:   d.st.readAhead.Load(),
		CacheHits:   d.st.cacheHits.Load(),
		CacheMisses: d.st.cacheMisses.Load(),
		MaxInFlight: int(d.st.maxInFlight.Load()),
		Connects:    int(d.st.connects.Load()),
	}
	d.mu.Lock()
	c := d.conn
	d.mu.Unlock()
	if c != nil {
		c.mu.Lock()
		s.InFlight = c.eng.count
		c.mu.Unlock()
	}
	return s
}

// Sync waits until no request is in flight. If anything was written
// since the last flush and the backend offers feature-flush-cache (or
// else feature-barrier), it then sends BLKIF_OP_FLUSH_DISKCACHE (or
// BLKIF_OP_WRITE_BARRIER) and waits for it: the data written before
// Sync was called is then on stable storage, as it must be before a
// chainload. A backend offering neither gives no way to ask, so Sync
// only waits. Nothing is cached here: completed writes are already
// with the backend.
func (d *Device) Sync(ctx context.Context) error {
	d.mu.Lock()
	c, name := d.conn, d.name
	d.mu.Unlock()
	if c == nil {
		return fmt.Errorf("blkfront: %s: %w", name, ErrClosed)
	}
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed {
		return fmt.Errorf("blkfront: %s: %w", name, ErrClosed)
	}
	// Writes issued after this point are not Sync's to cover.
	gen := d.wgen.Load()
	if err := c.drain(ctx); err != nil {
		return err
	}
	if gen == d.fgen.Load() {
		return nil
	}
	op := uint8(blkif.OpFlushDiskcache)
	switch {
	case c.info.FlushCache:
	case c.info.Barrier:
		op = blkif.OpWriteBarrier
	default:
		return nil
	}
	if err := c.flush(ctx, op); err != nil {
		return err
	}
	for {
		f := d.fgen.Load()
		if f >= gen || d.fgen.CompareAndSwap(f, gen) {
			return nil
		}
	}
}

// String describes the device for logs.
func (d *Device) String() string {
	return d.Name() + " (vbd " + strconv.FormatUint(uint64(d.dev.ID), 10) + ", " + strconv.FormatInt(d.Size(), 10) + " bytes)"
}
