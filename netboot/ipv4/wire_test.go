package ipv4

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

var (
	macA = HardwareAddr{0x00, 0x16, 0x3e, 0x00, 0x00, 0x01}
	macB = HardwareAddr{0x00, 0x16, 0x3e, 0x00, 0x00, 0x02}
	ipA  = netip.MustParseAddr("10.0.0.10")
	ipB  = netip.MustParseAddr("10.0.0.1")
)

func TestChecksumRFC1071(t *testing.T) {
	// The example of RFC 1071 §3: the sum of these words is ddf2,
	// so the checksum is its complement.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Checksum(b, 0); got != ^uint16(0xddf2) {
		t.Fatalf("Checksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	// Odd length: the last byte is padded with a zero.
	if got, want := Checksum([]byte{0x01}, 0), ^uint16(0x0100); got != want {
		t.Fatalf("odd Checksum = %#04x, want %#04x", got, want)
	}
	// Many words: the carry folding must not lose bits.
	big := bytes.Repeat([]byte{0xff, 0xff}, 70000)
	if got := Checksum(big, 0); got != 0 {
		t.Fatalf("Checksum(ffff...) = %#04x, want 0", got)
	}
}

func TestEthernetRoundTrip(t *testing.T) {
	h := EthernetHeader{Dst: BroadcastMAC, Src: macA, Type: EtherTypeARP}
	b := h.Append([]byte(nil))
	b = append(b, 1, 2, 3)
	got, p, err := ParseEthernet(b)
	if err != nil || got != h || !bytes.Equal(p, []byte{1, 2, 3}) {
		t.Fatalf("ParseEthernet = %+v %x %v", got, p, err)
	}
	if _, _, err := ParseEthernet(b[:13]); !errors.Is(err, ErrShort) {
		t.Fatalf("13 bytes: %v", err)
	}
	if s := macA.String(); s != "00:16:3e:00:00:01" {
		t.Fatalf("String = %q", s)
	}
}

func TestARP(t *testing.T) {
	a := ARP{Op: ARPReply, SenderMAC: macB, SenderIP: ipB, TargetMAC: macA, TargetIP: ipA}
	b := a.Append(nil)
	if len(b) != ARPSize {
		t.Fatalf("len %d", len(b))
	}
	got, err := ParseARP(append(b, make([]byte, 18)...)) // Ethernet padding
	if err != nil || got != a {
		t.Fatalf("ParseARP = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:27] }, ErrShort},
		{"tiny", func(b []byte) []byte { return b[:3] }, ErrShort},
		{"hardware type", func(b []byte) []byte { b[1] = 6; return b }, ErrUnsupported},
		{"protocol type", func(b []byte) []byte { b[2] = 0x86; b[3] = 0xdd; return b }, ErrUnsupported},
		{"hardware length", func(b []byte) []byte { b[4] = 8; return b }, ErrUnsupported},
		{"protocol length", func(b []byte) []byte { b[5] = 16; return b }, ErrUnsupported},
		{"operation", func(b []byte) []byte { b[7] = 3; return b }, ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseARP(tc.mod(bytes.Clone(b)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func ipPacket(h Header, payload []byte) []byte {
	return append(AppendIPv4(nil, h, len(payload)), payload...)
}

func TestIPv4(t *testing.T) {
	h := Header{ID: 7, Protocol: ProtocolUDP, Src: ipA, Dst: ipB, TTL: 3}
	b := ipPacket(h, []byte("hello"))
	got, p, err := ParseIPv4(append(bytes.Clone(b), 0, 0, 0)) // padding is cut
	if err != nil || string(p) != "hello" {
		t.Fatalf("ParseIPv4 = %x %v", p, err)
	}
	if got.Src != ipA || got.Dst != ipB || got.ID != 7 || got.TTL != 3 || got.Protocol != ProtocolUDP ||
		got.TotalLen != 25 || got.IHL != 20 || got.Flags != flagDF || got.IsFragment() {
		t.Fatalf("header %+v", got)
	}

	// With options: 24-byte header, checksum over all of it.
	opt := bytes.Clone(b[:20])
	opt[0] = 0x46
	opt[3] += 4
	opt = append(opt, 1, 1, 1, 0) // NOP NOP NOP EOL
	opt[10], opt[11] = 0, 0
	c := Checksum(opt, 0)
	opt[10], opt[11] = byte(c>>8), byte(c)
	opt = append(opt, "hello"...)
	if _, p, err := ParseIPv4(opt); err != nil || string(p) != "hello" {
		t.Fatalf("with options: %q %v", p, err)
	}

	fix := func(b []byte) []byte {
		b[10], b[11] = 0, 0
		c := Checksum(b[:int(b[0]&15)*4], 0)
		b[10], b[11] = byte(c>>8), byte(c)
		return b
	}
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"short header", func(b []byte) []byte { return b[:19] }, ErrShort},
		{"empty", func(b []byte) []byte { return b[:0] }, ErrShort},
		{"version 6", func(b []byte) []byte { b[0] = 0x65; return fix(b) }, ErrUnsupported},
		{"ihl 4", func(b []byte) []byte { b[0] = 0x44; return b }, ErrMalformed},
		{"ihl beyond total", func(b []byte) []byte { b[0] = 0x4f; return b }, ErrMalformed},
		{"total below header", func(b []byte) []byte { b[2], b[3] = 0, 19; return fix(b) }, ErrMalformed},
		{"total beyond data", func(b []byte) []byte { b[2], b[3] = 0xff, 0xff; return fix(b) }, ErrShort},
		{"checksum", func(b []byte) []byte { b[8]++; return b }, ErrChecksum},
		{"reserved flag", func(b []byte) []byte { b[6] |= 0x80; return fix(b) }, ErrMalformed},
		{"more fragments", func(b []byte) []byte { b[6] = 0x20; return fix(b) }, ErrFragment},
		{"last fragment", func(b []byte) []byte { b[6], b[7] = 0, 10; return fix(b) }, ErrFragment},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseIPv4(tc.mod(bytes.Clone(b)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUDP(t *testing.T) {
	h := UDPHeader{SrcPort: 69, DstPort: 50000}
	b := AppendUDP(nil, ipB, ipA, h, []byte("data!"))
	got, p, err := ParseUDP(ipB, ipA, append(bytes.Clone(b), 9, 9)) // bytes past the UDP length
	if err != nil || got != h || string(p) != "data!" {
		t.Fatalf("ParseUDP = %+v %q %v", got, p, err)
	}
	// The checksum covers the pseudo-header: other addresses fail.
	if _, _, err := ParseUDP(ipA, ipA, b); !errors.Is(err, ErrChecksum) {
		t.Fatalf("other source: %v", err)
	}
	// A zero checksum means none was computed.
	nock := bytes.Clone(b)
	nock[6], nock[7] = 0, 0
	nock[8] ^= 0xff
	if _, _, err := ParseUDP(ipB, ipA, nock); err != nil {
		t.Fatalf("no checksum: %v", err)
	}
	// A payload whose checksum comes out as 0 is sent as ffff.
	for i := range 65536 {
		pl := []byte{byte(i >> 8), byte(i)}
		u := AppendUDP(nil, ipB, ipA, h, pl)
		if u[6] == 0 && u[7] == 0 {
			t.Fatalf("payload %x: checksum sent as 0", pl)
		}
		if _, _, err := ParseUDP(ipB, ipA, u); err != nil {
			t.Fatalf("payload %x: %v", pl, err)
		}
	}
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:7] }, ErrShort},
		{"length below header", func(b []byte) []byte { b[5] = 7; b[6], b[7] = 0, 0; return b }, ErrMalformed},
		{"length beyond data", func(b []byte) []byte { b[5] = 200; return b }, ErrShort},
		{"bad checksum", func(b []byte) []byte { b[9] ^= 1; return b }, ErrChecksum},
		{"port 0", func(b []byte) []byte { b[2], b[3] = 0, 0; b[6], b[7] = 0, 0; return b }, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseUDP(ipB, ipA, tc.mod(bytes.Clone(b)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestICMP(t *testing.T) {
	m := ICMP{Type: ICMPEchoRequest, Rest: [4]byte{0, 1, 0, 2}}
	b := AppendICMP(nil, m, []byte("ping"))
	got, body, err := ParseICMP(b)
	if err != nil || got != m || string(body) != "ping" {
		t.Fatalf("ParseICMP = %+v %q %v", got, body, err)
	}
	b[9] ^= 1
	if _, _, err := ParseICMP(b); !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupted: %v", err)
	}
	if _, _, err := ParseICMP(b[:7]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}

	// Unreachable: the quoted IP header and the UDP ports.
	quoted := ipPacket(Header{Protocol: ProtocolUDP, Src: ipA, Dst: ipB},
		AppendUDP(nil, ipA, ipB, UDPHeader{SrcPort: 50000, DstPort: 69}, []byte("xyz")))
	qh, qu, err := ParseUnreachable(quoted[:28])
	if err != nil || qh.Src != ipA || qh.Dst != ipB || qu.SrcPort != 50000 || qu.DstPort != 69 {
		t.Fatalf("ParseUnreachable = %+v %+v %v", qh, qu, err)
	}
	if _, _, err := ParseUnreachable(quoted[:27]); !errors.Is(err, ErrShort) {
		t.Fatalf("27 bytes: %v", err)
	}
	if _, _, err := ParseUnreachable(quoted[:19]); !errors.Is(err, ErrShort) {
		t.Fatalf("19 bytes: %v", err)
	}
	bad := bytes.Clone(quoted)
	bad[0] = 0x43
	if _, _, err := ParseUnreachable(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ihl 3: %v", err)
	}
	bad[0] = 0x65
	if _, _, err := ParseUnreachable(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("version 6: %v", err)
	}
}

func TestDirectedBroadcast(t *testing.T) {
	for _, tc := range []struct{ p, want string }{
		{"10.0.0.10/24", "10.0.0.255"},
		{"10.0.0.10/8", "10.255.255.255"},
		{"192.168.1.130/25", "192.168.1.255"},
		{"192.168.1.10/25", "192.168.1.127"},
		{"172.16.5.4/20", "172.16.15.255"},
		{"1.2.3.4/32", "1.2.3.4"},
	} {
		if got := directedBroadcast(netip.MustParsePrefix(tc.p)); got.String() != tc.want {
			t.Errorf("%s: %v, want %s", tc.p, got, tc.want)
		}
	}
}
