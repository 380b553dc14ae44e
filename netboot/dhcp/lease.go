package dhcp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Option codes this client asks for or sends (RFC 2132 unless noted).
const (
	OptSubnetMask     = 1
	OptRouter         = 3
	OptDNS            = 6
	OptHostname       = 12
	OptDomainName     = 15
	OptBroadcast      = 28
	OptRequestedIP    = 50
	OptLeaseTime      = 51
	OptMessageType    = 53
	OptServerID       = 54
	OptParamRequest   = 55
	OptMaxMessageSize = 57
	OptVendorClass    = 60
	OptClientID       = 61
	OptTFTPServerName = 66
	OptBootFileName   = 67
	// OptGRUBConfigFile is the option GRUB legacy, and so PV-GRUB,
	// reads its configuration file name from ("(nd)/menu.lst"). Cisco
	// uses the same number for a list of TFTP server addresses
	// (RFC 5859); NewLease takes printable text for a path and
	// anything else of a multiple of 4 bytes for addresses.
	OptGRUBConfigFile = 150
	// OptPXEConfigFile and OptPXEPathPrefix are PXELINUX's (RFC 5071).
	OptPXEConfigFile = 209
	OptPXEPathPrefix = 210
)

// Limits on what a reply may make us keep.
const (
	maxString  = 1024 // a concatenated (RFC 3396) string option
	maxServers = 8    // DNS or TFTP server addresses kept
)

// Lease is what the server granted, checked: every address is a usable
// unicast IPv4 address and every string is free of NUL bytes. Fields the
// server did not send are zero.
type Lease struct {
	// Addr is our address with its prefix (option 1, or the classful
	// default when the server sends no mask).
	Addr netip.Prefix
	// Router is the first usable router on our subnet (option 3).
	Router netip.Addr
	// DNS servers (option 6).
	DNS []netip.Addr
	// ServerID identifies the DHCP server (option 54, or the reply's
	// source when missing).
	ServerID netip.Addr
	// NextServer is the BOOTP siaddr field, the boot server.
	NextServer netip.Addr
	// TFTPServerName is option 66 (a name or a dotted address).
	TFTPServerName string
	// BootFile is option 67, or the BOOTP file field.
	BootFile string
	// ServerName is the BOOTP sname field.
	ServerName string
	// ConfigFile is option 150 in GRUB's sense: a configuration file
	// path, possibly starting with "(nd)".
	ConfigFile string
	// TFTPServers is option 150 in Cisco's sense: server addresses.
	TFTPServers []netip.Addr
	// PXEConfigFile and PXEPathPrefix are options 209 and 210.
	PXEConfigFile, PXEPathPrefix string
	// Hostname and DomainName are options 12 and 15.
	Hostname, DomainName string
	// LeaseTime is option 51 (0: not sent; the lease is never renewed
	// here, the chainloaded kernel gets its own).
	LeaseTime time.Duration
}

// TFTPServer returns the server to fetch boot files from, as PV-GRUB and
// PXE firmware pick it: option 66 when it is a dotted address, else siaddr
// (next-server), else the first of option 150's addresses, else the DHCP
// server itself. Host names are not resolved (no DNS).
func (l *Lease) TFTPServer() netip.Addr {
	if a, err := netip.ParseAddr(strings.TrimSpace(l.TFTPServerName)); err == nil && usable(a) {
		return a
	}
	if l.NextServer.IsValid() {
		return l.NextServer
	}
	if len(l.TFTPServers) > 0 {
		return l.TFTPServers[0]
	}
	return l.ServerID
}

func (l *Lease) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "address %v", l.Addr)
	if l.Router.IsValid() {
		fmt.Fprintf(&b, ", router %v", l.Router)
	}
	fmt.Fprintf(&b, ", server %v", l.ServerID)
	if l.NextServer.IsValid() {
		fmt.Fprintf(&b, ", next-server %v", l.NextServer)
	}
	if l.BootFile != "" {
		fmt.Fprintf(&b, ", boot file %q", l.BootFile)
	}
	if l.ConfigFile != "" {
		fmt.Fprintf(&b, ", config file %q", l.ConfigFile)
	}
	return b.String()
}

// usable reports whether a is an address a host may be or talk to.
func usable(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	v := a.As4()
	return !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() && v[0] < 240 && v[0] != 0
}

func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// addrList decodes an option holding IPv4 addresses, keeping up to
// maxServers usable ones.
func addrList(b []byte) []netip.Addr {
	var out []netip.Addr
	for len(b) >= 4 && len(out) < maxServers {
		if a := netip.AddrFrom4([4]byte(b[:4])); usable(a) {
			out = append(out, a)
		}
		b = b[4:]
	}
	return out
}

// str decodes a string option: trailing NULs (some servers send C strings)
// are dropped; a NUL inside, or more than maxString bytes, is an error.
func str(code int, b []byte) (string, error) {
	b = bytes.TrimRight(b, "\x00")
	if len(b) > maxString {
		return "", fmt.Errorf("dhcp: option %d: %d bytes: %w", code, len(b), ErrMalformed)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return "", fmt.Errorf("dhcp: option %d: NUL inside the string: %w", code, ErrMalformed)
	}
	return string(b), nil
}

// printable reports whether b is non-empty printable ASCII.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return len(b) > 0
}

// maskBits decodes a subnet mask, which must be contiguous ones.
func maskBits(b []byte) (int, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("dhcp: subnet mask of %d bytes: %w", len(b), ErrMalformed)
	}
	m := binary.BigEndian.Uint32(b)
	n := bits.LeadingZeros32(^m)
	if m<<n != 0 || n == 0 {
		return 0, fmt.Errorf("dhcp: subnet mask %d.%d.%d.%d: %w", b[0], b[1], b[2], b[3], ErrMalformed)
	}
	return n, nil
}

// classful is the pre-CIDR default prefix for a, used when the server
// sends no mask (as GRUB legacy's netboot did).
func classful(a netip.Addr) int {
	switch v := a.As4(); {
	case v[0] < 128:
		return 8
	case v[0] < 192:
		return 16
	}
	return 24
}

// ParseReply decodes a DHCP message from the network and checks that it is
// a reply to us: BOOTREPLY, Ethernet, our MAC and transaction id, and a
// message type. The packet codec is github.com/insomniacslk/dhcp/dhcpv4;
// everything that decides what we use is checked here.
func ParseReply(b []byte, xid uint32, mac [6]byte) (*dhcpv4.DHCPv4, error) {
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("dhcp: %w: %v", ErrMalformed, err)
	}
	switch {
	case m.OpCode != dhcpv4.OpcodeBootReply:
		return nil, fmt.Errorf("dhcp: opcode %v: %w", m.OpCode, ErrNotForUs)
	case binary.BigEndian.Uint32(m.TransactionID[:]) != xid:
		return nil, fmt.Errorf("dhcp: transaction %v: %w", m.TransactionID, ErrNotForUs)
	case m.HWType != iana.HWTypeEthernet || !bytes.Equal(m.ClientHWAddr, mac[:]):
		return nil, fmt.Errorf("dhcp: client hardware address %v: %w", m.ClientHWAddr, ErrNotForUs)
	}
	if len(m.Options.Get(dhcpv4.OptionDHCPMessageType)) != 1 {
		return nil, fmt.Errorf("dhcp: reply without a message type: %w", ErrMalformed)
	}
	return m, nil
}

// NewLease extracts and checks a lease from an OFFER or ACK. from is the
// reply's source address, the server id when option 54 is missing. Options
// missing from the reply are taken from fallback (the OFFER, when parsing
// the ACK), if not nil.
func NewLease(m *dhcpv4.DHCPv4, from netip.Addr, fallback *dhcpv4.DHCPv4) (*Lease, error) {
	get := func(code uint8) []byte {
		if v := m.Options.Get(dhcpv4.GenericOptionCode(code)); v != nil {
			return v
		}
		if fallback != nil {
			return fallback.Options.Get(dhcpv4.GenericOptionCode(code))
		}
		return nil
	}
	l := &Lease{}
	yi := addrOf(m.YourIPAddr)
	if !usable(yi) || yi == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return nil, fmt.Errorf("dhcp: offered address %v: %w", yi, ErrMalformed)
	}
	bitsLen := classful(yi)
	if v := get(OptSubnetMask); v != nil {
		n, err := maskBits(v)
		if err != nil {
			return nil, err
		}
		bitsLen = n
	}
	l.Addr = netip.PrefixFrom(yi, bitsLen)
	if bitsLen < 31 {
		p := l.Addr.Masked()
		if yi == p.Addr() || yi == lastAddr(p) {
			return nil, fmt.Errorf("dhcp: offered address %v is its subnet's network or broadcast address: %w", l.Addr, ErrMalformed)
		}
	}
	for _, r := range addrList(get(OptRouter)) {
		if r != yi && l.Addr.Contains(r) && (bitsLen >= 31 || r != lastAddr(l.Addr.Masked())) {
			l.Router = r
			break
		}
	}
	l.DNS = addrList(get(OptDNS))
	if ids := addrList(get(OptServerID)); len(ids) > 0 {
		l.ServerID = ids[0]
	} else if usable(from) {
		l.ServerID = from
	} else {
		return nil, fmt.Errorf("dhcp: reply without a usable server identifier: %w", ErrMalformed)
	}
	if si := addrOf(m.ServerIPAddr); usable(si) && si != yi {
		l.NextServer = si
	}
	var err error
	strOpt := func(code int, dst *string) {
		if err != nil {
			return
		}
		if v := get(uint8(code)); v != nil {
			*dst, err = str(code, v)
		}
	}
	strOpt(OptTFTPServerName, &l.TFTPServerName)
	strOpt(OptBootFileName, &l.BootFile)
	strOpt(OptPXEConfigFile, &l.PXEConfigFile)
	strOpt(OptPXEPathPrefix, &l.PXEPathPrefix)
	strOpt(OptHostname, &l.Hostname)
	strOpt(OptDomainName, &l.DomainName)
	if err != nil {
		return nil, err
	}
	if l.BootFile == "" {
		// The BOOTP field; the codec cut it at the first NUL.
		l.BootFile = m.BootFileName
	}
	l.ServerName = m.ServerHostName
	if v := get(OptGRUBConfigFile); v != nil {
		// Printable text is a path: server addresses in private
		// ranges (10/8, 172.16/12, 192.168/16) never are.
		if t := bytes.TrimRight(v, "\x00"); printable(t) {
			l.ConfigFile = string(t)
		} else if len(v)%4 == 0 {
			l.TFTPServers = addrList(v)
		} else {
			return nil, fmt.Errorf("dhcp: option 150 is neither a path nor addresses: %w", ErrMalformed)
		}
	}
	if v := get(OptLeaseTime); len(v) == 4 {
		l.LeaseTime = time.Duration(binary.BigEndian.Uint32(v)) * time.Second
	}
	return l, nil
}

// lastAddr is the highest address of p (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	v := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	binary.BigEndian.PutUint32(v[:], binary.BigEndian.Uint32(v[:])|host)
	return netip.AddrFrom4(v)
}
