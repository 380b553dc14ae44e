package dhcp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	mac    = [6]byte{0x00, 0x16, 0x3e, 0x11, 0x22, 0x33}
	xid    = uint32(0xdeadbeef)
	srvIP  = netip.MustParseAddr("10.0.0.1")
	yourIP = net.ParseIP("10.0.0.100").To4()
)

// reply builds a server reply the way servers do, for the table tests.
func reply(typ dhcpv4.MessageType, mods ...func(*dhcpv4.DHCPv4)) *dhcpv4.DHCPv4 {
	m := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        1,
		ClientHWAddr:  net.HardwareAddr(mac[:]),
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    yourIP,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		Options:       make(dhcpv4.Options),
	}
	binary.BigEndian.PutUint32(m.TransactionID[:], xid)
	m.UpdateOption(dhcpv4.OptMessageType(typ))
	m.UpdateOption(dhcpv4.OptServerIdentifier(srvIP.AsSlice()))
	m.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32)))
	for _, f := range mods {
		f(m)
	}
	return m
}

func opt(code uint8, v []byte) func(*dhcpv4.DHCPv4) {
	return func(m *dhcpv4.DHCPv4) { m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(code), v)) }
}

func del(code uint8) func(*dhcpv4.DHCPv4) {
	return func(m *dhcpv4.DHCPv4) { m.Options.Del(dhcpv4.GenericOptionCode(code)) }
}

func ips(s ...string) []byte {
	var b []byte
	for _, a := range s {
		b = append(b, netip.MustParseAddr(a).AsSlice()...)
	}
	return b
}

func TestParseReply(t *testing.T) {
	good := reply(dhcpv4.MessageTypeOffer)
	if _, err := ParseReply(good.ToBytes(), xid, mac); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good.ToBytes()[:200], ErrMalformed},
		{"bad cookie", func() []byte { b := good.ToBytes(); b[236] = 0; return b }(), ErrMalformed},
		{"option beyond end", func() []byte {
			b := good.ToBytes()[:240]
			return append(b, 53, 200, 1)
		}(), ErrMalformed},
		{"no end option", good.ToBytes()[:240], ErrMalformed},
		{"request", reply(dhcpv4.MessageTypeOffer, func(m *dhcpv4.DHCPv4) { m.OpCode = dhcpv4.OpcodeBootRequest }).ToBytes(), ErrNotForUs},
		{"other xid", reply(dhcpv4.MessageTypeOffer, func(m *dhcpv4.DHCPv4) { m.TransactionID[0] ^= 1 }).ToBytes(), ErrNotForUs},
		{"other mac", reply(dhcpv4.MessageTypeOffer, func(m *dhcpv4.DHCPv4) { m.ClientHWAddr = net.HardwareAddr{0, 1, 2, 3, 4, 5} }).ToBytes(), ErrNotForUs},
		{"short mac", reply(dhcpv4.MessageTypeOffer, func(m *dhcpv4.DHCPv4) { m.ClientHWAddr = net.HardwareAddr(mac[:5]) }).ToBytes(), ErrNotForUs},
		{"token ring", reply(dhcpv4.MessageTypeOffer, func(m *dhcpv4.DHCPv4) { m.HWType = 6 }).ToBytes(), ErrNotForUs},
		{"no message type", reply(dhcpv4.MessageTypeOffer, del(OptMessageType)).ToBytes(), ErrMalformed},
		{"long message type", reply(dhcpv4.MessageTypeOffer, opt(OptMessageType, []byte{2, 2})).ToBytes(), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseReply(tc.b, xid, mac); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewLease(t *testing.T) {
	m := reply(dhcpv4.MessageTypeAck,
		opt(OptRouter, ips("192.168.0.1", "10.0.0.1")), // the first is off-link
		opt(OptDNS, ips("10.0.0.53", "0.0.0.0", "10.0.0.54")),
		opt(OptTFTPServerName, []byte("10.0.0.5\x00")),
		opt(OptBootFileName, []byte("pxe/boot.img")),
		opt(OptGRUBConfigFile, []byte("(nd)/pxe/menu.lst")),
		opt(OptPXEConfigFile, []byte("pxelinux.cfg/default")),
		opt(OptPXEPathPrefix, []byte("/tftpboot/")),
		opt(OptHostname, []byte("guest1")),
		opt(OptDomainName, []byte("example.org")),
		opt(OptLeaseTime, []byte{0, 0, 0x0e, 0x10}),
		func(m *dhcpv4.DHCPv4) {
			m.ServerIPAddr = net.ParseIP("10.0.0.2")
			m.BootFileName = "ignored"
			m.ServerHostName = "bootsrv"
		},
	)
	l, err := NewLease(m, srvIP, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr.String() != "10.0.0.100/24" || l.Router.String() != "10.0.0.1" || len(l.DNS) != 2 ||
		l.ServerID != srvIP || l.NextServer.String() != "10.0.0.2" || l.TFTPServerName != "10.0.0.5" ||
		l.BootFile != "pxe/boot.img" || l.ConfigFile != "(nd)/pxe/menu.lst" || l.PXEConfigFile != "pxelinux.cfg/default" ||
		l.PXEPathPrefix != "/tftpboot/" || l.Hostname != "guest1" || l.DomainName != "example.org" ||
		l.LeaseTime != time.Hour || l.ServerName != "bootsrv" {
		t.Fatalf("lease %+v", l)
	}
	if l.TFTPServer().String() != "10.0.0.5" {
		t.Fatalf("TFTPServer = %v", l.TFTPServer())
	}
	if l.String() == "" {
		t.Fatal("empty String")
	}
}

func TestTFTPServerChoice(t *testing.T) {
	for _, tc := range []struct {
		name string
		mods []func(*dhcpv4.DHCPv4)
		want string
	}{
		{"server id only", nil, "10.0.0.1"},
		{"siaddr", []func(*dhcpv4.DHCPv4){func(m *dhcpv4.DHCPv4) { m.ServerIPAddr = net.ParseIP("10.0.0.2") }}, "10.0.0.2"},
		{"option 66 address beats siaddr", []func(*dhcpv4.DHCPv4){
			func(m *dhcpv4.DHCPv4) { m.ServerIPAddr = net.ParseIP("10.0.0.2") },
			opt(OptTFTPServerName, []byte("10.0.0.3")),
		}, "10.0.0.3"},
		{"option 66 name is not resolved", []func(*dhcpv4.DHCPv4){
			func(m *dhcpv4.DHCPv4) { m.ServerIPAddr = net.ParseIP("10.0.0.2") },
			opt(OptTFTPServerName, []byte("boot.example.org")),
		}, "10.0.0.2"},
		{"option 150 addresses", []func(*dhcpv4.DHCPv4){opt(OptGRUBConfigFile, ips("10.0.0.7", "10.0.0.8"))}, "10.0.0.7"},
	} {
		l, err := NewLease(reply(dhcpv4.MessageTypeAck, tc.mods...), srvIP, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := l.TFTPServer().String(); got != tc.want {
			t.Errorf("%s: TFTPServer = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestOption150(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v       []byte
		path    string
		servers int
		ok      bool
	}{
		{"grub path", []byte("(nd)/menu.lst"), "(nd)/menu.lst", 0, true},
		{"plain path", []byte("/boot/grub/menu.lst\x00"), "/boot/grub/menu.lst", 0, true},
		{"4-byte name with slash", []byte("/a.c"), "/a.c", 0, true},
		{"bare name", []byte("menu.lst"), "menu.lst", 0, true},
		{"name", []byte("menu.cfg1"), "menu.cfg1", 0, true},
		{"addresses", ips("10.0.0.7"), "", 1, true},
		{"garbage", []byte{1, 2, 3}, "", 0, false},
	} {
		l, err := NewLease(reply(dhcpv4.MessageTypeAck, opt(OptGRUBConfigFile, tc.v)), srvIP, nil)
		if (err == nil) != tc.ok {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err == nil && (l.ConfigFile != tc.path || len(l.TFTPServers) != tc.servers) {
			t.Errorf("%s: ConfigFile %q, servers %v", tc.name, l.ConfigFile, l.TFTPServers)
		}
	}
}

func TestNewLeaseRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		mods []func(*dhcpv4.DHCPv4)
	}{
		{"no address", []func(*dhcpv4.DHCPv4){func(m *dhcpv4.DHCPv4) { m.YourIPAddr = net.IPv4zero }}},
		{"broadcast address", []func(*dhcpv4.DHCPv4){func(m *dhcpv4.DHCPv4) { m.YourIPAddr = net.IPv4bcast }}},
		{"multicast address", []func(*dhcpv4.DHCPv4){func(m *dhcpv4.DHCPv4) { m.YourIPAddr = net.ParseIP("224.0.0.5") }}},
		{"loopback address", []func(*dhcpv4.DHCPv4){func(m *dhcpv4.DHCPv4) { m.YourIPAddr = net.ParseIP("127.0.0.2") }}},
		{"class E address", []func(*dhcpv4.DHCPv4){func(m *dhcpv4.DHCPv4) { m.YourIPAddr = net.ParseIP("250.0.0.2") }}},
		{"subnet's network address", []func(*dhcpv4.DHCPv4){func(m *dhcpv4.DHCPv4) { m.YourIPAddr = net.ParseIP("10.0.0.0") }}},
		{"subnet's broadcast", []func(*dhcpv4.DHCPv4){func(m *dhcpv4.DHCPv4) { m.YourIPAddr = net.ParseIP("10.0.0.255") }}},
		{"mask with holes", []func(*dhcpv4.DHCPv4){opt(OptSubnetMask, []byte{255, 0, 255, 0})}},
		{"mask zero", []func(*dhcpv4.DHCPv4){opt(OptSubnetMask, []byte{0, 0, 0, 0})}},
		{"mask length", []func(*dhcpv4.DHCPv4){opt(OptSubnetMask, []byte{255, 255, 255})}},
		{"NUL in boot file", []func(*dhcpv4.DHCPv4){opt(OptBootFileName, []byte("a\x00b"))}},
		{"no server id", []func(*dhcpv4.DHCPv4){del(OptServerID)}},
	} {
		from := srvIP
		if tc.name == "no server id" {
			from = netip.IPv4Unspecified()
		}
		if l, err := NewLease(reply(dhcpv4.MessageTypeAck, tc.mods...), from, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %+v %v", tc.name, l, err)
		}
	}
	// A missing server id falls back to the reply's source.
	l, err := NewLease(reply(dhcpv4.MessageTypeAck, del(OptServerID)), netip.MustParseAddr("10.0.0.9"), nil)
	if err != nil || l.ServerID.String() != "10.0.0.9" {
		t.Fatalf("%+v %v", l, err)
	}
}

func TestNewLeaseDefaultsAndFallback(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"10.1.2.3", "10.1.2.3/8"},
		{"172.16.1.2", "172.16.1.2/16"},
		{"192.168.1.2", "192.168.1.2/24"},
	} {
		l, err := NewLease(reply(dhcpv4.MessageTypeAck, del(OptSubnetMask), func(m *dhcpv4.DHCPv4) { m.YourIPAddr = net.ParseIP(tc.ip) }), srvIP, nil)
		if err != nil || l.Addr.String() != tc.want {
			t.Errorf("%s: %v %v", tc.ip, l, err)
		}
	}
	// Options missing from the ACK come from the OFFER.
	offer := reply(dhcpv4.MessageTypeOffer, opt(OptRouter, ips("10.0.0.1")), opt(OptGRUBConfigFile, []byte("(nd)/m")))
	ack := reply(dhcpv4.MessageTypeAck, del(OptSubnetMask))
	l, err := NewLease(ack, srvIP, offer)
	if err != nil || l.Router.String() != "10.0.0.1" || l.ConfigFile != "(nd)/m" || l.Addr.Bits() != 24 {
		t.Fatalf("%+v %v", l, err)
	}
	// Routers not on our subnet, or ourselves, are not used; /31 and
	// /32 are allowed.
	l, err = NewLease(reply(dhcpv4.MessageTypeAck, opt(OptRouter, ips("10.0.0.100", "10.0.0.255", "10.9.0.1"))), srvIP, nil)
	if err != nil || l.Router.IsValid() {
		t.Fatalf("%+v %v", l, err)
	}
	l, err = NewLease(reply(dhcpv4.MessageTypeAck, opt(OptSubnetMask, []byte{255, 255, 255, 255})), srvIP, nil)
	if err != nil || l.Addr.Bits() != 32 {
		t.Fatalf("%+v %v", l, err)
	}
}

// FuzzReply parses arbitrary replies as the client does. The transaction
// id and MAC are taken from the input itself so that the fuzzer reaches
// NewLease; whatever is accepted must be a usable lease.
func FuzzReply(f *testing.F) {
	f.Add(reply(dhcpv4.MessageTypeOffer).ToBytes())
	f.Add(reply(dhcpv4.MessageTypeAck, opt(OptRouter, ips("10.0.0.1")), opt(OptGRUBConfigFile, []byte("(nd)/menu.lst")),
		opt(OptBootFileName, []byte("boot")), opt(OptDNS, ips("10.0.0.53"))).ToBytes())
	f.Add(reply(dhcpv4.MessageTypeNak, del(OptSubnetMask)).ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		var x uint32
		var hw [6]byte
		if len(b) >= 34 {
			x = binary.BigEndian.Uint32(b[4:8])
			copy(hw[:], b[28:34])
		}
		m, err := ParseReply(b, x, hw)
		if err != nil {
			return
		}
		for _, from := range []netip.Addr{srvIP, {}} {
			l, err := NewLease(m, from, m)
			if err != nil {
				continue
			}
			a := l.Addr.Addr()
			if !usable(a) || l.Addr.Bits() < 1 || l.Addr.Bits() > 32 || !usable(l.ServerID) {
				t.Fatalf("lease %+v", l)
			}
			if l.Router.IsValid() && (!l.Addr.Contains(l.Router) || l.Router == a) {
				t.Fatalf("router %v for %v", l.Router, l.Addr)
			}
			for _, s := range []string{l.BootFile, l.ConfigFile, l.TFTPServerName, l.Hostname, l.PXEConfigFile} {
				for i := range len(s) {
					if s[i] == 0 {
						t.Fatalf("NUL in %q", s)
					}
				}
				if len(s) > maxString {
					t.Fatalf("%d-byte string", len(s))
				}
			}
			if len(l.DNS) > maxServers || len(l.TFTPServers) > maxServers {
				t.Fatalf("lists %v %v", l.DNS, l.TFTPServers)
			}
			_ = l.TFTPServer()
			_ = l.String()
		}
	})
}
