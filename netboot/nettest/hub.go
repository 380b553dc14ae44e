// Package nettest holds the network boot's test infrastructure: a simulated
// Ethernet segment (Hub) whose ports are ipv4.Links, with a hook to drop,
// duplicate or reorder frames; an adapter that makes a host UDP socket an
// ipv4.PacketConn (to run clients against real servers on loopback); and fake
// DHCP and TFTP servers that run over either.
//
// Nothing here runs in the bootloader. The fakes are tested themselves
// (nettest_test.go), the TFTP server against busybox's tftp client.
package nettest

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
)

// ErrClosed is returned by a closed Port.
var ErrClosed = errors.New("nettest: port closed")

// Fault decides what becomes of a frame a port sent: the frames returned are
// delivered (none: dropped; the same twice: duplicated). It may keep a frame
// and return it later with another, to reorder. It runs under the hub's
// lock, one frame at a time.
type Fault func(from *Port, frame []byte) [][]byte

// Hub is a simulated Ethernet segment: every frame a port sends is delivered
// to every other port, as an unlearned bridge floods. Receivers filter by
// MAC, as a NIC does.
type Hub struct {
	mu    sync.Mutex
	ports []*Port
	fault Fault
}

// NewHub returns an empty segment.
func NewHub() *Hub { return &Hub{} }

// SetFault installs (or, with nil, removes) the fault hook.
func (h *Hub) SetFault(f Fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fault = f
}

// QueueLen is how many frames a port holds before it drops, like a NIC ring.
const QueueLen = 1024

// NewPort attaches a port with the given MAC and MTU.
func (h *Hub) NewPort(mac [6]byte, mtu int) *Port {
	p := &Port{hub: h, mac: mac, mtu: mtu, q: make(chan []byte, QueueLen), closed: make(chan struct{})}
	h.mu.Lock()
	h.ports = append(h.ports, p)
	h.mu.Unlock()
	return p
}

// Port is one station on a Hub; it implements ipv4.Link.
type Port struct {
	hub     *Hub
	mac     [6]byte
	mtu     int
	q       chan []byte
	closed  chan struct{}
	once    sync.Once
	sent    atomic.Int64
	dropped atomic.Int64
}

var _ ipv4.Link = (*Port)(nil)

// MTU implements ipv4.Link.
func (p *Port) MTU() int { return p.mtu }

// MAC implements ipv4.Link.
func (p *Port) MAC() [6]byte { return p.mac }

// Sent is the number of frames this port sent.
func (p *Port) Sent() int64 { return p.sent.Load() }

// Dropped is the number of frames lost because this port's queue was full.
func (p *Port) Dropped() int64 { return p.dropped.Load() }

// Send implements ipv4.Link.
func (p *Port) Send(ctx context.Context, frame []byte) error {
	select {
	case <-p.closed:
		return ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.sent.Add(1)
	h := p.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	out := [][]byte{bytes.Clone(frame)}
	if h.fault != nil {
		out = h.fault(p, out[0])
	}
	for _, f := range out {
		for _, q := range h.ports {
			if q == p {
				continue
			}
			select {
			case <-q.closed:
			case q.q <- bytes.Clone(f):
			default:
				q.dropped.Add(1)
			}
		}
	}
	return nil
}

// Recv implements ipv4.Link.
func (p *Port) Recv(ctx context.Context) ([]byte, error) {
	select {
	case <-p.closed:
		return nil, ErrClosed
	default:
	}
	select {
	case f := <-p.q:
		return f, nil
	case <-p.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close detaches the port: Send and Recv fail from now on.
func (p *Port) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// UDPInfo is what a Fault needs to know about a frame carrying UDP.
type UDPInfo struct {
	Src, Dst netip.AddrPort
	Payload  []byte
}

// ParseUDPFrame decodes an Ethernet/IPv4/UDP frame, for Fault hooks.
func ParseUDPFrame(frame []byte) (UDPInfo, bool) {
	eh, p, err := ipv4.ParseEthernet(frame)
	if err != nil || eh.Type != ipv4.EtherTypeIPv4 {
		return UDPInfo{}, false
	}
	h, p, err := ipv4.ParseIPv4(p)
	if err != nil || h.Protocol != ipv4.ProtocolUDP {
		return UDPInfo{}, false
	}
	u, payload, err := ipv4.ParseUDP(h.Src, h.Dst, p)
	if err != nil {
		return UDPInfo{}, false
	}
	return UDPInfo{Src: netip.AddrPortFrom(h.Src, u.SrcPort), Dst: netip.AddrPortFrom(h.Dst, u.DstPort), Payload: payload}, true
}

// Station is a port with a stack on it, for tests that need a host on the
// segment (a server, a rogue).
type Station struct {
	Port  *Port
	Stack *ipv4.Stack
}

// NewStation attaches a port and starts a stack on it, configured with addr
// if it is valid.
func (h *Hub) NewStation(mac [6]byte, addr netip.Prefix) (*Station, error) {
	p := h.NewPort(mac, 1500)
	s, err := ipv4.New(p, ipv4.Config{})
	if err != nil {
		return nil, err
	}
	if addr.IsValid() {
		if err := s.Configure(addr, netip.Addr{}); err != nil {
			s.Close()
			return nil, err
		}
	}
	return &Station{Port: p, Stack: s}, nil
}

// Listen binds a UDP port of the station's stack, as the fake servers take
// it.
func (s *Station) Listen(port uint16) (ipv4.PacketConn, error) {
	return s.Stack.ListenUDP(port)
}

// Close stops the stack and detaches the port.
func (s *Station) Close() {
	s.Stack.Close()
	s.Port.Close()
}
