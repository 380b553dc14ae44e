package ipv4

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
)

// discardLink is a Link that never receives and drops what is sent, for
// feeding frames to Stack.input directly. It takes frames up to 64 KiB,
// as netfront with receive offload does, so that frames above the MTU
// are parsed too.
type discardLink struct{}

func (discardLink) MaxReceive() int { return 65535 + EthernetHeaderSize }

func (discardLink) MTU() int                                 { return 1500 }
func (discardLink) MAC() [6]byte                             { return macA }
func (discardLink) Send(context.Context, []byte) error       { return nil }
func (discardLink) Recv(ctx context.Context) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() }

func seedFrames() [][]byte {
	from := netip.AddrPortFrom(ipB, 69)
	quoted := ipPacket(Header{Protocol: ProtocolUDP, Src: ipA, Dst: ipB},
		AppendUDP(nil, ipA, ipB, UDPHeader{SrcPort: 50000, DstPort: 69}, []byte("rrq")))
	return [][]byte{
		udpFrame(macA, from, netip.AddrPortFrom(ipA, 50000), []byte("\x00\x03\x00\x01data")),
		udpFrame(BroadcastMAC, netip.AddrPortFrom(ipB, 67), netip.AddrPortFrom(limitedBroadcast, 68), make([]byte, 300)),
		arpFrame(BroadcastMAC, ARP{Op: ARPRequest, SenderMAC: macB, SenderIP: ipB, TargetIP: ipA}),
		arpFrame(macA, ARP{Op: ARPReply, SenderMAC: macB, SenderIP: ipB, TargetMAC: macA, TargetIP: ipA}),
		ethFrame(macA, macB, EtherTypeIPv4, ipPacket(Header{Protocol: ProtocolICMP, Src: ipB, Dst: ipA},
			AppendICMP(nil, ICMP{Type: ICMPEchoRequest}, []byte("ping")))),
		ethFrame(macA, macB, EtherTypeIPv4, ipPacket(Header{Protocol: 6, Src: ipB, Dst: ipA},
			[]byte("\x00\x50\xc3\x50\x00\x00\x00\x01\x00\x00\x00\x00\x50\x02\xff\xff\x00\x00\x00\x00"))),
		ethFrame(macA, macB, EtherTypeIPv4, ipPacket(Header{Protocol: ProtocolICMP, Src: ipB, Dst: ipA},
			AppendICMP(nil, ICMP{Type: ICMPUnreachable, Code: 3}, quoted[:28]))),
	}
}

// FuzzInput feeds arbitrary frames to a configured stack with a bound port
// and an unconfigured one: nothing may panic, and every frame is counted.
func FuzzInput(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		for _, configure := range []bool{true, false} {
			s, err := New(discardLink{}, Config{QueueLen: 4})
			if err != nil {
				t.Fatal(err)
			}
			if configure {
				s.Configure(netip.MustParsePrefix("10.0.0.10/24"), ipB)
			}
			c, _ := s.ListenUDP(50000)
			c68, _ := s.ListenUDP(68)
			// TCP's handler sees only whole IP packets to our address,
			// never more than the frame held.
			var handled [][]byte
			s.HandleIP(6, func(p []byte) { handled = append(handled, bytes.Clone(p)) })
			s.input(bytes.Clone(frame))
			st := s.Stats()
			if st.RxFrames != 1 {
				t.Fatalf("RxFrames = %d", st.RxFrames)
			}
			for _, p := range handled {
				h, _, err := ParseIPv4(p)
				if err != nil || len(p) != h.TotalLen || len(p) > len(frame) || h.Protocol != 6 || h.Dst != ipA {
					t.Fatalf("handler got %d bytes (%+v, %v) from a %d-byte frame", len(p), h, err, len(frame))
				}
			}
			if !configure && len(handled) > 0 {
				t.Fatal("TCP passed on before an address was configured")
			}
			// A delivered datagram never exceeds what the frame held.
			for _, conn := range []*UDPConn{c, c68} {
				select {
				case d := <-conn.q:
					if len(d.data) > len(frame) {
						t.Fatalf("datagram of %d bytes from a %d-byte frame", len(d.data), len(frame))
					}
				default:
				}
			}
			s.Close()
		}
	})
}

// FuzzParse runs every parser on the same bytes; what parses must re-encode
// to something that parses to the same value.
func FuzzParse(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s[EthernetHeaderSize:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := ParseARP(b); err == nil {
			if got, err := ParseARP(a.Append(nil)); err != nil || got != a {
				t.Fatalf("ARP round trip: %+v -> %+v %v", a, got, err)
			}
		}
		if h, p, err := ParseIPv4(b); err == nil {
			if len(p) != h.TotalLen-h.IHL || h.TotalLen > len(b) {
				t.Fatalf("payload %d bytes for %+v", len(p), h)
			}
			if u, up, err := ParseUDP(h.Src, h.Dst, p); err == nil {
				if len(up) > len(p)-UDPHeaderSize {
					t.Fatalf("UDP payload %d > %d", len(up), len(p)-UDPHeaderSize)
				}
				re := AppendUDP(nil, h.Src, h.Dst, u, up)
				if u2, up2, err := ParseUDP(h.Src, h.Dst, re); err != nil || u2 != u || !bytes.Equal(up, up2) {
					t.Fatalf("UDP round trip: %v", err)
				}
			}
			if m, body, err := ParseICMP(p); err == nil {
				re := AppendICMP(nil, m, body)
				if m2, body2, err := ParseICMP(re); err != nil || m2 != m || !bytes.Equal(body, body2) {
					t.Fatalf("ICMP round trip: %v", err)
				}
				ParseUnreachable(body)
			}
		}
		ParseUnreachable(b)
		ParseEthernet(b)
	})
}
