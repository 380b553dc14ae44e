package nettest

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// DHCPServer is a fake DHCPv4 server: it hands out addresses from a pool,
// one per client MAC, and sends every option it is configured with (it
// ignores the parameter request list, as many servers do for options they
// were told to send). Replies are broadcast to port 68.
type DHCPServer struct {
	// Listen binds the server port, e.g. Station.Listen.
	Listen func(port uint16) (ipv4.PacketConn, error)
	// ServerID is option 54 (the server's address).
	ServerID netip.Addr
	// Subnet is the network handed out; Pool is the first address.
	Subnet netip.Prefix
	Pool   netip.Addr
	// Router and DNS are options 3 and 6 (omitted when zero).
	Router netip.Addr
	DNS    []netip.Addr
	// NextServer is siaddr, BootFile the BOOTP file field.
	NextServer netip.Addr
	BootFile   string
	// Options are sent as they are (66, 67, 150, 209…), replacing any
	// of the above.
	Options map[uint8][]byte
	// LeaseTime is option 51 (default one hour).
	LeaseTime time.Duration
	// NoMask leaves out option 1.
	NoMask bool

	// IgnoreDiscovers drops that many DISCOVERs first; IgnoreRequests
	// the same for REQUESTs; NakRequests answers that many REQUESTs
	// with a NAK.
	IgnoreDiscovers, IgnoreRequests, NakRequests int
	// Mangle, if set, may change each reply before it is sent.
	Mangle func(reply *dhcpv4.DHCPv4)

	mu     sync.Mutex
	conn   ipv4.PacketConn
	cancel context.CancelFunc
	done   chan struct{}
	leases map[string]netip.Addr
	next   netip.Addr
	stats  DHCPStats
}

// DHCPStats records what the server saw.
type DHCPStats struct {
	Discovers, Requests, Offers, Acks, Naks int
	// Last is the last message a client sent.
	Last *dhcpv4.DHCPv4
}

// Start binds port 67 and serves until Close.
func (s *DHCPServer) Start() error {
	conn, err := s.Listen(67)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.conn, s.cancel, s.done = conn, cancel, make(chan struct{})
	s.leases = make(map[string]netip.Addr)
	s.next = s.Pool
	s.mu.Unlock()
	go s.serve(ctx)
	return nil
}

// Close stops the server.
func (s *DHCPServer) Close() {
	s.mu.Lock()
	cancel, conn, done := s.cancel, s.conn, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		conn.Close()
		<-done
	}
}

// Stats returns a copy of the statistics.
func (s *DHCPServer) Stats() DHCPStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// LeaseOf returns the address given to mac, if any.
func (s *DHCPServer) LeaseOf(mac [6]byte) (netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.leases[string(mac[:])]
	return a, ok
}

func (s *DHCPServer) serve(ctx context.Context) {
	defer close(s.done)
	buf := make([]byte, 2048)
	for {
		n, _, err := s.conn.ReadFrom(ctx, buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ipv4.ErrClosed) || errors.Is(err, ErrClosed) {
				return
			}
			continue
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootRequest || len(m.ClientHWAddr) != 6 {
			continue
		}
		if reply := s.handle(m); reply != nil {
			if s.Mangle != nil {
				s.Mangle(reply)
			}
			s.conn.WriteTo(ctx, reply.ToBytes(), netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), 68))
		}
	}
}

func (s *DHCPServer) handle(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Last = m
	mac := string(m.ClientHWAddr)
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		s.stats.Discovers++
		if s.IgnoreDiscovers > 0 {
			s.IgnoreDiscovers--
			return nil
		}
		a, ok := s.leases[mac]
		if !ok {
			a = s.next
			s.next = s.next.Next()
			s.leases[mac] = a
		}
		s.stats.Offers++
		return s.reply(m, dhcpv4.MessageTypeOffer, a)
	case dhcpv4.MessageTypeRequest:
		s.stats.Requests++
		if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(net.IP(s.ServerID.AsSlice())) {
			return nil // the client chose another server
		}
		if s.IgnoreRequests > 0 {
			s.IgnoreRequests--
			return nil
		}
		a, ok := s.leases[mac]
		req, _ := netip.AddrFromSlice(m.RequestedIPAddress())
		if s.NakRequests > 0 || !ok || req.Unmap() != a {
			if s.NakRequests > 0 {
				s.NakRequests--
			}
			s.stats.Naks++
			r := s.reply(m, dhcpv4.MessageTypeNak, netip.IPv4Unspecified())
			r.UpdateOption(dhcpv4.OptMessage("no such lease"))
			return r
		}
		s.stats.Acks++
		return s.reply(m, dhcpv4.MessageTypeAck, a)
	}
	return nil
}

func ip(a netip.Addr) net.IP {
	if !a.IsValid() {
		return net.IPv4zero
	}
	return net.IP(a.AsSlice())
}

func (s *DHCPServer) reply(m *dhcpv4.DHCPv4, typ dhcpv4.MessageType, yi netip.Addr) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        m.HWType,
		TransactionID: m.TransactionID,
		Flags:         m.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    ip(yi),
		ServerIPAddr:  ip(s.NextServer),
		GatewayIPAddr: net.IPv4zero,
		ClientHWAddr:  m.ClientHWAddr,
		BootFileName:  s.BootFile,
		Options:       make(dhcpv4.Options),
	}
	r.UpdateOption(dhcpv4.OptMessageType(typ))
	r.UpdateOption(dhcpv4.OptServerIdentifier(ip(s.ServerID)))
	if typ != dhcpv4.MessageTypeNak {
		lt := s.LeaseTime
		if lt == 0 {
			lt = time.Hour
		}
		r.UpdateOption(dhcpv4.OptIPAddressLeaseTime(lt))
		if !s.NoMask {
			r.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(s.Subnet.Bits(), 32)))
		}
		if s.Router.IsValid() {
			r.UpdateOption(dhcpv4.OptRouter(ip(s.Router)))
		}
		if len(s.DNS) > 0 {
			var b []byte
			for _, d := range s.DNS {
				b = append(b, d.AsSlice()...)
			}
			r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionDomainNameServer, b))
		}
		for code, v := range s.Options {
			r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(code), v))
		}
	}
	return r
}

// XID returns the transaction id of a message, for tests.
func XID(m *dhcpv4.DHCPv4) uint32 { return binary.BigEndian.Uint32(m.TransactionID[:]) }
