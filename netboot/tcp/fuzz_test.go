package tcp_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
)

// rawFrame wraps seg (a TCP segment as a peer might send it) in a valid
// IPv4 packet from 10.0.0.1 to the client, and an Ethernet frame to mac.
func rawFrame(mac [6]byte, seg []byte) []byte {
	f := ipv4.EthernetHeader{Dst: mac, Src: [6]byte{2, 0, 0, 0, 0, 1}, Type: ipv4.EtherTypeIPv4}.Append(nil)
	f = ipv4.AppendIPv4(f, ipv4.Header{Protocol: 6, Src: srvAddr.Addr(), Dst: cliAddr.Addr()}, len(seg))
	return append(f, seg...)
}

// FuzzSegments sends arbitrary TCP segments (with a correct or a wrong
// checksum) at a stack that listens: nothing may panic, the IP stack
// keeps working, and the TCP stack still makes connections afterwards.
func FuzzSegments(f *testing.F) {
	syn := make([]byte, 20)
	binary.BigEndian.PutUint16(syn[0:], 40000)
	binary.BigEndian.PutUint16(syn[2:], 80)
	syn[12], syn[13] = 5<<4, 0x02
	f.Add(syn, true)
	rst := append([]byte(nil), syn...)
	rst[13] = 0x04
	f.Add(rst, true)
	f.Add([]byte{0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0xf0, 0x12, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 0xff}, false)

	p := newPair(f)
	cliMAC := [6]byte{2, 0, 0, 0, 0, 2}
	raw := p.hub.NewPort([6]byte{2, 0, 0, 0, 0, 9}, 1500)
	l, err := p.ct.Listen(80)
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	serve(f, p.st, 7000, []byte("still alive"))
	f.Fuzz(func(t *testing.T, seg []byte, fixSum bool) {
		if len(seg) > 1400 {
			seg = seg[:1400]
		}
		seg = append([]byte(nil), seg...)
		if fixSum && len(seg) >= 20 {
			seg[16], seg[17] = 0, 0
			sum := pseudo(seg)
			binary.BigEndian.PutUint16(seg[16:], sum)
		}
		raw.Send(context.Background(), rawFrame(cliMAC, seg))
		if err := p.cli.Stack.Err(); err != nil {
			t.Fatalf("IP stack stopped: %v", err)
		}
	})
	// After everything, the stack still makes connections.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := p.ct.Dial(ctx, netip.AddrPortFrom(srvAddr.Addr(), 7000))
	if err != nil {
		f.Fatalf("dial after fuzzing: %v", err)
	}
	c.Close()
}

// pseudo is the TCP checksum of seg from the server to the client.
func pseudo(seg []byte) uint16 {
	var s uint32
	a, b := srvAddr.Addr().As4(), cliAddr.Addr().As4()
	for _, w := range [][]byte{a[:], b[:], {0, 6}, {byte(len(seg) >> 8), byte(len(seg))}, seg} {
		for i := 0; i+1 < len(w); i += 2 {
			s += uint32(w[i])<<8 | uint32(w[i+1])
		}
		if len(w)%2 == 1 {
			s += uint32(w[len(w)-1]) << 8
		}
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
