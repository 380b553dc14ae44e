package xentest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/gopvgrub/gopvgrub/netfront/netif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/sring"
)

// ErrNetbackNotConnected: the netback has no connected frontend.
var ErrNetbackNotConnected = errors.New("xentest: netback not connected")

// NetbackFeatures are the feature keys Debian 12's netback (Linux 6.1
// xen-netback, xenbus.c netback_probe) writes into its directory; the
// default of NetbackConfig.Features.
var NetbackFeatures = map[string]string{
	"feature-sg":                        "1",
	"feature-gso-tcpv4":                 "1",
	"feature-gso-tcpv6":                 "1",
	"feature-ipv6-csum-offload":         "1",
	"feature-rx-copy":                   "1",
	"feature-rx-flip":                   "0",
	"feature-multicast-control":         "1",
	"feature-dynamic-multicast-control": "1",
	"feature-split-event-channels":      "1",
	"multi-queue-max-queues":            "2",
	"feature-ctrl-ring":                 "1",
	"feature-xdp-headroom":              "1",
}

// NetbackConfig describes a simulated vif and its backend.
type NetbackConfig struct {
	Front xen.DomID // the guest; default 1
	Back  xen.DomID // the backend's domain; default 0
	// DevID is the vif number (default 0).
	DevID uint32
	// MAC is the frontend's "mac" node (default 00:16:3e:00:00:01);
	// MACNode, if set, is written instead, verbatim.
	MAC     [6]byte
	MACNode string
	// MTU is the frontend's "mtu" node (0: none).
	MTU int
	// Features are the backend's feature keys (default NetbackFeatures).
	Features map[string]string
	// Offline: see BackendConfig.Offline.
	Offline bool
	// QueueLen bounds the frames waiting for a receive buffer (default
	// 256); more are dropped, as netback's queue does.
	QueueLen int

	// Tx, if set, is called (from the backend's goroutine, without its
	// lock) with each frame the guest transmitted.
	Tx func(frame []byte)

	// Fault injection and unusual-but-legal deliveries.

	// SplitRx delivers each received frame in fragments of at most this
	// many bytes, one slot each, chained with NETRXF_more_data.
	SplitRx int
	// RxExtra adds a GSO extra-info slot after the first fragment.
	RxExtra bool
	// RxOffset places received data this far into the page.
	RxOffset int
	// CsumBlank delivers IPv4 UDP frames with NETRXF_csum_blank and only
	// the pseudo-header sum in the checksum field, as checksum offload
	// leaves it.
	CsumBlank bool
	// MangleRx and MangleTx may rewrite a response before it is written.
	MangleRx func(r *netif.RxResponse)
	MangleTx func(r *netif.TxResponse)
}

// NetbackStats counts what the backend did.
type NetbackStats struct {
	TxFrames    int // frames the guest sent
	TxSlots     int
	RxFrames    int // frames delivered to the guest
	RxSlots     int
	RxDropped   int // frames dropped: queue full
	RxWaiting   int // frames waiting for receive buffers now
	Notifies    int
	Connects    int
	Disconnects int
}

// Netback is a simulated Linux netback: it connects to the guest's
// netfront through the xenbus handshake of Backend, copies frames the guest
// transmits out of its granted pages (GNTTABOP_copy, with Xen's checks) and
// copies frames handed to Inject into the receive pages the guest posted.
// Every deviation from the protocol is recorded (ProtocolErrors).
type Netback struct {
	h   *Hypervisor
	cfg NetbackConfig
	be  *Backend

	mu       sync.Mutex
	sess     *netSession
	pending  [][]byte // frames waiting for receive buffers
	stats    NetbackStats
	protoErr []error
	frontCfg map[string]string // frontend keys read at the last connect
	holdTx   bool
}

type netSession struct {
	tx, rx       *sring.Back
	txMem, rxMem []byte
	maps         []*GrantMapping
	port         xen.Channel
	kick         chan struct{}
	cancel       context.CancelFunc
	done         chan struct{}
	// rx requests consumed and not yet used.
	rxReqs []netif.RxRequest
}

// NewNetback creates the vif's xenstore nodes (as libxl does) and starts its
// backend, which waits in InitWait for the guest's netfront.
func NewNetback(h *Hypervisor, x *Xenstored, cfg NetbackConfig) (*Netback, error) {
	if cfg.Front == 0 {
		cfg.Front = 1
	}
	if cfg.MAC == ([6]byte{}) {
		cfg.MAC = [6]byte{0x00, 0x16, 0x3e, 0, 0, 1}
	}
	if cfg.Features == nil {
		cfg.Features = NetbackFeatures
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 256
	}
	if cfg.RxOffset < 0 || cfg.RxOffset >= xen.PageSize {
		return nil, fmt.Errorf("xentest: netback: rx offset %d", cfg.RxOffset)
	}
	if h.Domain(cfg.Back) == nil {
		return nil, fmt.Errorf("xentest: netback: no backend domain %d", cfg.Back)
	}
	nb := &Netback{h: h, cfg: cfg}
	mac := cfg.MACNode
	if mac == "" {
		m := cfg.MAC
		mac = fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
	}
	fkeys := map[string]string{"mac": mac, "handle": strconv.FormatUint(uint64(cfg.DevID), 10)}
	if cfg.MTU != 0 {
		fkeys["mtu"] = strconv.Itoa(cfg.MTU)
	}
	bkeys := map[string]string{"mac": mac, "handle": strconv.FormatUint(uint64(cfg.DevID), 10), "script": "vif-bridge", "bridge": "xenbr0"}
	for k, v := range cfg.Features {
		bkeys[k] = v
	}
	be, err := NewBackend(x, BackendConfig{
		Type:         "vif",
		DevID:        cfg.DevID,
		Front:        cfg.Front,
		Back:         cfg.Back,
		FrontendKeys: fkeys,
		BackendKeys:  bkeys,
		Offline:      cfg.Offline,
		Connect:      nb.connect,
		Disconnect:   func(*Backend) { nb.disconnect() },
	})
	if err != nil {
		return nil, err
	}
	nb.be = be
	return nb, nil
}

// Backend is the xenbus side of the device.
func (nb *Netback) Backend() *Backend { return nb.be }

// Close stops the backend: it disconnects and stops reacting to the
// frontend. The xenstore nodes stay.
func (nb *Netback) Close() {
	nb.be.Close()
	nb.disconnect()
}

// Stats returns a snapshot of the counters.
func (nb *Netback) Stats() NetbackStats {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	s := nb.stats
	s.RxWaiting = len(nb.pending)
	return s
}

// FrontendKeys returns the frontend's nodes as read at the last connect.
func (nb *Netback) FrontendKeys() map[string]string {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	out := map[string]string{}
	for k, v := range nb.frontCfg {
		out[k] = v
	}
	return out
}

// Connected reports whether a frontend is connected.
func (nb *Netback) Connected() bool {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	return nb.sess != nil
}

// ProtocolErrors lists what the frontend did wrong, in order.
func (nb *Netback) ProtocolErrors() []error {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	return slices.Clone(nb.protoErr)
}

func (nb *Netback) violation(format string, args ...any) error {
	err := fmt.Errorf("xentest: netback d%d/vif%d: "+format, append([]any{nb.cfg.Front, nb.cfg.DevID}, args...)...)
	nb.protoErr = append(nb.protoErr, err)
	return err
}

// Inject hands a frame to the guest, as the bridge does: it is delivered
// as soon as the guest has a receive buffer posted, and dropped if too many
// frames are waiting. Frames injected while no frontend is connected are
// dropped too.
func (nb *Netback) Inject(frame []byte) error {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	s := nb.sess
	if s == nil {
		nb.stats.RxDropped++
		return ErrNetbackNotConnected
	}
	if len(nb.pending) >= nb.cfg.QueueLen {
		nb.stats.RxDropped++
		return nil
	}
	nb.pending = append(nb.pending, bytes.Clone(frame))
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// InjectRxResponses writes raw receive responses into the ring, answering
// whatever requests are outstanding or not, and notifies: the way to test a
// frontend against a backend that misbehaves. The ring is unusable
// afterwards.
func (nb *Netback) InjectRxResponses(rs ...netif.RxResponse) error {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	s := nb.sess
	if s == nil {
		return ErrNetbackNotConnected
	}
	h := s.rx.Shared()
	prod := h.RspProd()
	n := uint32(s.rx.Size())
	for _, r := range rs {
		off := sring.HeaderSize + int(prod&(n-1))*netif.RxSlotSize
		r.Put(s.rxMem[off : off+netif.RxSlotSize])
		prod++
	}
	h.SetRspProd(prod)
	nb.stats.Notifies++
	return s.port.Notify()
}

// InjectTxResponse does the same on the transmit ring.
func (nb *Netback) InjectTxResponse(r netif.TxResponse) error {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	s := nb.sess
	if s == nil {
		return ErrNetbackNotConnected
	}
	h := s.tx.Shared()
	prod := h.RspProd()
	off := sring.HeaderSize + int(prod&uint32(s.tx.Size()-1))*netif.TxSlotSize
	r.Put(s.txMem[off : off+netif.TxSlotSize])
	h.SetRspProd(prod + 1)
	nb.stats.Notifies++
	return s.port.Notify()
}

// HoldTx stops the backend from consuming transmit requests until
// ReleaseTx, as a busy or stalled netback would: the guest's frames stay
// in flight.
func (nb *Netback) HoldTx() {
	nb.mu.Lock()
	nb.holdTx = true
	nb.mu.Unlock()
}

// ReleaseTx undoes HoldTx.
func (nb *Netback) ReleaseTx() {
	nb.mu.Lock()
	nb.holdTx = false
	s := nb.sess
	nb.mu.Unlock()
	if s != nil {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Disconnect makes the backend give up on the device while the frontend
// is connected, as when the toolstack detaches it.
func (nb *Netback) Disconnect() error {
	nb.disconnect()
	return nb.be.SetState(xen.StateClosing)
}

func (nb *Netback) readKeys(be *Backend) map[string]string {
	keys := map[string]string{}
	for _, k := range []string{"tx-ring-ref", "rx-ring-ref", "event-channel", "event-channel-tx", "event-channel-rx",
		"request-rx-copy", "feature-rx-notify", "feature-no-csum-offload", "feature-sg", "feature-gso-tcpv4",
		"feature-gso-tcpv6", "multi-queue-num-queues", "feature-ctrl-ring", "request-multicast-control"} {
		if v, err := be.ReadFrontend(k); err == nil {
			keys[k] = v
		}
	}
	return keys
}

// connect is netback's connect_data_rings and connect: map both rings,
// bind the event channel, check the frontend asked for what we can give.
func (nb *Netback) connect(be *Backend) error {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	if nb.sess != nil {
		return nb.violation("connect while connected")
	}
	keys := nb.readKeys(be)
	nb.frontCfg = keys
	if keys["request-rx-copy"] != "1" {
		return nb.violation("request-rx-copy %q: only copying receive is supported", keys["request-rx-copy"])
	}
	if v, ok := keys["multi-queue-num-queues"]; ok && v != "1" {
		return nb.violation("multi-queue-num-queues %q not simulated", v)
	}
	if _, split := keys["event-channel-tx"]; split {
		return nb.violation("split event channels not simulated")
	}
	ref := func(k string) (uint32, error) {
		n, err := strconv.ParseUint(keys[k], 10, 32)
		if err != nil {
			return 0, nb.violation("%s %q", k, keys[k])
		}
		return uint32(n), nil
	}
	txRef, err := ref("tx-ring-ref")
	if err != nil {
		return err
	}
	rxRef, err := ref("rx-ring-ref")
	if err != nil {
		return err
	}
	evtchn, err := ref("event-channel")
	if err != nil {
		return err
	}
	s := &netSession{kick: make(chan struct{}, 1), done: make(chan struct{})}
	fail := func(err error) error {
		for _, m := range s.maps {
			m.Unmap()
		}
		if s.port != nil {
			s.port.Close()
		}
		return err
	}
	for i, r := range []uint32{txRef, rxRef} {
		m, err := nb.h.MapGrant(nb.cfg.Back, nb.cfg.Front, r, false)
		if err != nil {
			return fail(nb.violation("map ring ref %d: %v", r, err))
		}
		s.maps = append(s.maps, m)
		if i == 0 {
			s.txMem = m.Data
		} else {
			s.rxMem = m.Data
		}
	}
	if s.tx, err = sring.NewBack(s.txMem, netif.TxSlotSize); err != nil {
		return fail(nb.violation("tx ring: %v", err))
	}
	if s.rx, err = sring.NewBack(s.rxMem, netif.RxSlotSize); err != nil {
		return fail(nb.violation("rx ring: %v", err))
	}
	if s.port, err = nb.h.Domain(nb.cfg.Back).BindInterdomain(nb.cfg.Front, xen.Port(evtchn)); err != nil {
		return fail(nb.violation("bind event channel %d: %v", evtchn, err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	nb.sess = s
	nb.pending = nil
	nb.stats.Connects++
	go nb.events(ctx, s)
	go nb.serve(ctx, s)
	return nil
}

// disconnect is netback's xenvif_disconnect: stop, unmap, unbind.
func (nb *Netback) disconnect() {
	nb.mu.Lock()
	s := nb.sess
	nb.sess = nil
	nb.pending = nil
	nb.mu.Unlock()
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
	nb.mu.Lock()
	defer nb.mu.Unlock()
	for _, m := range s.maps {
		m.Unmap()
	}
	s.port.Close()
	nb.stats.Disconnects++
}

// events turns event-channel notifications into kicks.
func (nb *Netback) events(ctx context.Context, s *netSession) {
	for s.port.Wait(ctx) == nil {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// serve is the backend's thread: transmit what the guest queued, deliver
// what waits for it, sleep until kicked.
func (nb *Netback) serve(ctx context.Context, s *netSession) {
	defer close(s.done)
	for {
		frames, broken := nb.work(s)
		if nb.cfg.Tx != nil {
			for _, f := range frames {
				nb.cfg.Tx(f)
			}
		}
		if broken {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
	}
}

// work does one round under the lock; it returns the frames transmitted
// and whether the rings are broken.
func (nb *Netback) work(s *netSession) ([][]byte, bool) {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	var frames [][]byte
	for {
		f, more, err := nb.transmitLocked(s)
		frames = append(frames, f...)
		if err != nil {
			return frames, true
		}
		rxMore, err := nb.receiveLocked(s)
		if err != nil {
			return frames, true
		}
		if !more && !rxMore {
			return frames, false
		}
	}
}

// transmitLocked consumes the guest's transmit requests.
func (nb *Netback) transmitLocked(s *netSession) ([][]byte, bool, error) {
	if nb.holdTx {
		return nil, false, nil
	}
	slot := make([]byte, netif.TxSlotSize)
	var frames [][]byte
	var rsps []netif.TxResponse
	for {
		ok, err := s.tx.NextRequest(slot)
		if err != nil {
			nb.violation("tx ring: %v", err)
			return frames, false, err
		}
		if !ok {
			break
		}
		nb.stats.TxSlots++
		r := netif.ParseTxRequest(slot)
		status := int16(netif.RspOkay)
		frame, chain, err := nb.txPacketLocked(s, r)
		if err != nil {
			nb.violation("%v", err)
			status = netif.RspError
		} else {
			frames = append(frames, frame)
			nb.stats.TxFrames++
		}
		rsps = append(rsps, netif.TxResponse{ID: r.ID, Status: status})
		rsps = append(rsps, chain...)
	}
	for _, r := range rsps {
		if nb.cfg.MangleTx != nil {
			nb.cfg.MangleTx(&r)
		}
		b, err := s.tx.NextResponse()
		if err != nil {
			nb.violation("tx response: %v", err)
			return frames, false, err
		}
		r.Put(b)
	}
	if len(rsps) > 0 && s.tx.Push() {
		nb.stats.Notifies++
		s.port.Notify()
	}
	more, err := s.tx.FinalCheck()
	if err != nil {
		nb.violation("tx ring: %v", err)
	}
	return frames, more, err
}

// txPacketLocked reads the packet whose first slot is r, consuming the
// extra-info slots that follow it and returning their responses.
func (nb *Netback) txPacketLocked(s *netSession, r netif.TxRequest) ([]byte, []netif.TxResponse, error) {
	var chain []netif.TxResponse
	slot := make([]byte, netif.TxSlotSize)
	if r.Flags&netif.TxExtraInfo != 0 {
		for {
			ok, err := s.tx.NextRequest(slot)
			if err != nil || !ok {
				return nil, chain, fmt.Errorf("tx extra info missing")
			}
			chain = append(chain, netif.TxResponse{Status: netif.RspNull})
			if netif.ParseExtra(slot).Flags&netif.ExtraFlagMore == 0 {
				break
			}
		}
	}
	if r.Flags&netif.TxMoreData != 0 {
		return nil, chain, fmt.Errorf("multi-slot tx packet (not simulated; netfront sends none)")
	}
	n := int(r.Size)
	if n < 14 {
		return nil, chain, fmt.Errorf("tx frame of %d bytes", n)
	}
	if int(r.Offset)+n > xen.PageSize {
		return nil, chain, fmt.Errorf("tx slot crosses the page: offset %d size %d", r.Offset, n)
	}
	frame := make([]byte, n)
	if err := nb.h.CopyFromGrant(nb.cfg.Back, nb.cfg.Front, r.Gref, int(r.Offset), frame); err != nil {
		return nil, chain, fmt.Errorf("tx grant %d: %v", r.Gref, err)
	}
	return frame, chain, nil
}

// receiveLocked delivers waiting frames while the guest has buffers.
func (nb *Netback) receiveLocked(s *netSession) (bool, error) {
	slot := make([]byte, netif.RxSlotSize)
	delivered := false
	for len(nb.pending) > 0 {
		f := nb.pending[0]
		need := 1
		if nb.cfg.SplitRx > 0 {
			need = (len(f) + nb.cfg.SplitRx - 1) / nb.cfg.SplitRx
		}
		if nb.cfg.RxExtra {
			need++
		}
		for len(s.rxReqs) < need {
			ok, err := s.rx.NextRequest(slot)
			if err != nil {
				nb.violation("rx ring: %v", err)
				return false, err
			}
			if !ok {
				break
			}
			s.rxReqs = append(s.rxReqs, netif.ParseRxRequest(slot))
		}
		if len(s.rxReqs) < need {
			break // wait for buffers (feature-rx-notify)
		}
		nb.pending = nb.pending[1:]
		if err := nb.deliverLocked(s, f); err != nil {
			nb.violation("%v", err)
		}
		delivered = true
	}
	if delivered && s.rx.Push() {
		nb.stats.Notifies++
		s.port.Notify()
	}
	more, err := s.rx.FinalCheck()
	if err != nil {
		nb.violation("rx ring: %v", err)
		return false, err
	}
	return more && len(nb.pending) > 0, nil
}

// deliverLocked copies f into the guest's posted buffers.
func (nb *Netback) deliverLocked(s *netSession, f []byte) error {
	if nb.cfg.CsumBlank {
		f = csumPartial(f)
	}
	chunk := len(f)
	if nb.cfg.SplitRx > 0 {
		chunk = nb.cfg.SplitRx
	}
	var firstErr error
	for off, i := 0, 0; off < len(f) || i == 0; i++ {
		n := min(chunk, len(f)-off)
		req := s.rxReqs[0]
		s.rxReqs = s.rxReqs[1:]
		rsp := netif.RxResponse{ID: req.ID, Offset: uint16(nb.cfg.RxOffset), Status: int16(n)}
		if nb.cfg.RxOffset+n > xen.PageSize {
			rsp.Offset = 0
		}
		if err := nb.h.CopyToGrant(nb.cfg.Back, nb.cfg.Front, req.Gref, int(rsp.Offset), f[off:off+n]); err != nil {
			rsp.Status = netif.RspError
			if firstErr == nil {
				firstErr = fmt.Errorf("rx grant %d: %v", req.Gref, err)
			}
		}
		if off+n < len(f) {
			rsp.Flags |= netif.RxMoreData
		}
		if i == 0 {
			if nb.cfg.CsumBlank {
				rsp.Flags |= netif.RxCsumBlank | netif.RxDataValidated
			}
			if nb.cfg.RxExtra {
				rsp.Flags |= netif.RxExtraInfo
			}
		}
		if nb.cfg.MangleRx != nil {
			nb.cfg.MangleRx(&rsp)
		}
		b, err := s.rx.NextResponse()
		if err != nil {
			return err
		}
		rsp.Put(b)
		nb.stats.RxSlots++
		if i == 0 && nb.cfg.RxExtra {
			s.rxReqs = s.rxReqs[1:] // the extra slot uses no buffer
			b, err := s.rx.NextResponse()
			if err != nil {
				return err
			}
			netif.GSO(1448, netif.ExtraTypeGSO, 0).Put(b)
			nb.stats.RxSlots++
		}
		off += n
	}
	nb.stats.RxFrames++
	return firstErr
}

// csumPartial returns a copy of an IPv4 UDP frame whose checksum field
// holds only the folded pseudo-header sum, as Linux leaves a
// CHECKSUM_PARTIAL packet; other frames are returned as they are.
func csumPartial(f []byte) []byte {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 || f[14+9] != 17 {
		return f
	}
	f = bytes.Clone(f)
	ip := f[14:]
	ihl := int(ip[0]&15) * 4
	if len(ip) < ihl+8 {
		return f
	}
	udp := ip[ihl:]
	n := int(binary.BigEndian.Uint16(udp[4:6]))
	var s uint32
	for i := 12; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	s += 17 + uint32(n)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	binary.BigEndian.PutUint16(udp[6:8], uint16(s))
	return f
}
