// Package ipv4 is a small hand-written Ethernet, ARP, IPv4, UDP and ICMP-echo
// stack over a Link (one network device), enough for DHCP and TFTP boot.
// It exposes UDP through UDPConn, a PacketConn whose reads and writes are
// bounded by a context.
//
// It is hand-written rather than gVisor's netstack (gvisor.dev/gvisor/pkg/tcpip)
// because network boot over DHCP and TFTP needs only ARP, unfragmented IPv4
// and UDP: a few hundred lines we can fuzz and read completely, instead of some
// forty gVisor packages (with runtime linkname hacks in its pkg/sync) inside the
// bootloader's DHCP and TFTP path. TCP, which HTTP boot needs and which is
// far too subtle to write again, is gVisor's: package tcp runs a gVisor stack
// on top of this one through HandleIP and SendIP, so ARP, routing and the
// address stay in one place.
//
// What it does (RFC 791, 768, 792, 826, 1122 where it applies to a host that
// only boots):
//   - Ethernet II frames addressed to the device's MAC or broadcast; VLAN tags,
//     multicast and other EtherTypes are dropped and counted.
//   - ARP: answers requests for our address, resolves next hops with bounded
//     retries, and keeps a small bounded cache. Unsolicited replies are not
//     cached (only answers to our own requests, and requests aimed at us).
//   - IPv4: header checksum verified; options skipped; fragments dropped and
//     counted (the stack never fragments and sets DF); no forwarding. Before an
//     address is configured (during DHCP) any unicast IP packet sent to our MAC
//     and limited broadcasts are accepted, as a DHCP client must.
//   - UDP: checksum verified when present, always sent; ports bound by ListenUDP.
//   - ICMP: echo requests to our address are answered; destination-unreachable
//     messages about our UDP datagrams are passed to the sending UDPConn as an
//     *UnreachableError, so that a client can report a server that is gone.
//
// Everything received is untrusted: every length is checked before use, and
// a malformed frame is counted (Stats) and dropped, never a panic.
package ipv4

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Link is one Ethernet device: a Xen netfront in the bootloader, a simulated
// wire in tests.
type Link interface {
	// MTU is the largest IP packet (Ethernet payload) the device carries.
	MTU() int
	// MAC is the device's Ethernet address.
	MAC() [6]byte
	// Send transmits one Ethernet frame (header included, no FCS). The
	// device does not keep frame after Send returns.
	Send(ctx context.Context, frame []byte) error
	// Recv returns the next received frame, which then belongs to the
	// caller, or an error once ctx is done or the device has failed.
	Recv(ctx context.Context) ([]byte, error)
}

// LargeReceiver is a Link that may deliver frames longer than its MTU
// allows: a netfront with receive offload hands over TCP segments of up
// to 64 KiB that dom0 never cut to the MTU (GSO).
type LargeReceiver interface {
	// MaxReceive is the longest frame (Ethernet header included) Recv
	// returns.
	MaxReceive() int
}

// PacketConn is a UDP endpoint as DHCP and TFTP clients use it. *UDPConn
// implements it; tests can adapt a host socket.
type PacketConn interface {
	// ReadFrom waits for the next datagram and copies it into p
	// (truncating it if p is too short, as a socket does).
	ReadFrom(ctx context.Context, p []byte) (n int, from netip.AddrPort, err error)
	// WriteTo sends one datagram.
	WriteTo(ctx context.Context, p []byte, to netip.AddrPort) error
	// Close releases the port.
	Close() error
}

// Stack errors (besides the parser errors in wire.go).
const (
	// ErrClosed: the stack or the connection was closed.
	ErrClosed = Error("ipv4: closed")
	// ErrPortInUse: ListenUDP was asked for a bound port.
	ErrPortInUse = Error("ipv4: UDP port in use")
	// ErrNoAddress: a unicast destination needs a configured address.
	ErrNoAddress = Error("ipv4: no address configured")
	// ErrNoRoute: the destination is off-link and there is no router.
	ErrNoRoute = Error("ipv4: no route to host")
	// ErrTooBig: the datagram does not fit the MTU (nothing is
	// fragmented).
	ErrTooBig = Error("ipv4: datagram larger than the MTU allows")
	// ErrNoARPReply: the next hop did not answer ARP.
	ErrNoARPReply = Error("ipv4: no ARP reply")
	// ErrBadAddress: an address that cannot be used as asked.
	ErrBadAddress = Error("ipv4: unusable address")
)

// Config tunes a Stack. The zero value gives the defaults.
type Config struct {
	// ARPTimeout is how long one ARP request is waited for (default 1s).
	ARPTimeout time.Duration
	// ARPAttempts is how many requests are sent before giving up
	// (default 3).
	ARPAttempts int
	// ARPCacheSize bounds the cache (default 64 entries).
	ARPCacheSize int
	// ARPLifetime is how long an entry is used (default 10 minutes).
	ARPLifetime time.Duration
	// QueueLen is the number of datagrams a UDPConn holds unread before
	// further ones are dropped (default 256).
	QueueLen int
}

func (c Config) withDefaults() Config {
	if c.ARPTimeout <= 0 {
		c.ARPTimeout = time.Second
	}
	if c.ARPAttempts <= 0 {
		c.ARPAttempts = 3
	}
	if c.ARPCacheSize <= 0 {
		c.ARPCacheSize = 64
	}
	if c.ARPLifetime <= 0 {
		c.ARPLifetime = 10 * time.Minute
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 256
	}
	return c
}

// Stats counts what the stack received, sent and dropped.
type Stats struct {
	RxFrames    uint64 // frames received from the link
	TxFrames    uint64 // frames sent
	NotForUs    uint64 // addressed to another MAC or IP, or multicast
	Malformed   uint64 // failed to parse (short, bad lengths or fields)
	BadChecksum uint64 // IP, UDP or ICMP checksum mismatch
	Fragments   uint64 // IP fragments (dropped: no reassembly)
	Unsupported uint64 // other EtherTypes, IP protocols, ICMP types, VLAN tags
	Oversize    uint64 // longer than MTU plus the Ethernet header (or LargeReceiver's limit)
	NoPort      uint64 // UDP to a port nobody listens on
	QueueFull   uint64 // UDP dropped because the reader lags behind
	ARPReplies  uint64 // ARP replies we sent
	EchoReplies uint64 // ICMP echo replies we sent
	Unreachable uint64 // ICMP unreachable messages passed to a UDPConn
	Handled     uint64 // packets passed to a HandleIP handler (TCP)
}

type counters struct {
	rx, tx, notForUs, malformed, badChecksum, fragments, unsupported,
	oversize, noPort, queueFull, arpReplies, echoReplies, unreachable, handled atomic.Uint64
}

// Stack is the IP stack of one Link. It is safe for concurrent use.
type Stack struct {
	link Link
	mac  HardwareAddr
	mtu  int
	// maxFrame is the longest frame accepted: MTU-sized, or what a
	// LargeReceiver delivers.
	maxFrame int
	cfg      Config

	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the receive loop has ended
	dead   chan struct{} // closed when the stack stops working
	ipID   atomic.Uint32
	st     counters

	sendMu sync.Mutex // serialises link.Send

	mu       sync.Mutex
	addr     netip.Prefix // invalid until Configure
	router   netip.Addr
	arp      map[netip.Addr]arpEntry
	waits    map[netip.Addr]chan struct{}
	conns    map[uint16]*UDPConn
	handlers map[uint8]func(packet []byte)
	nextPort uint16
	err      error // why the stack stopped
}

type arpEntry struct {
	mac     HardwareAddr
	expires time.Time
}

// Ephemeral ports (RFC 6335 dynamic range) handed out by ListenUDP(0).
const (
	firstEphemeral = 49152
	numEphemeral   = 65536 - firstEphemeral
)

// New starts a stack on link: a goroutine receives frames until Close.
// The stack has no address until Configure.
func New(link Link, cfg Config) (*Stack, error) {
	mtu := link.MTU()
	if mtu < 576 || mtu > 65535 {
		return nil, fmt.Errorf("ipv4: link MTU %d outside 576..65535: %w", mtu, ErrBadAddress)
	}
	mac := HardwareAddr(link.MAC())
	if mac.IsMulticast() || mac == (HardwareAddr{}) {
		return nil, fmt.Errorf("ipv4: link MAC %v: %w", mac, ErrBadAddress)
	}
	maxFrame := mtu + EthernetHeaderSize
	if l, ok := link.(LargeReceiver); ok {
		maxFrame = max(maxFrame, min(l.MaxReceive(), 65535+EthernetHeaderSize))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stack{
		link:     link,
		mac:      mac,
		mtu:      mtu,
		maxFrame: maxFrame,
		cfg:      cfg.withDefaults(),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		dead:     make(chan struct{}),
		arp:      make(map[netip.Addr]arpEntry),
		waits:    make(map[netip.Addr]chan struct{}),
		conns:    make(map[uint16]*UDPConn),
		handlers: make(map[uint8]func([]byte)),
		nextPort: uint16(firstEphemeral + rand.IntN(numEphemeral)),
	}
	s.ipID.Store(rand.Uint32())
	go s.loop(ctx)
	return s, nil
}

// MAC is the link's address.
func (s *Stack) MAC() HardwareAddr { return s.mac }

// MTU is the link's MTU.
func (s *Stack) MTU() int { return s.mtu }

// MaxUDPPayload is the largest datagram payload that fits the MTU.
func (s *Stack) MaxUDPPayload() int { return s.mtu - HeaderSize - UDPHeaderSize }

// Configure sets the stack's address and prefix and the default router (an
// invalid Addr for none). It flushes the ARP cache.
func (s *Stack) Configure(addr netip.Prefix, router netip.Addr) error {
	a := addr.Addr()
	if !addr.IsValid() || !a.Is4() || a.IsUnspecified() || a.IsMulticast() ||
		a == limitedBroadcast || addr.Bits() < 1 || (addr.Bits() < 31 && a == directedBroadcast(addr)) {
		return fmt.Errorf("ipv4: configure %v: %w", addr, ErrBadAddress)
	}
	if router.IsValid() && (!router.Is4() || router.IsUnspecified() || router.IsMulticast() || router == limitedBroadcast || router == a) {
		return fmt.Errorf("ipv4: configure router %v: %w", router, ErrBadAddress)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addr = addr
	s.router = router
	clear(s.arp)
	return nil
}

// Addr returns the configured address and prefix (invalid if none).
func (s *Stack) Addr() netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Router returns the configured default router (invalid if none).
func (s *Stack) Router() netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.router
}

// Stats returns a snapshot of the counters.
func (s *Stack) Stats() Stats {
	return Stats{
		RxFrames: s.st.rx.Load(), TxFrames: s.st.tx.Load(),
		NotForUs: s.st.notForUs.Load(), Malformed: s.st.malformed.Load(),
		BadChecksum: s.st.badChecksum.Load(), Fragments: s.st.fragments.Load(),
		Unsupported: s.st.unsupported.Load(), Oversize: s.st.oversize.Load(),
		NoPort: s.st.noPort.Load(), QueueFull: s.st.queueFull.Load(),
		ARPReplies: s.st.arpReplies.Load(), EchoReplies: s.st.echoReplies.Load(),
		Unreachable: s.st.unreachable.Load(), Handled: s.st.handled.Load(),
	}
}

// Err returns why the stack stopped working (the link failed, or Close),
// or nil while it works.
func (s *Stack) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops the receive loop, waits for it to end and closes every
// UDPConn. The link itself is left to its owner.
func (s *Stack) Close() error {
	s.stop(ErrClosed)
	s.cancel()
	<-s.done
	return nil
}

func (s *Stack) stop(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	s.err = err
	close(s.dead)
}

func (s *Stack) loop(ctx context.Context) {
	defer close(s.done)
	for {
		f, err := s.link.Recv(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.stop(fmt.Errorf("ipv4: link receive: %w", err))
			}
			return
		}
		s.input(f)
	}
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// directedBroadcast is the all-ones host address of p's subnet.
func directedBroadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	bits := p.Bits()
	for i := range 4 {
		for b := range 8 {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	return netip.AddrFrom4(a)
}

// input handles one received frame. It is the entry point of every byte a
// peer controls.
func (s *Stack) input(f []byte) {
	s.st.rx.Add(1)
	if len(f) > s.maxFrame {
		s.st.oversize.Add(1)
		return
	}
	eh, p, err := ParseEthernet(f)
	if err != nil {
		s.st.malformed.Add(1)
		return
	}
	if eh.Dst != s.mac && eh.Dst != BroadcastMAC {
		s.st.notForUs.Add(1)
		return
	}
	if eh.Src.IsMulticast() {
		s.st.malformed.Add(1)
		return
	}
	switch eh.Type {
	case EtherTypeARP:
		s.inputARP(p)
	case EtherTypeIPv4:
		s.inputIP(eh, p)
	default:
		s.st.unsupported.Add(1)
	}
}

func (s *Stack) count(err error) {
	switch {
	case errors.Is(err, ErrChecksum):
		s.st.badChecksum.Add(1)
	case errors.Is(err, ErrFragment):
		s.st.fragments.Add(1)
	case errors.Is(err, ErrUnsupported):
		s.st.unsupported.Add(1)
	default:
		s.st.malformed.Add(1)
	}
}

func (s *Stack) inputARP(p []byte) {
	a, err := ParseARP(p)
	if err != nil {
		s.count(err)
		return
	}
	if a.SenderMAC.IsMulticast() || a.SenderMAC == (HardwareAddr{}) {
		s.st.malformed.Add(1)
		return
	}
	s.mu.Lock()
	me := s.addr.Addr()
	forUs := s.addr.IsValid() && a.TargetIP == me
	usable := !a.SenderIP.IsUnspecified() && !a.SenderIP.IsMulticast() && a.SenderIP != limitedBroadcast && a.SenderIP != me
	if usable {
		// RFC 826: update an entry we have; add one when the packet is
		// aimed at us (a request for our address, or the reply to a
		// request of ours, which has a waiter).
		_, known := s.arp[a.SenderIP]
		w, waited := s.waits[a.SenderIP]
		if known || waited || (forUs && a.Op == ARPRequest) {
			s.storeARP(a.SenderIP, a.SenderMAC)
		}
		if waited {
			close(w)
			delete(s.waits, a.SenderIP)
		}
	}
	s.mu.Unlock()
	if a.Op == ARPRequest && forUs {
		reply := ARP{Op: ARPReply, SenderMAC: s.mac, SenderIP: me, TargetMAC: a.SenderMAC, TargetIP: a.SenderIP}
		ctx, cancel := s.replyContext()
		defer cancel()
		if s.sendFrame(ctx, a.SenderMAC, EtherTypeARP, reply.Append(nil)) == nil {
			s.st.arpReplies.Add(1)
		}
	}
}

// replyTimeout bounds how long the receive loop waits for the link to take
// an ARP or echo reply: a stalled device must not stall reception.
const replyTimeout = time.Second

func (s *Stack) replyContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, replyTimeout)
}

// storeARP adds an entry, evicting the one closest to expiry when the cache
// is full. s.mu is held.
func (s *Stack) storeARP(ip netip.Addr, mac HardwareAddr) {
	if _, ok := s.arp[ip]; !ok && len(s.arp) >= s.cfg.ARPCacheSize {
		var victim netip.Addr
		var oldest time.Time
		for k, e := range s.arp {
			if !victim.IsValid() || e.expires.Before(oldest) {
				victim, oldest = k, e.expires
			}
		}
		delete(s.arp, victim)
	}
	s.arp[ip] = arpEntry{mac: mac, expires: time.Now().Add(s.cfg.ARPLifetime)}
}

func (s *Stack) inputIP(eh EthernetHeader, p []byte) {
	h, payload, err := ParseIPv4(p)
	if err != nil {
		s.count(err)
		return
	}
	if h.Src.IsMulticast() || h.Src == limitedBroadcast || h.Dst.IsMulticast() {
		s.st.notForUs.Add(1)
		return
	}
	s.mu.Lock()
	addr := s.addr
	s.mu.Unlock()
	switch {
	case h.Dst == limitedBroadcast:
	case !addr.IsValid():
		// No address yet: a DHCP server may unicast the offer to the
		// address it is offering, at our MAC.
		if eh.Dst != s.mac {
			s.st.notForUs.Add(1)
			return
		}
	case h.Dst == addr.Addr():
	case addr.Bits() < 31 && h.Dst == directedBroadcast(addr):
	default:
		s.st.notForUs.Add(1)
		return
	}
	switch h.Protocol {
	case ProtocolUDP:
		s.inputUDP(h, payload)
	case ProtocolICMP:
		s.inputICMP(eh, h, addr, payload)
	default:
		s.mu.Lock()
		hf := s.handlers[h.Protocol]
		s.mu.Unlock()
		// Other protocols (TCP) are unicast only, to our configured
		// address.
		if hf == nil || !addr.IsValid() || h.Dst != addr.Addr() {
			s.st.unsupported.Add(1)
			return
		}
		s.st.handled.Add(1)
		hf(p[:h.TotalLen])
	}
}

// HandleIP passes every IPv4 packet of protocol proto sent to the
// configured address to h, header included, on the receive goroutine; h
// must not keep the slice. nil removes the handler. UDP and ICMP are the
// stack's own. This is how TCP (package tcp) sits on this stack.
func (s *Stack) HandleIP(proto uint8, h func(packet []byte)) error {
	if proto == ProtocolUDP || proto == ProtocolICMP {
		return fmt.Errorf("ipv4: protocol %d is handled by the stack: %w", proto, ErrBadAddress)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.handlers, proto)
	} else {
		s.handlers[proto] = h
	}
	return nil
}

// SendIP sends an IPv4 packet built elsewhere (header included, checksum
// filled in) from the configured address, resolving the next hop as
// UDPConn.WriteTo does.
func (s *Stack) SendIP(ctx context.Context, packet []byte) error {
	h, _, err := ParseIPv4(packet)
	if err != nil {
		return fmt.Errorf("ipv4: send: %w", err)
	}
	if len(packet) > s.mtu {
		return fmt.Errorf("ipv4: %d-byte packet, MTU %d: %w", len(packet), s.mtu, ErrTooBig)
	}
	src, mac, err := s.route(ctx, h.Dst)
	if err != nil {
		return err
	}
	if h.Src != src {
		return fmt.Errorf("ipv4: send from %v, configured %v: %w", h.Src, src, ErrBadAddress)
	}
	return s.sendFrame(ctx, mac, EtherTypeIPv4, packet[:h.TotalLen])
}

func (s *Stack) inputUDP(h Header, p []byte) {
	u, payload, err := ParseUDP(h.Src, h.Dst, p)
	if err != nil {
		s.count(err)
		return
	}
	s.mu.Lock()
	c := s.conns[u.DstPort]
	s.mu.Unlock()
	if c == nil {
		s.st.noPort.Add(1)
		return
	}
	c.deliver(datagram{from: netip.AddrPortFrom(h.Src, u.SrcPort), data: payload})
}

func (s *Stack) inputICMP(eh EthernetHeader, h Header, addr netip.Prefix, p []byte) {
	m, body, err := ParseICMP(p)
	if err != nil {
		s.count(err)
		return
	}
	switch m.Type {
	case ICMPEchoRequest:
		if m.Code != 0 || !addr.IsValid() || h.Dst != addr.Addr() || h.Src.IsUnspecified() {
			// Broadcast pings are not answered (RFC 1122 allows
			// silence).
			s.st.notForUs.Add(1)
			return
		}
		reply := AppendICMP(nil, ICMP{Type: ICMPEchoReply, Rest: m.Rest}, body)
		ctx, cancel := s.replyContext()
		defer cancel()
		if s.sendIP(ctx, eh.Src, addr.Addr(), h.Src, ProtocolICMP, reply) == nil {
			s.st.echoReplies.Add(1)
		}
	case ICMPUnreachable:
		qh, qu, err := ParseUnreachable(body)
		if err != nil {
			s.count(err)
			return
		}
		if qh.Protocol != ProtocolUDP || (addr.IsValid() && qh.Src != addr.Addr()) {
			s.st.notForUs.Add(1)
			return
		}
		s.mu.Lock()
		c := s.conns[qu.SrcPort]
		s.mu.Unlock()
		if c == nil {
			s.st.noPort.Add(1)
			return
		}
		s.st.unreachable.Add(1)
		c.deliver(datagram{
			from: netip.AddrPortFrom(qh.Dst, qu.DstPort),
			err:  &UnreachableError{Reporter: h.Src, Dst: netip.AddrPortFrom(qh.Dst, qu.DstPort), Code: m.Code},
		})
	default:
		s.st.unsupported.Add(1)
	}
}

// UnreachableError is an ICMP destination-unreachable message about a
// datagram a UDPConn sent; ReadFrom returns it in the datagram's place.
type UnreachableError struct {
	Reporter netip.Addr     // who sent the ICMP message
	Dst      netip.AddrPort // where our datagram was going
	Code     uint8          // ICMP code (3: port unreachable)
}

func (e *UnreachableError) Error() string {
	what := fmt.Sprintf("code %d", e.Code)
	switch e.Code {
	case 0:
		what = "network unreachable"
	case 1:
		what = "host unreachable"
	case ICMPCodePortUnreach:
		what = "port unreachable (nothing listening)"
	case 13:
		what = "administratively prohibited"
	}
	return fmt.Sprintf("ipv4: %v: %s, reported by %v", e.Dst, what, e.Reporter)
}

// sendFrame builds and sends one Ethernet frame, padded to the minimum
// length.
func (s *Stack) sendFrame(ctx context.Context, dst HardwareAddr, typ uint16, payload []byte) error {
	f := make([]byte, 0, max(MinFrame, EthernetHeaderSize+len(payload)))
	f = EthernetHeader{Dst: dst, Src: s.mac, Type: typ}.Append(f)
	f = append(f, payload...)
	for len(f) < MinFrame {
		f = append(f, 0)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if err := s.link.Send(ctx, f); err != nil {
		return fmt.Errorf("ipv4: link send: %w", err)
	}
	s.st.tx.Add(1)
	return nil
}

func (s *Stack) sendIP(ctx context.Context, dstMAC HardwareAddr, src, dst netip.Addr, proto uint8, payload []byte) error {
	if HeaderSize+len(payload) > s.mtu {
		return fmt.Errorf("ipv4: %d-byte packet, MTU %d: %w", HeaderSize+len(payload), s.mtu, ErrTooBig)
	}
	h := Header{ID: uint16(s.ipID.Add(1)), Protocol: proto, Src: src, Dst: dst}
	p := AppendIPv4(make([]byte, 0, HeaderSize+len(payload)), h, len(payload))
	return s.sendFrame(ctx, dstMAC, EtherTypeIPv4, append(p, payload...))
}

// route picks the source address and the next hop's MAC for dst.
func (s *Stack) route(ctx context.Context, dst netip.Addr) (src netip.Addr, mac HardwareAddr, err error) {
	if !dst.Is4() || dst.IsUnspecified() || dst.IsMulticast() || dst.IsLoopback() {
		return src, mac, fmt.Errorf("ipv4: destination %v: %w", dst, ErrBadAddress)
	}
	s.mu.Lock()
	addr, router := s.addr, s.router
	s.mu.Unlock()
	if dst == limitedBroadcast {
		if addr.IsValid() {
			return addr.Addr(), BroadcastMAC, nil
		}
		return netip.IPv4Unspecified(), BroadcastMAC, nil
	}
	if !addr.IsValid() {
		return src, mac, fmt.Errorf("ipv4: send to %v: %w", dst, ErrNoAddress)
	}
	if dst == addr.Addr() {
		return src, mac, fmt.Errorf("ipv4: send to our own address %v: %w", dst, ErrBadAddress)
	}
	if addr.Bits() < 31 && dst == directedBroadcast(addr) {
		return addr.Addr(), BroadcastMAC, nil
	}
	hop := dst
	if !addr.Contains(dst) {
		if !router.IsValid() {
			return src, mac, fmt.Errorf("ipv4: %v is off-link (%v): %w", dst, addr, ErrNoRoute)
		}
		hop = router
	}
	mac, err = s.resolve(ctx, addr.Addr(), hop)
	return addr.Addr(), mac, err
}

// resolve finds hop's MAC, sending ARP requests as needed.
func (s *Stack) resolve(ctx context.Context, me, hop netip.Addr) (HardwareAddr, error) {
	for range s.cfg.ARPAttempts {
		s.mu.Lock()
		if e, ok := s.arp[hop]; ok && time.Now().Before(e.expires) {
			s.mu.Unlock()
			return e.mac, nil
		}
		w := s.waits[hop]
		if w == nil {
			w = make(chan struct{})
			s.waits[hop] = w
		}
		s.mu.Unlock()
		req := ARP{Op: ARPRequest, SenderMAC: s.mac, SenderIP: me, TargetIP: hop}
		if err := s.sendFrame(ctx, BroadcastMAC, EtherTypeARP, req.Append(nil)); err != nil {
			return HardwareAddr{}, err
		}
		t := time.NewTimer(s.cfg.ARPTimeout)
		select {
		case <-w:
			t.Stop()
			s.mu.Lock()
			e, ok := s.arp[hop]
			s.mu.Unlock()
			if ok {
				return e.mac, nil
			}
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return HardwareAddr{}, fmt.Errorf("ipv4: resolving %v: %w", hop, ctx.Err())
		case <-s.dead:
			t.Stop()
			return HardwareAddr{}, s.Err()
		}
	}
	return HardwareAddr{}, fmt.Errorf("ipv4: %v after %d requests: %w", hop, s.cfg.ARPAttempts, ErrNoARPReply)
}

// ListenUDP binds a UDP port; 0 picks a free ephemeral port.
func (s *Stack) ListenUDP(port uint16) (*UDPConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if port == 0 {
		for range numEphemeral {
			p := s.nextPort
			s.nextPort++
			if s.nextPort < firstEphemeral {
				s.nextPort = firstEphemeral
			}
			if s.conns[p] == nil {
				port = p
				break
			}
		}
		if port == 0 {
			return nil, fmt.Errorf("ipv4: no free ephemeral port: %w", ErrPortInUse)
		}
	} else if s.conns[port] != nil {
		return nil, fmt.Errorf("ipv4: UDP port %d: %w", port, ErrPortInUse)
	}
	c := &UDPConn{s: s, port: port, q: make(chan datagram, s.cfg.QueueLen), closed: make(chan struct{})}
	s.conns[port] = c
	return c, nil
}

type datagram struct {
	from netip.AddrPort
	data []byte
	err  error
}

// UDPConn is a bound UDP port. It implements PacketConn and is safe for
// concurrent use.
type UDPConn struct {
	s      *Stack
	port   uint16
	q      chan datagram
	closed chan struct{}
	once   sync.Once
}

var _ PacketConn = (*UDPConn)(nil)

// LocalPort is the bound port.
func (c *UDPConn) LocalPort() uint16 { return c.port }

func (c *UDPConn) deliver(d datagram) {
	select {
	case c.q <- d:
	default:
		c.s.st.queueFull.Add(1)
	}
}

// ReadFrom implements PacketConn. An ICMP unreachable message about a
// datagram we sent from this port is returned as *UnreachableError (with
// n 0); the connection stays usable.
func (c *UDPConn) ReadFrom(ctx context.Context, p []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-c.q:
		if d.err != nil {
			return 0, d.from, d.err
		}
		return copy(p, d.data), d.from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, ErrClosed
	case <-c.s.dead:
		return 0, netip.AddrPort{}, c.s.Err()
	case <-ctx.Done():
		return 0, netip.AddrPort{}, ctx.Err()
	}
}

// WriteTo implements PacketConn: it resolves the next hop (waiting for ARP,
// bounded by ctx and Config) and sends one unfragmented datagram.
func (c *UDPConn) WriteTo(ctx context.Context, p []byte, to netip.AddrPort) error {
	select {
	case <-c.closed:
		return ErrClosed
	case <-c.s.dead:
		return c.s.Err()
	default:
	}
	if to.Port() == 0 {
		return fmt.Errorf("ipv4: send to %v: port 0: %w", to, ErrBadAddress)
	}
	if HeaderSize+UDPHeaderSize+len(p) > c.s.mtu {
		return fmt.Errorf("ipv4: %d-byte UDP payload, MTU %d: %w", len(p), c.s.mtu, ErrTooBig)
	}
	src, mac, err := c.s.route(ctx, to.Addr())
	if err != nil {
		return err
	}
	seg := AppendUDP(make([]byte, 0, UDPHeaderSize+len(p)), src, to.Addr(), UDPHeader{SrcPort: c.port, DstPort: to.Port()}, p)
	return c.s.sendIP(ctx, mac, src, to.Addr(), ProtocolUDP, seg)
}

// Close implements PacketConn: it unbinds the port. Datagrams still queued
// are dropped.
func (c *UDPConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.s.mu.Lock()
		if c.s.conns[c.port] == c {
			delete(c.s.conns, c.port)
		}
		c.s.mu.Unlock()
	})
	return nil
}
