// Package netfront is the guest's driver for Xen virtual network interfaces
// (vif): it connects to a device's backend (netback) through xenbus, speaks
// the netif ring protocol (xen/include/public/io/netif.h, package netif) and
// presents the interface as an ipv4.Link, one Ethernet frame at a time.
//
// What it negotiates: request-rx-copy (the backend copies each received packet
// into a page we granted; page flipping is long gone, so a backend without
// feature-rx-copy is refused), feature-rx-notify (we notify when we post
// receive buffers), and receive offloads: feature-sg and feature-gso-tcpv4
// with checksum offload, so that dom0 hands over TCP data as segments of up to
// 64 KiB spread over several slots (NETRXF_more_data, reassembled here, with a
// GSO extra-info slot, skipped) and packets with NETRXF_csum_blank, whose UDP
// or TCP checksum is completed here. Under TCG each packet costs far more than
// its bytes: HTTP boot gains several times over 1500-byte frames. With
// Options.NoOffload it offers feature-no-csum-offload instead, and dom0 sends
// single-slot frames with complete checksums. It offers no multicast control,
// split event channels or multiple queues, and transmits every frame in one
// slot and one page; the backend's other feature keys (Debian's netback offers
// all of them) are simply not taken up.
//
// Receive buffers are whole pages granted (writable) once and posted again
// after each packet; transmit frames are copied into pages granted
// (read-only) once. Many packets are in flight both ways. The backend is not
// trusted: a transmit response whose id is not in flight, a status the
// protocol does not allow, or ring indices claiming more responses than
// requests break the device (ErrProtocol); a receive response with an error
// status or a length beyond its page drops only that packet.
//
// Close hands the interface back for the kernel we chainload, whose own
// netfront then connects to the same vif: transmissions are drained, the
// xenbus Closing -> Closed -> Initialising handoff is performed (package
// xenbus), and every grant is ended, every page freed and the event channel
// closed, once the backend has let go of them.
//
// Linux (drivers/net/xen-netfront.c) and Mini-OS (netfront.c) have the same
// driver; this one is written for this project, against the header, because no
// Go implementation exists and ours must run on the xen.Platform interfaces.
package netfront

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/gopvgrub/gopvgrub/netfront/netif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
	"github.com/gopvgrub/gopvgrub/xen/sring"
	"github.com/gopvgrub/gopvgrub/xen/xenbus"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
)

// Error is the type of this package's sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Errors.
const (
	// ErrClosed: the device was closed.
	ErrClosed = Error("netfront: device closed")
	// ErrProtocol: the backend broke the ring protocol; the device is
	// unusable.
	ErrProtocol = Error("netfront: protocol violation by the backend")
	// ErrBackendGone: the backend left Connected.
	ErrBackendGone = Error("netfront: backend disconnected")
	// ErrUnsupported: the backend lacks something we need
	// (feature-rx-copy).
	ErrUnsupported = Error("netfront: backend lacks a required feature")
	// ErrBadNode: a xenstore node (mac, mtu) is malformed.
	ErrBadNode = Error("netfront: malformed xenstore node")
	// ErrFrame: a frame to send is shorter than an Ethernet header or
	// longer than the MTU allows.
	ErrFrame = Error("netfront: frame size out of range")
	// ErrLeak: grants the backend still maps at Close; their pages are
	// leaked rather than freed.
	ErrLeak = Error("netfront: grants still in use after close")
)

// DefaultMTU is the MTU without an "mtu" node, and the most we use: frames
// we send must fit one page and one slot.
const DefaultMTU = 1500

// Options tune a Device. The zero value gives the defaults.
type Options struct {
	// RxBuffers is the number of receive pages kept posted (default
	// 128, at most the ring's 256).
	RxBuffers int
	// TxBuffers is the number of frames in flight to the backend
	// (default 32, at most 256).
	TxBuffers int
	// RecvQueue is the number of received frames held for Recv before
	// further ones are dropped (default 512).
	RecvQueue int
	// DrainTimeout bounds how long Close waits for frames in flight to
	// be sent (default 1s).
	DrainTimeout time.Duration
	// NoOffload offers no receive offload (feature-sg,
	// feature-gso-tcpv4, checksum offload): every frame then fits the
	// MTU.
	NoOffload bool
}

func (o Options) withDefaults() Options {
	if o.RxBuffers <= 0 || o.RxBuffers > netif.RxRingSize {
		o.RxBuffers = min(max(o.RxBuffers, 128), netif.RxRingSize)
	}
	if o.TxBuffers <= 0 || o.TxBuffers > netif.TxRingSize {
		o.TxBuffers = min(max(o.TxBuffers, 32), netif.TxRingSize)
	}
	if o.RecvQueue <= 0 {
		o.RecvQueue = 512
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = time.Second
	}
	return o
}

// Config is what a Device needs: the xenstore client, the platform (event
// channels and memory) and the domain's grant table, shared by all drivers.
type Config struct {
	Store    *xenstore.Client
	Platform xen.Platform
	Grants   *gnttab.Table
	Options  Options
}

// Stats counts a device's traffic.
type Stats struct {
	RxPackets, RxBytes uint64
	RxErrors           uint64 // packets the backend flagged or described wrongly, dropped
	RxQueueFull        uint64 // packets dropped because Recv lagged behind
	RxMultiSlot        uint64 // packets reassembled from several slots
	RxExtras           uint64 // extra-info slots skipped
	RxChecksumFixed    uint64 // NETRXF_csum_blank packets completed
	RxIDMismatch       uint64 // responses not echoing their slot's id
	TxPackets, TxBytes uint64
	TxErrors           uint64 // frames the backend answered with an error
	Notifies           uint64 // event channel notifications sent
}

// Devices lists the domain's vifs in id order.
func Devices(ctx context.Context, store *xenstore.Client) ([]xenbus.Device, error) {
	return xenbus.Enumerate(ctx, store, "vif")
}

// Device is one connected vif. Send and Recv are safe for concurrent use.
type Device struct {
	cfg  Config
	opts Options
	dev  xenbus.Device
	name string
	fe   *xenbus.Frontend
	mac  [6]byte
	mtu  int

	ch     xen.Channel
	chunks []*chunk // allocated memory and its grants

	mu      sync.Mutex
	rx      *rxEngine
	tx      *txEngine
	txFreed chan struct{} // closed and replaced when tx pages come back
	recvQ   chan []byte
	dead    chan struct{}
	err     error // why the device stopped
	closed  bool

	notifies  atomic.Uint64
	queueFull atomic.Uint64
	stopLoop  context.CancelFunc
	loopDone  chan struct{}
	monitor   *xenbus.Monitor
}

var _ ipv4.Link = (*Device)(nil)

// Open connects to the vif's backend. On error everything done so far is
// undone, and the device is handed back.
func Open(ctx context.Context, cfg Config, dev xenbus.Device) (_ *Device, err error) {
	d := &Device{
		cfg:     cfg,
		opts:    cfg.Options.withDefaults(),
		dev:     dev,
		name:    fmt.Sprintf("vif%d", dev.ID),
		txFreed: make(chan struct{}),
		dead:    make(chan struct{}),
	}
	d.recvQ = make(chan []byte, d.opts.RecvQueue)
	fe, err := xenbus.Open(ctx, cfg.Store, dev)
	if err != nil {
		return nil, d.errorf("%w", err)
	}
	d.fe = fe
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.DrainTimeout+xenbus.CleanupTimeout)
			defer cancel()
			if terr := d.teardown(cctx); terr != nil {
				err = errors.Join(err, terr)
			}
		}
	}()
	if err := d.readIdentity(ctx); err != nil {
		return nil, err
	}
	if err := fe.WaitReady(ctx); err != nil {
		return nil, d.errorf("%w", err)
	}
	copyOK, err := optional(fe.ReadBackend(ctx, "feature-rx-copy"))
	if err != nil {
		return nil, d.errorf("backend feature-rx-copy: %w", err)
	}
	if copyOK != "1" {
		return nil, d.errorf("%w: no feature-rx-copy (page flipping is not supported)", ErrUnsupported)
	}
	keys, err := d.setup()
	if err != nil {
		return nil, err
	}
	keys = append(keys, d.opts.offloadKeys()...)
	// Like Linux's netfront, switch to Connected right away; netback
	// connects when it sees that.
	if err := fe.Publish(ctx, xen.StateConnected, keys...); err != nil {
		return nil, d.errorf("%w", err)
	}
	if err := fe.WaitConnected(ctx); err != nil {
		return nil, d.errorf("%w", err)
	}
	d.start(ctx)
	return d, nil
}

func (d *Device) errorf(format string, args ...any) error {
	return fmt.Errorf("netfront: %s: "+format, append([]any{d.name}, args...)...)
}

// optional reads a node, with absence reported as "".
func optional(v string, err error) (string, error) {
	if errors.Is(err, xenstore.ErrNotExist) {
		return "", nil
	}
	return v, err
}

// readIdentity reads our directory: mac (required) and mtu (optional).
func (d *Device) readIdentity(ctx context.Context) error {
	v, err := d.fe.ReadFrontend(ctx, "mac")
	if err != nil {
		return d.errorf("mac: %w", err)
	}
	if d.mac, err = ParseMAC(v); err != nil {
		return d.errorf("%w", err)
	}
	d.mtu = DefaultMTU
	v, err = optional(d.fe.ReadFrontend(ctx, "mtu"))
	if err != nil {
		return d.errorf("mtu: %w", err)
	}
	if v != "" {
		n, perr := strconv.ParseUint(v, 10, 16)
		if perr != nil || n < 576 {
			return d.errorf("mtu %q: %w", clip(v), ErrBadNode)
		}
		d.mtu = min(int(n), DefaultMTU)
	}
	return nil
}

// ParseMAC decodes the "mac" node: six two-digit hex bytes separated by
// colons, a unicast address.
func ParseMAC(s string) ([6]byte, error) {
	var m [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, fmt.Errorf("mac %q: %w", clip(s), ErrBadNode)
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 16, 8)
		if len(p) != 2 || err != nil {
			return m, fmt.Errorf("mac %q: %w", clip(s), ErrBadNode)
		}
		m[i] = byte(n)
	}
	if m[0]&1 != 0 || m == ([6]byte{}) {
		return m, fmt.Errorf("mac %q is not a unicast address: %w", clip(s), ErrBadNode)
	}
	return m, nil
}

func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// chunk is one allocation of pages and the grants of its pages.
type chunk struct {
	what string
	mem  []byte
	mfns []xen.MFN
	refs []gnttab.Ref
}

// alloc allocates n pages and grants each to the backend.
func (d *Device) alloc(what string, n int, readonly bool) (*chunk, error) {
	mem, mfns, err := d.cfg.Platform.AllocPages(n)
	if err != nil {
		return nil, d.errorf("allocate %d pages for the %s: %w", n, what, err)
	}
	c := &chunk{what: what, mem: mem, mfns: mfns}
	d.chunks = append(d.chunks, c)
	for _, m := range mfns {
		r, err := d.cfg.Grants.Grant(d.fe.BackendID, m, readonly)
		if err != nil {
			return nil, d.errorf("grant the %s: %w", what, err)
		}
		c.refs = append(c.refs, r)
	}
	return c, nil
}

// pages splits a chunk into its pages and their references.
func (c *chunk) pages() ([][]byte, []uint32) {
	var pages [][]byte
	var refs []uint32
	for i, r := range c.refs {
		pages = append(pages, c.mem[i*xen.PageSize:(i+1)*xen.PageSize:(i+1)*xen.PageSize])
		refs = append(refs, uint32(r))
	}
	return pages, refs
}

// setup allocates and grants the rings and buffers, allocates the event
// channel and returns the keys to publish.
func (d *Device) setup() ([]xenbus.KV, error) {
	txc, err := d.alloc("tx ring", 1, false)
	if err != nil {
		return nil, err
	}
	rxc, err := d.alloc("rx ring", 1, false)
	if err != nil {
		return nil, err
	}
	txr, err := sring.NewFront(txc.mem, netif.TxSlotSize)
	if err != nil {
		return nil, d.errorf("tx ring: %w", err)
	}
	rxr, err := sring.NewFront(rxc.mem, netif.RxSlotSize)
	if err != nil {
		return nil, d.errorf("rx ring: %w", err)
	}
	rxb, err := d.alloc("receive buffers", d.opts.RxBuffers, false)
	if err != nil {
		return nil, err
	}
	txb, err := d.alloc("transmit buffers", d.opts.TxBuffers, true)
	if err != nil {
		return nil, err
	}
	rxp, rxrefs := rxb.pages()
	txp, txrefs := txb.pages()
	d.rx = newRxEngine(rxr, rxp, rxrefs)
	d.tx = newTxEngine(txr, txp, txrefs)
	if d.ch, err = d.cfg.Platform.AllocUnbound(d.fe.BackendID); err != nil {
		return nil, d.errorf("event channel: %w", err)
	}
	// Receive buffers are posted before we announce the rings: netback
	// may deliver as soon as it connects.
	d.rx.post()
	return []xenbus.KV{
		{Key: "tx-ring-ref", Value: strconv.FormatUint(uint64(txc.refs[0]), 10)},
		{Key: "rx-ring-ref", Value: strconv.FormatUint(uint64(rxc.refs[0]), 10)},
		{Key: "event-channel", Value: strconv.FormatUint(uint64(d.ch.Port()), 10)},
		{Key: "request-rx-copy", Value: "1"},
		{Key: "feature-rx-notify", Value: "1"},
	}, nil
}

// offloadKeys are the receive offload keys we publish.
func (o Options) offloadKeys() []xenbus.KV {
	if o.NoOffload {
		return []xenbus.KV{{Key: "feature-no-csum-offload", Value: "1"}}
	}
	return []xenbus.KV{{Key: "feature-sg", Value: "1"}, {Key: "feature-gso-tcpv4", Value: "1"}}
}

// start runs the ring service loop and the backend-state monitor.
func (d *Device) start(ctx context.Context) {
	lctx, cancel := context.WithCancel(context.Background())
	d.stopLoop = cancel
	d.loopDone = make(chan struct{})
	go d.loop(lctx)
	// Without the monitor a vanished backend shows as silence.
	d.monitor = d.fe.Monitor(ctx, func(s xen.XenbusState) {
		d.fail(d.errorf("%w: backend state %v", ErrBackendGone, s))
	})
}

// loop services both rings whenever the backend notifies.
func (d *Device) loop(ctx context.Context) {
	defer close(d.loopDone)
	for {
		d.mu.Lock()
		more, err := d.serviceLocked()
		d.mu.Unlock()
		if err != nil {
			d.fail(d.errorf("%w", err))
			return
		}
		if more {
			continue
		}
		if err := d.ch.Wait(ctx); err != nil {
			if ctx.Err() == nil {
				d.fail(d.errorf("event channel: %w", err))
			}
			return
		}
	}
}

// serviceLocked receives what arrived, posts buffers again and frees
// transmit pages. It reports whether there is more to do at once.
func (d *Device) serviceLocked() (bool, error) {
	if d.err != nil {
		return false, nil
	}
	rxMore, err := d.rx.poll(d.deliver)
	if err != nil {
		return false, err
	}
	notify := d.rx.post()
	freed, txMore, err := d.tx.reap()
	if err != nil {
		return false, err
	}
	if freed > 0 {
		close(d.txFreed)
		d.txFreed = make(chan struct{})
	}
	if notify {
		if err := d.notify(); err != nil {
			return false, err
		}
	}
	return rxMore || txMore, nil
}

func (d *Device) deliver(p []byte) {
	select {
	case d.recvQ <- p:
	default:
		d.queueFull.Add(1)
	}
}

func (d *Device) notify() error {
	d.notifies.Add(1)
	if err := d.ch.Notify(); err != nil {
		return fmt.Errorf("notify backend: %w", err)
	}
	return nil
}

// fail stops the device with err (the first reason wins).
func (d *Device) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failLocked(err)
}

func (d *Device) failLocked(err error) {
	if d.err != nil {
		return
	}
	d.err = err
	close(d.dead)
}

// Name is "vif<id>".
func (d *Device) Name() string { return d.name }

// MTU implements ipv4.Link.
func (d *Device) MTU() int { return d.mtu }

// MaxReceive is the longest frame Recv returns: with receive offload a
// GSO packet of up to 64 KiB, otherwise an MTU-sized frame.
func (d *Device) MaxReceive() int {
	if d.opts.NoOffload {
		return d.mtu + ipv4.EthernetHeaderSize
	}
	return maxPacket
}

// MAC implements ipv4.Link: the "mac" node.
func (d *Device) MAC() [6]byte { return d.mac }

// Err returns why the device stopped working, or nil.
func (d *Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Stats returns a snapshot of the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Stats{RxQueueFull: d.queueFull.Load(), Notifies: d.notifies.Load()}
	if d.rx != nil {
		r := d.rx.st
		s.RxPackets, s.RxBytes, s.RxErrors, s.RxMultiSlot = r.packets, r.bytes, r.errors, r.multiSlot
		s.RxExtras, s.RxChecksumFixed, s.RxIDMismatch = r.extras, r.csumFixed, r.idMismatch
	}
	if d.tx != nil {
		s.TxPackets, s.TxBytes, s.TxErrors = d.tx.st.packets, d.tx.st.bytes, d.tx.st.errors
	}
	return s
}

// Send implements ipv4.Link: it copies frame into a transmit page and
// queues it, waiting (bounded by ctx) while every page is in flight.
func (d *Device) Send(ctx context.Context, frame []byte) error {
	if len(frame) < ipv4.EthernetHeaderSize || len(frame) > d.mtu+ipv4.EthernetHeaderSize {
		return d.errorf("%d-byte frame, MTU %d: %w", len(frame), d.mtu, ErrFrame)
	}
	for {
		d.mu.Lock()
		if d.err != nil {
			err := d.err
			d.mu.Unlock()
			return err
		}
		if len(d.tx.free) == 0 {
			if _, _, err := d.tx.reap(); err != nil {
				d.failLocked(d.errorf("%w", err))
				err := d.err
				d.mu.Unlock()
				return err
			}
		}
		if len(d.tx.free) > 0 {
			notify, err := d.tx.send(frame)
			var nerr error
			if err == nil && notify {
				nerr = d.notify()
			}
			if nerr != nil {
				d.failLocked(d.errorf("%w", nerr))
			}
			d.mu.Unlock()
			if err != nil {
				return d.errorf("send: %w", err)
			}
			return nerr
		}
		wait := d.txFreed
		d.mu.Unlock()
		select {
		case <-wait:
		case <-d.dead:
		case <-ctx.Done():
			return d.errorf("waiting for a transmit buffer: %w", ctx.Err())
		}
	}
}

// Recv implements ipv4.Link: the next received frame, which the caller
// keeps.
func (d *Device) Recv(ctx context.Context) ([]byte, error) {
	select {
	case f := <-d.recvQ:
		return f, nil
	default:
	}
	select {
	case f := <-d.recvQ:
		return f, nil
	case <-d.dead:
		return nil, d.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// drain waits until every frame in flight has been answered.
func (d *Device) drain(ctx context.Context) error {
	for {
		d.mu.Lock()
		n, wait, dead := d.tx.outstanding(), d.txFreed, d.err != nil
		d.mu.Unlock()
		if n == 0 || dead {
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return d.errorf("%d frames still in flight: %w", n, ctx.Err())
		}
	}
}

// Close hands the device back: frames in flight are drained (bounded by
// DrainTimeout), the xenbus handoff leaves the backend in InitWait for the
// next frontend, and the grants, pages and event channel are released.
// Recv and Send fail with ErrClosed afterwards.
func (d *Device) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	var errs []error
	dctx, cancel := context.WithTimeout(ctx, d.opts.DrainTimeout)
	if err := d.drain(dctx); err != nil {
		errs = append(errs, err)
	}
	cancel()
	d.fail(d.errorf("%w", ErrClosed))
	errs = append(errs, d.teardown(ctx))
	return errors.Join(errs...)
}

// teardown undoes Open as far as it got: monitor, xenbus handoff, loop,
// grants, pages, event channel.
func (d *Device) teardown(ctx context.Context) error {
	var errs []error
	if err := d.monitor.Close(ctx); err != nil {
		errs = append(errs, d.errorf("%w", err))
	}
	d.monitor = nil
	if d.fe != nil {
		if err := d.fe.Close(ctx); err != nil {
			errs = append(errs, d.errorf("%w", err))
		}
	}
	if d.stopLoop != nil {
		d.stopLoop()
		<-d.loopDone
		d.stopLoop = nil
	}
	// The backend has let go (Closed), or is gone: end the grants. A
	// chunk with a grant still mapped is leaked rather than freed, so
	// that the backend never writes memory handed out again.
	var leaks []gnttab.Ref
	for _, c := range d.chunks {
		busy := false
		for _, r := range c.refs {
			if err := d.cfg.Grants.End(r); err != nil {
				if !errors.Is(err, gnttab.ErrInUse) {
					errs = append(errs, d.errorf("end grant %d: %w", r, err))
				}
				busy = true
				leaks = append(leaks, r)
			}
		}
		if busy {
			continue
		}
		if err := d.cfg.Platform.FreePages(c.mem); err != nil {
			errs = append(errs, d.errorf("free the %s: %w", c.what, err))
		}
	}
	d.chunks = nil
	if len(leaks) > 0 {
		errs = append(errs, d.errorf("%w: refs %v (pages leaked)", ErrLeak, leaks))
	}
	if d.ch != nil {
		if err := d.ch.Close(); err != nil {
			errs = append(errs, d.errorf("close event channel: %w", err))
		}
		d.ch = nil
	}
	return errors.Join(errs...)
}
