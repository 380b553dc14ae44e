// Package tcp gives the boot stack TCP by running gVisor's netstack
// (gvisor.dev/gvisor/pkg/tcpip) on top of package ipv4: ipv4.Stack keeps the
// device, ARP, routing and the address DHCP gave, and passes the TCP packets
// addressed to it to a gVisor stack that has one IP-level NIC (no link
// header, no ARP of its own) with the same address. What gVisor sends comes
// back through ipv4.Stack.SendIP.
//
// TCP is not written by hand here: congestion control, retransmission,
// window scaling, SACK and the state machine are exactly what a well-tested
// stack is for, and gVisor's is the one Go has (the issue names it, and
// design/anchors.md §4 chooses it). DHCP and TFTP stay on our own UDP.
package tcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	gvipv4 "gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	gvtcp "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
)

// ProtocolTCP is TCP's IP protocol number (RFC 793).
const ProtocolTCP = 6

const nic tcpip.NICID = 1

// ErrClosed: the stack was closed.
var ErrClosed = errors.New("tcp: closed")

// Stack is TCP over one configured ipv4.Stack.
type Stack struct {
	ip   *ipv4.Stack
	gv   *stack.Stack
	link *channel.Endpoint
	addr netip.Addr

	cancel context.CancelFunc
	done   chan struct{}

	sendErrs atomic.Uint64

	mu     sync.Mutex
	closed bool
}

// queueLen is how many outbound packets wait for the sending goroutine.
const queueLen = 512

// New starts TCP on ip, which must have its address (after DHCP).
func New(ip *ipv4.Stack) (*Stack, error) {
	addr := ip.Addr()
	if !addr.IsValid() {
		return nil, fmt.Errorf("tcp: %w", ipv4.ErrNoAddress)
	}
	gv := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{gvipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{gvtcp.NewProtocol},
	})
	sack := tcpip.TCPSACKEnabled(true)
	if err := gv.SetTransportProtocolOption(gvtcp.ProtocolNumber, &sack); err != nil {
		gv.Destroy()
		return nil, fmt.Errorf("tcp: enable SACK: %s", err)
	}
	link := channel.New(queueLen, uint32(ip.MTU()), "")
	if err := gv.CreateNIC(nic, link); err != nil {
		gv.Destroy()
		return nil, fmt.Errorf("tcp: create NIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          gvipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(addr.Addr().As4()).WithPrefix(),
	}
	pa.AddressWithPrefix.PrefixLen = addr.Bits()
	if err := gv.AddProtocolAddress(nic, pa, stack.AddressProperties{}); err != nil {
		gv.Destroy()
		return nil, fmt.Errorf("tcp: address %v: %s", addr, err)
	}
	// Everything leaves through the one NIC; ipv4.Stack picks the next
	// hop (router or on-link) itself.
	gv.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nic}})

	ctx, cancel := context.WithCancel(context.Background())
	s := &Stack{ip: ip, gv: gv, link: link, addr: addr.Addr(), cancel: cancel, done: make(chan struct{})}
	if err := ip.HandleIP(ProtocolTCP, s.input); err != nil {
		cancel()
		gv.Destroy()
		return nil, err
	}
	go s.output(ctx)
	return s, nil
}

// input hands one received TCP packet (IP header included) to gVisor, which
// verifies it; the copy is gVisor's.
func (s *Stack) input(packet []byte) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		Payload: buffer.MakeWithData(append([]byte(nil), packet...)),
	})
	s.link.InjectInbound(gvipv4.ProtocolNumber, pkt)
	pkt.DecRef()
}

// output sends what gVisor queued until ctx ends. A packet that cannot be
// sent is dropped, as a NIC drops it: TCP retransmits.
func (s *Stack) output(ctx context.Context) {
	defer close(s.done)
	for {
		pkt := s.link.ReadContext(ctx)
		if pkt == nil {
			return
		}
		var b []byte
		for _, v := range pkt.AsSlices() {
			b = append(b, v...)
		}
		pkt.DecRef()
		if err := s.ip.SendIP(ctx, b); err != nil {
			s.sendErrs.Add(1)
		}
	}
}

// SendErrors counts outbound packets the IP stack refused (no ARP reply,
// link down).
func (s *Stack) SendErrors() uint64 { return s.sendErrs.Load() }

func fullAddr(a netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: nic, Addr: tcpip.AddrFrom4(a.Addr().As4()), Port: a.Port()}
}

// Dial opens a connection to to, bounded by ctx.
func (s *Stack) Dial(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
	if !to.Addr().Is4() || to.Port() == 0 {
		return nil, fmt.Errorf("tcp: dial %v: %w", to, ipv4.ErrBadAddress)
	}
	if s.isClosed() {
		return nil, ErrClosed
	}
	c, err := gonet.DialContextTCP(ctx, s.gv, fullAddr(to), gvipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("tcp: dial %v: %w", to, err)
	}
	return c, nil
}

// Listen accepts connections on port (tests use it for a server on the
// simulated wire).
func (s *Stack) Listen(port uint16) (net.Listener, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	l, err := gonet.ListenTCP(s.gv, fullAddr(netip.AddrPortFrom(s.addr, port)), gvipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen %d: %w", port, err)
	}
	return l, nil
}

func (s *Stack) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close aborts every connection, stops the stack and detaches it from
// the IP stack, which goes on working.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	// Endpoints are aborted first, so that their resets still leave
	// (briefly waited for), then nothing more is received or sent.
	s.gv.Destroy()
	for deadline := time.Now().Add(200 * time.Millisecond); s.link.NumQueued() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	s.ip.HandleIP(ProtocolTCP, nil)
	s.cancel()
	<-s.done
	s.gv.RemoveNIC(nic)
	s.link.Close()
	return nil
}
