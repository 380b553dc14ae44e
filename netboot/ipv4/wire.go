package ipv4

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Error is the type of this package's sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Errors of the parsers and of Stack.
const (
	// ErrShort: a header or the length it announces does not fit.
	ErrShort = Error("ipv4: packet truncated")
	// ErrMalformed: a field holds a value the protocol does not allow.
	ErrMalformed = Error("ipv4: malformed packet")
	// ErrChecksum: the header or payload checksum does not match.
	ErrChecksum = Error("ipv4: bad checksum")
	// ErrFragment: the packet is an IP fragment; reassembly is not
	// supported (DHCP and TFTP never need it: TFTP's blksize is
	// chosen to fit the MTU).
	ErrFragment = Error("ipv4: fragment")
	// ErrUnsupported: a well-formed packet of a kind this stack does
	// not handle (another EtherType, an ARP for another protocol…).
	ErrUnsupported = Error("ipv4: unsupported packet type")
)

// HardwareAddr is an Ethernet MAC address.
type HardwareAddr [6]byte

// BroadcastMAC is the Ethernet broadcast address.
var BroadcastMAC = HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (m HardwareAddr) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// IsMulticast reports whether the group bit is set (broadcast included).
func (m HardwareAddr) IsMulticast() bool { return m[0]&1 != 0 }

// Ethernet II (IEEE 802.3 with EtherType; no 802.1Q tag, no FCS).
const (
	EthernetHeaderSize = 14
	EtherTypeIPv4      = 0x0800
	EtherTypeARP       = 0x0806
	EtherTypeVLAN      = 0x8100
	// MinFrame is the shortest frame on the wire without FCS; shorter
	// frames are padded with zeros.
	MinFrame = 60
)

// EthernetHeader is the 14-byte Ethernet II header.
type EthernetHeader struct {
	Dst, Src HardwareAddr
	Type     uint16
}

// ParseEthernet splits a frame into its header and payload. The payload may
// carry padding beyond what the upper layer announces.
func ParseEthernet(b []byte) (EthernetHeader, []byte, error) {
	if len(b) < EthernetHeaderSize {
		return EthernetHeader{}, nil, fmt.Errorf("ethernet: %d-byte frame: %w", len(b), ErrShort)
	}
	var h EthernetHeader
	copy(h.Dst[:], b[0:6])
	copy(h.Src[:], b[6:12])
	h.Type = binary.BigEndian.Uint16(b[12:14])
	return h, b[EthernetHeaderSize:], nil
}

// Append appends the header's 14 bytes to b.
func (h EthernetHeader) Append(b []byte) []byte {
	b = append(b, h.Dst[:]...)
	b = append(b, h.Src[:]...)
	return binary.BigEndian.AppendUint16(b, h.Type)
}

// ARP for IPv4 over Ethernet (RFC 826).
const (
	ARPSize       = 28
	ARPRequest    = 1
	ARPReply      = 2
	arpHTEthernet = 1
)

// ARP is an ARP packet for IPv4 over Ethernet.
type ARP struct {
	Op        uint16
	SenderMAC HardwareAddr
	SenderIP  netip.Addr
	TargetMAC HardwareAddr
	TargetIP  netip.Addr
}

// ParseARP decodes an Ethernet/IPv4 ARP request or reply. Other hardware or
// protocol types are ErrUnsupported; trailing padding is ignored.
func ParseARP(b []byte) (ARP, error) {
	if len(b) < 8 {
		return ARP{}, fmt.Errorf("arp: %d bytes: %w", len(b), ErrShort)
	}
	htype := binary.BigEndian.Uint16(b[0:2])
	ptype := binary.BigEndian.Uint16(b[2:4])
	if htype != arpHTEthernet || ptype != EtherTypeIPv4 || b[4] != 6 || b[5] != 4 {
		return ARP{}, fmt.Errorf("arp: hardware %d/%d protocol %#04x/%d: %w", htype, b[4], ptype, b[5], ErrUnsupported)
	}
	if len(b) < ARPSize {
		return ARP{}, fmt.Errorf("arp: %d bytes: %w", len(b), ErrShort)
	}
	a := ARP{Op: binary.BigEndian.Uint16(b[6:8])}
	if a.Op != ARPRequest && a.Op != ARPReply {
		return ARP{}, fmt.Errorf("arp: operation %d: %w", a.Op, ErrUnsupported)
	}
	copy(a.SenderMAC[:], b[8:14])
	a.SenderIP = netip.AddrFrom4([4]byte(b[14:18]))
	copy(a.TargetMAC[:], b[18:24])
	a.TargetIP = netip.AddrFrom4([4]byte(b[24:28]))
	return a, nil
}

// Append appends the 28-byte packet to b. Addresses that are not IPv4
// are written as 0.0.0.0.
func (a ARP) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, arpHTEthernet)
	b = binary.BigEndian.AppendUint16(b, EtherTypeIPv4)
	b = append(b, 6, 4)
	b = binary.BigEndian.AppendUint16(b, a.Op)
	b = append(b, a.SenderMAC[:]...)
	b = append(b, as4(a.SenderIP)...)
	b = append(b, a.TargetMAC[:]...)
	return append(b, as4(a.TargetIP)...)
}

func as4(a netip.Addr) []byte {
	if !a.Is4() {
		return []byte{0, 0, 0, 0}
	}
	v := a.As4()
	return v[:]
}

// IPv4 (RFC 791).
const (
	HeaderSize    = 20 // without options
	ProtocolICMP  = 1
	ProtocolUDP   = 17
	DefaultTTL    = 64
	flagDF        = 0x4000
	flagMF        = 0x2000
	fragOffMask   = 0x1fff
	maxHeaderSize = 60
)

// Header is an IPv4 header. Options are skipped, not kept.
type Header struct {
	TOS      uint8
	TotalLen int // header plus payload, as announced
	ID       uint16
	Flags    uint16 // the top 3 bits of the fragment word (DF 0x4000, MF 0x2000)
	FragOff  int    // in bytes
	TTL      uint8
	Protocol uint8
	Src, Dst netip.Addr
	IHL      int // header length in bytes, options included
}

// IsFragment reports whether the packet is part of a fragmented datagram.
func (h Header) IsFragment() bool { return h.Flags&flagMF != 0 || h.FragOff != 0 }

// ParseIPv4 decodes an IPv4 header, verifies its checksum and returns the
// payload, cut to the length the header announces (Ethernet padding is
// dropped). A fragment is returned with ErrFragment, header filled in.
func ParseIPv4(b []byte) (Header, []byte, error) {
	if len(b) < HeaderSize {
		return Header{}, nil, fmt.Errorf("ip: %d bytes: %w", len(b), ErrShort)
	}
	if v := b[0] >> 4; v != 4 {
		return Header{}, nil, fmt.Errorf("ip: version %d: %w", v, ErrUnsupported)
	}
	h := Header{
		IHL:      int(b[0]&0x0f) * 4,
		TOS:      b[1],
		TotalLen: int(binary.BigEndian.Uint16(b[2:4])),
		ID:       binary.BigEndian.Uint16(b[4:6]),
		TTL:      b[8],
		Protocol: b[9],
		Src:      netip.AddrFrom4([4]byte(b[12:16])),
		Dst:      netip.AddrFrom4([4]byte(b[16:20])),
	}
	frag := binary.BigEndian.Uint16(b[6:8])
	h.Flags = frag &^ fragOffMask
	h.FragOff = int(frag&fragOffMask) * 8
	if h.IHL < HeaderSize {
		return h, nil, fmt.Errorf("ip: header length %d: %w", h.IHL, ErrMalformed)
	}
	if h.TotalLen < h.IHL {
		return h, nil, fmt.Errorf("ip: total length %d below header length %d: %w", h.TotalLen, h.IHL, ErrMalformed)
	}
	if h.TotalLen > len(b) {
		return h, nil, fmt.Errorf("ip: total length %d, %d bytes received: %w", h.TotalLen, len(b), ErrShort)
	}
	if Checksum(b[:h.IHL], 0) != 0 {
		return h, nil, fmt.Errorf("ip: header from %v: %w", h.Src, ErrChecksum)
	}
	if h.Flags&0x8000 != 0 {
		return h, nil, fmt.Errorf("ip: reserved flag set: %w", ErrMalformed)
	}
	if h.IsFragment() {
		return h, nil, fmt.Errorf("ip: from %v id %d offset %d: %w", h.Src, h.ID, h.FragOff, ErrFragment)
	}
	return h, b[h.IHL:h.TotalLen], nil
}

// AppendIPv4 appends a 20-byte header (no options) for a payload of
// payloadLen bytes, with DF set and the checksum filled in.
func AppendIPv4(b []byte, h Header, payloadLen int) []byte {
	start := len(b)
	ttl := h.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	b = append(b, 0x45, h.TOS)
	b = binary.BigEndian.AppendUint16(b, uint16(HeaderSize+payloadLen))
	b = binary.BigEndian.AppendUint16(b, h.ID)
	b = binary.BigEndian.AppendUint16(b, flagDF)
	b = append(b, ttl, h.Protocol, 0, 0)
	b = append(b, as4(h.Src)...)
	b = append(b, as4(h.Dst)...)
	binary.BigEndian.PutUint16(b[start+10:], Checksum(b[start:], 0))
	return b
}

// Checksum returns the Internet checksum (RFC 1071) of b, starting from the
// partial sum initial: the one's complement of the one's-complement sum of
// the 16-bit words. Over data that includes a correct checksum it is 0.
func Checksum(b []byte, initial uint32) uint16 {
	return ^fold(sum(b, initial))
}

func sum(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
		if s >= 1<<31 {
			s = s&0xffff + s>>16
		}
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// pseudoSum is the partial sum of the UDP pseudo-header (RFC 768).
func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	s := sum(as4(src), 0)
	s = sum(as4(dst), s)
	return s + uint32(proto) + uint32(length)
}

// UDP (RFC 768).
const UDPHeaderSize = 8

// UDPHeader holds the ports of a UDP datagram.
type UDPHeader struct {
	SrcPort, DstPort uint16
}

// ParseUDP decodes the UDP datagram b carried in an IPv4 packet from src to
// dst, verifies its checksum (unless the sender left it 0, which IPv4
// allows) and returns the payload cut to the UDP length.
func ParseUDP(src, dst netip.Addr, b []byte) (UDPHeader, []byte, error) {
	if len(b) < UDPHeaderSize {
		return UDPHeader{}, nil, fmt.Errorf("udp: %d bytes: %w", len(b), ErrShort)
	}
	h := UDPHeader{
		SrcPort: binary.BigEndian.Uint16(b[0:2]),
		DstPort: binary.BigEndian.Uint16(b[2:4]),
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n < UDPHeaderSize {
		return h, nil, fmt.Errorf("udp: length %d: %w", n, ErrMalformed)
	}
	if n > len(b) {
		return h, nil, fmt.Errorf("udp: length %d, %d bytes in the packet: %w", n, len(b), ErrShort)
	}
	b = b[:n]
	if binary.BigEndian.Uint16(b[6:8]) != 0 && Checksum(b, pseudoSum(src, dst, ProtocolUDP, n)) != 0 {
		return h, nil, fmt.Errorf("udp: %v:%d -> %v:%d: %w", src, h.SrcPort, dst, h.DstPort, ErrChecksum)
	}
	if h.DstPort == 0 {
		return h, nil, fmt.Errorf("udp: destination port 0: %w", ErrMalformed)
	}
	return h, b[UDPHeaderSize:], nil
}

// AppendUDP appends a UDP header and payload with the checksum computed.
func AppendUDP(b []byte, src, dst netip.Addr, h UDPHeader, payload []byte) []byte {
	start := len(b)
	n := UDPHeaderSize + len(payload)
	b = binary.BigEndian.AppendUint16(b, h.SrcPort)
	b = binary.BigEndian.AppendUint16(b, h.DstPort)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, 0, 0)
	b = append(b, payload...)
	c := Checksum(b[start:], pseudoSum(src, dst, ProtocolUDP, n))
	if c == 0 {
		c = 0xffff // 0 means "no checksum" (RFC 768)
	}
	binary.BigEndian.PutUint16(b[start+6:], c)
	return b
}

// ICMP (RFC 792): the messages this stack answers or understands.
const (
	ICMPHeaderSize      = 8
	ICMPEchoReply       = 0
	ICMPUnreachable     = 3
	ICMPEchoRequest     = 8
	ICMPCodePortUnreach = 3
)

// ICMP is an ICMP message header; Rest is the type-specific second word
// (identifier and sequence number for echo).
type ICMP struct {
	Type, Code uint8
	Rest       [4]byte
}

// ParseICMP decodes an ICMP message, verifies its checksum and returns the
// body after the 8-byte header.
func ParseICMP(b []byte) (ICMP, []byte, error) {
	if len(b) < ICMPHeaderSize {
		return ICMP{}, nil, fmt.Errorf("icmp: %d bytes: %w", len(b), ErrShort)
	}
	if Checksum(b, 0) != 0 {
		return ICMP{}, nil, fmt.Errorf("icmp: type %d: %w", b[0], ErrChecksum)
	}
	m := ICMP{Type: b[0], Code: b[1]}
	copy(m.Rest[:], b[4:8])
	return m, b[ICMPHeaderSize:], nil
}

// AppendICMP appends an ICMP message with the checksum computed.
func AppendICMP(b []byte, m ICMP, body []byte) []byte {
	start := len(b)
	b = append(b, m.Type, m.Code, 0, 0)
	b = append(b, m.Rest[:]...)
	b = append(b, body...)
	binary.BigEndian.PutUint16(b[start+2:], Checksum(b[start:], 0))
	return b
}

// ParseUnreachable decodes the body of an ICMP destination-unreachable
// message: the start of the datagram that could not be delivered. It
// returns that datagram's IP header and UDP ports (when it was UDP). At
// least the IP header and 8 bytes must be quoted (RFC 792).
func ParseUnreachable(body []byte) (Header, UDPHeader, error) {
	if len(body) < HeaderSize {
		return Header{}, UDPHeader{}, fmt.Errorf("icmp: unreachable quotes %d bytes: %w", len(body), ErrShort)
	}
	if v := body[0] >> 4; v != 4 {
		return Header{}, UDPHeader{}, fmt.Errorf("icmp: quoted version %d: %w", v, ErrMalformed)
	}
	ihl := int(body[0]&0x0f) * 4
	if ihl < HeaderSize {
		return Header{}, UDPHeader{}, fmt.Errorf("icmp: quoted header length %d: %w", ihl, ErrMalformed)
	}
	if len(body) < ihl+8 {
		return Header{}, UDPHeader{}, fmt.Errorf("icmp: unreachable quotes %d bytes: %w", len(body), ErrShort)
	}
	h := Header{
		IHL:      ihl,
		TotalLen: int(binary.BigEndian.Uint16(body[2:4])),
		ID:       binary.BigEndian.Uint16(body[4:6]),
		TTL:      body[8],
		Protocol: body[9],
		Src:      netip.AddrFrom4([4]byte(body[12:16])),
		Dst:      netip.AddrFrom4([4]byte(body[16:20])),
	}
	var u UDPHeader
	if h.Protocol == ProtocolUDP {
		u.SrcPort = binary.BigEndian.Uint16(body[ihl:])
		u.DstPort = binary.BigEndian.Uint16(body[ihl+2:])
	}
	return h, u, nil
}
