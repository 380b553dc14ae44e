// Package dhcp is a DHCPv4 client (RFC 2131, options RFC 2132) for network
// boot: DISCOVER, OFFER, REQUEST, ACK over an ipv4.PacketConn bound to port
// 68, with retransmission and exponential backoff, transaction-id matching,
// and a NAK sending it back to DISCOVER. It takes the lease once and does not
// renew it: the bootloader is done long before it expires, and the kernel it
// starts runs DHCP again.
//
// Packets are encoded and decoded with github.com/insomniacslk/dhcp/dhcpv4,
// the codec u-root and coredhcp use. Its only use of OS randomness is
// GenerateTransactionID (u-root/uio/rand, getrandom); we never call it and
// draw transaction ids from math/rand/v2, whose generator the Go runtime seeds
// without a syscall. Its nclient4 is not used: it opens raw packet sockets.
// Every field we act on is checked here (ParseReply, NewLease), since the
// server, and anyone else on the segment, is untrusted.
package dhcp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Error is the type of this package's sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Errors.
const (
	// ErrMalformed: a reply that cannot be decoded or holds unusable
	// values.
	ErrMalformed = Error("dhcp: malformed reply")
	// ErrNotForUs: a well-formed message that is not a reply to our
	// transaction.
	ErrNotForUs = Error("dhcp: message for another client or transaction")
	// ErrNoOffer: no server answered the DISCOVERs.
	ErrNoOffer = Error("dhcp: no DHCP offer received")
	// ErrNoAck: the chosen server did not answer the REQUESTs, or kept
	// refusing them (NAK).
	ErrNoAck = Error("dhcp: no DHCP acknowledgement received")
)

// Ports (RFC 2131 §4.1).
const (
	ServerPort = 67
	ClientPort = 68
)

// Config tunes the client. Only MAC is required.
type Config struct {
	// MAC is the link's address (chaddr, and the default client id).
	MAC [6]byte
	// Hostname is sent as option 12 when not empty.
	Hostname string
	// VendorClass is option 60 (default "gopvgrub").
	VendorClass string
	// ClientID is option 61 (default: type 1, Ethernet, and the MAC).
	ClientID []byte
	// MaxMessageSize is option 57 (default 1500, the Ethernet MTU; the
	// smallest allowed is 576).
	MaxMessageSize uint16
	// Timeout is the first retransmission timeout (default 2s); it
	// doubles, with up to a quarter of random jitter, to MaxTimeout
	// (default 16s). RFC 2131 suggests 4s to 64s; a bootloader is
	// more impatient.
	Timeout, MaxTimeout time.Duration
	// Attempts is how many DISCOVERs, and then REQUESTs, are sent
	// (default 5).
	Attempts int
	// Restarts is how many times a NAK or an unanswered REQUEST sends
	// the client back to DISCOVER (default 2).
	Restarts int
	// XID, if set, draws transaction ids (tests).
	XID func() uint32
	// Log, if set, is told about each step (for the console).
	Log func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	if c.VendorClass == "" {
		c.VendorClass = "gopvgrub"
	}
	if c.ClientID == nil {
		c.ClientID = append([]byte{1}, c.MAC[:]...)
	}
	if c.MaxMessageSize < 576 {
		c.MaxMessageSize = 1500
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.MaxTimeout < c.Timeout {
		c.MaxTimeout = max(16*time.Second, c.Timeout)
	}
	if c.Attempts <= 0 {
		c.Attempts = 5
	}
	if c.Restarts < 0 {
		c.Restarts = 0
	} else if c.Restarts == 0 {
		c.Restarts = 2
	}
	if c.XID == nil {
		c.XID = rand.Uint32
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
	return c
}

// Stats counts what an exchange saw, for diagnostics and tests.
type Stats struct {
	Discovers, Requests int // sent, retransmissions included
	Offers, Acks, Naks  int // accepted replies
	Ignored             int // messages not for us, malformed, or from the wrong server
}

// Client runs the DHCP exchange.
type Client struct {
	cfg   Config
	conn  ipv4.PacketConn
	start time.Time
	st    Stats
}

// New returns a client sending and receiving on conn, which must be bound
// to port 68 of a stack without an address.
func New(conn ipv4.PacketConn, cfg Config) *Client {
	return &Client{cfg: cfg.withDefaults(), conn: conn}
}

// Stats returns the counters.
func (c *Client) Stats() Stats { return c.st }

// requested are the options we ask for (option 55).
var requested = []uint8{
	OptSubnetMask, OptRouter, OptDNS, OptHostname, OptDomainName, OptBroadcast,
	OptLeaseTime, OptServerID, OptTFTPServerName, OptBootFileName,
	OptGRUBConfigFile, OptPXEConfigFile, OptPXEPathPrefix,
}

func (c *Client) message(typ dhcpv4.MessageType, xid uint32) *dhcpv4.DHCPv4 {
	m := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        1,
		ClientHWAddr:  net.HardwareAddr(c.cfg.MAC[:]),
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		NumSeconds:    uint16(min(time.Since(c.start)/time.Second, 0xffff)),
		Options:       make(dhcpv4.Options),
	}
	binary.BigEndian.PutUint32(m.TransactionID[:], xid)
	// Ask for broadcast replies: we cannot answer ARP before we have
	// an address (our stack does accept unicast to our MAC, but relays
	// and servers differ).
	m.SetBroadcast()
	m.UpdateOption(dhcpv4.OptMessageType(typ))
	m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(OptParamRequest), requested))
	m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(OptMaxMessageSize), binary.BigEndian.AppendUint16(nil, c.cfg.MaxMessageSize)))
	m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(OptVendorClass), []byte(c.cfg.VendorClass)))
	m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(OptClientID), c.cfg.ClientID))
	if c.cfg.Hostname != "" {
		m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(OptHostname), []byte(c.cfg.Hostname)))
	}
	return m
}

var broadcast = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), ServerPort)

// Acquire runs DISCOVER/OFFER/REQUEST/ACK and returns the checked lease.
// It does not configure the stack; the caller does, with Lease.Addr and
// Lease.Router.
func (c *Client) Acquire(ctx context.Context) (*Lease, error) {
	c.start = time.Now()
	var lastErr error
	for round := 0; round <= c.cfg.Restarts; round++ {
		xid := c.cfg.XID()
		offer, from, err := c.discover(ctx, xid)
		if err != nil {
			return nil, err
		}
		ol, _ := NewLease(offer, from, nil) // checked by discover
		c.cfg.Log("dhcp: offer of %v from %v", ol.Addr.Addr(), ol.ServerID)
		lease, err := c.request(ctx, xid, offer, ol)
		if err == nil {
			c.cfg.Log("dhcp: %v", lease)
			return lease, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		lastErr = err
		c.cfg.Log("dhcp: %v; starting again", err)
	}
	return nil, lastErr
}

// exchange sends m (again after each timeout, with backoff) and feeds every
// datagram from a server port to accept until it returns done.
func (c *Client) exchange(ctx context.Context, m *dhcpv4.DHCPv4, sent *int, accept func(b []byte, from netip.AddrPort) (done bool)) (bool, error) {
	timeout := c.cfg.Timeout
	buf := make([]byte, 2048)
	for range c.cfg.Attempts {
		m.NumSeconds = uint16(min(time.Since(c.start)/time.Second, 0xffff))
		if err := c.conn.WriteTo(ctx, m.ToBytes(), broadcast); err != nil {
			return false, fmt.Errorf("dhcp: send %v: %w", m.MessageType(), err)
		}
		*sent++
		wait := timeout + rand.N(timeout/4+1)
		deadline := time.Now().Add(wait)
		for {
			rctx, cancel := context.WithDeadline(ctx, deadline)
			n, from, err := c.conn.ReadFrom(rctx, buf)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return false, fmt.Errorf("dhcp: waiting for a reply to %v: %w", m.MessageType(), ctx.Err())
				}
				if errors.Is(err, context.DeadlineExceeded) {
					break
				}
				var ue *ipv4.UnreachableError
				if errors.As(err, &ue) {
					continue
				}
				return false, fmt.Errorf("dhcp: receive: %w", err)
			}
			if from.Port() != ServerPort || n == len(buf) {
				c.st.Ignored++
				continue
			}
			if accept(buf[:n], from) {
				return true, nil
			}
		}
		timeout = min(2*timeout, c.cfg.MaxTimeout)
	}
	return false, nil
}

func (c *Client) discover(ctx context.Context, xid uint32) (*dhcpv4.DHCPv4, netip.Addr, error) {
	var offer *dhcpv4.DHCPv4
	var offerFrom netip.Addr
	var why error
	m := c.message(dhcpv4.MessageTypeDiscover, xid)
	c.cfg.Log("dhcp: DISCOVER from %v", ipv4.HardwareAddr(c.cfg.MAC))
	ok, err := c.exchange(ctx, m, &c.st.Discovers, func(b []byte, from netip.AddrPort) bool {
		r, err := ParseReply(b, xid, c.cfg.MAC)
		if err == nil && r.MessageType() != dhcpv4.MessageTypeOffer {
			err = fmt.Errorf("dhcp: %v while waiting for an offer: %w", r.MessageType(), ErrNotForUs)
		}
		if err == nil {
			_, err = NewLease(r, from.Addr(), nil)
		}
		if err != nil {
			c.st.Ignored++
			if !errors.Is(err, ErrNotForUs) {
				why = err
			}
			return false
		}
		c.st.Offers++
		offer, offerFrom = r, from.Addr()
		return true
	})
	if err != nil {
		return nil, netip.Addr{}, err
	}
	if !ok {
		if why != nil {
			return nil, netip.Addr{}, fmt.Errorf("%w after %d DISCOVERs (last reply rejected: %v)", ErrNoOffer, c.st.Discovers, why)
		}
		return nil, netip.Addr{}, fmt.Errorf("%w after %d DISCOVERs", ErrNoOffer, c.st.Discovers)
	}
	return offer, offerFrom, nil
}

func (c *Client) request(ctx context.Context, xid uint32, offer *dhcpv4.DHCPv4, ol *Lease) (*Lease, error) {
	m := c.message(dhcpv4.MessageTypeRequest, xid)
	m.UpdateOption(dhcpv4.OptRequestedIPAddress(ol.Addr.Addr().AsSlice()))
	m.UpdateOption(dhcpv4.OptServerIdentifier(ol.ServerID.AsSlice()))
	var lease *Lease
	var nak, why error
	ok, err := c.exchange(ctx, m, &c.st.Requests, func(b []byte, from netip.AddrPort) bool {
		r, err := ParseReply(b, xid, c.cfg.MAC)
		if err != nil {
			c.st.Ignored++
			return false
		}
		// Only the server we asked may answer (option 54, or the
		// source address when a server leaves it out).
		sid := from.Addr()
		if ids := addrList(r.Options.Get(dhcpv4.OptionServerIdentifier)); len(ids) > 0 {
			sid = ids[0]
		}
		if sid != ol.ServerID {
			c.st.Ignored++
			return false
		}
		switch r.MessageType() {
		case dhcpv4.MessageTypeNak:
			c.st.Naks++
			msg, _ := str(56, r.Options.Get(dhcpv4.OptionMessage))
			nak = fmt.Errorf("dhcp: server %v refused the request (NAK %q)", sid, sanitize(msg))
			return true
		case dhcpv4.MessageTypeAck:
			l, err := NewLease(r, from.Addr(), offer)
			if err != nil {
				c.st.Ignored++
				why = err
				return false
			}
			c.st.Acks++
			lease = l
			return true
		}
		c.st.Ignored++
		return false
	})
	switch {
	case err != nil:
		return nil, err
	case nak != nil:
		return nil, fmt.Errorf("%w: %w", ErrNoAck, nak)
	case !ok && why != nil:
		return nil, fmt.Errorf("%w from %v after %d REQUESTs (last reply rejected: %v)", ErrNoAck, ol.ServerID, c.st.Requests, why)
	case !ok:
		return nil, fmt.Errorf("%w from %v after %d REQUESTs", ErrNoAck, ol.ServerID, c.st.Requests)
	}
	return lease, nil
}

// sanitize makes server text printable for the console.
func sanitize(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}
