package ipv4

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// testLink is a Link whose peer is the test: it injects frames with in and
// reads what the stack sent from out.
type testLink struct {
	mac     [6]byte
	mtu     int
	in      chan []byte
	out     chan []byte
	recvErr chan error
}

func newTestLink() *testLink {
	return &testLink{mac: macA, mtu: 1500, in: make(chan []byte, 16), out: make(chan []byte, 64), recvErr: make(chan error, 1)}
}

func (l *testLink) MTU() int        { return l.mtu }
func (l *testLink) MAC() [6]byte    { return l.mac }
func (l *testLink) inject(f []byte) { l.in <- f }

func (l *testLink) Send(ctx context.Context, f []byte) error {
	select {
	case l.out <- bytes.Clone(f):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *testLink) Recv(ctx context.Context) ([]byte, error) {
	select {
	case f := <-l.in:
		return f, nil
	case err := <-l.recvErr:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sent waits for the next frame the stack sent.
func (l *testLink) sent(t *testing.T) []byte {
	t.Helper()
	select {
	case f := <-l.out:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("stack sent nothing")
		return nil
	}
}

// quiet checks that nothing is sent for a moment.
func (l *testLink) quiet(t *testing.T) {
	t.Helper()
	select {
	case f := <-l.out:
		t.Fatalf("unexpected frame %x", f)
	case <-time.After(50 * time.Millisecond):
	}
}

func newStack(t *testing.T, cfg Config) (*Stack, *testLink) {
	t.Helper()
	l := newTestLink()
	s, err := New(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, l
}

func configured(t *testing.T, cfg Config) (*Stack, *testLink) {
	s, l := newStack(t, cfg)
	if err := s.Configure(netip.MustParsePrefix("10.0.0.10/24"), ipB); err != nil {
		t.Fatal(err)
	}
	return s, l
}

func ethFrame(dst, src HardwareAddr, typ uint16, payload []byte) []byte {
	return append(EthernetHeader{Dst: dst, Src: src, Type: typ}.Append(nil), payload...)
}

func udpFrame(dstMAC HardwareAddr, from, to netip.AddrPort, payload []byte) []byte {
	u := AppendUDP(nil, from.Addr(), to.Addr(), UDPHeader{SrcPort: from.Port(), DstPort: to.Port()}, payload)
	return ethFrame(dstMAC, macB, EtherTypeIPv4, ipPacket(Header{Protocol: ProtocolUDP, Src: from.Addr(), Dst: to.Addr()}, u))
}

func arpFrame(dstMAC HardwareAddr, a ARP) []byte {
	return ethFrame(dstMAC, a.SenderMAC, EtherTypeARP, a.Append(nil))
}

// waitStats polls until cond holds on the stats (the stack handles frames
// on its own goroutine).
func waitStats(t *testing.T, s *Stack, what string, cond func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// parseSentUDP decodes a frame the stack sent as Ethernet/IPv4/UDP.
func parseSentUDP(t *testing.T, f []byte) (EthernetHeader, Header, UDPHeader, []byte) {
	t.Helper()
	if len(f) < MinFrame {
		t.Fatalf("frame of %d bytes, not padded to %d", len(f), MinFrame)
	}
	eh, p, err := ParseEthernet(f)
	if err != nil || eh.Type != EtherTypeIPv4 || eh.Src != macA {
		t.Fatalf("ethernet %+v %v", eh, err)
	}
	h, p, err := ParseIPv4(p)
	if err != nil || h.Protocol != ProtocolUDP || h.Flags != flagDF || h.TTL != DefaultTTL {
		t.Fatalf("ip %+v %v", h, err)
	}
	u, p, err := ParseUDP(h.Src, h.Dst, p)
	if err != nil {
		t.Fatalf("udp: %v", err)
	}
	return eh, h, u, p
}

func TestNewRejectsBadLinks(t *testing.T) {
	for _, tc := range []struct {
		name string
		mac  [6]byte
		mtu  int
	}{
		{"zero MAC", [6]byte{}, 1500},
		{"multicast MAC", [6]byte{1, 0, 0x5e, 0, 0, 1}, 1500},
		{"tiny MTU", macA, 100},
		{"huge MTU", macA, 70000},
	} {
		l := newTestLink()
		l.mac, l.mtu = tc.mac, tc.mtu
		if _, err := New(l, Config{}); !errors.Is(err, ErrBadAddress) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestConfigure(t *testing.T) {
	s, _ := newStack(t, Config{})
	for _, tc := range []struct {
		addr, router string
		ok           bool
	}{
		{"10.0.0.10/24", "10.0.0.1", true},
		{"10.0.0.10/24", "", true},
		{"10.0.0.10/32", "10.0.0.1", true},
		{"0.0.0.0/24", "", false},
		{"224.0.0.1/24", "", false},
		{"255.255.255.255/32", "", false},
		{"10.0.0.255/24", "", false}, // the subnet's broadcast
		{"10.0.0.10/0", "", false},
		{"10.0.0.10/24", "10.0.0.10", false},
		{"10.0.0.10/24", "224.0.0.1", false},
		{"10.0.0.10/24", "::1", false},
	} {
		var r netip.Addr
		if tc.router != "" {
			r = netip.MustParseAddr(tc.router)
		}
		err := s.Configure(netip.MustParsePrefix(tc.addr), r)
		if (err == nil) != tc.ok {
			t.Errorf("Configure(%s, %s) = %v", tc.addr, tc.router, err)
		}
	}
}

func TestARPAnswered(t *testing.T) {
	s, l := configured(t, Config{})
	l.inject(arpFrame(BroadcastMAC, ARP{Op: ARPRequest, SenderMAC: macB, SenderIP: ipB, TargetIP: ipA}))
	f := l.sent(t)
	eh, p, _ := ParseEthernet(f)
	a, err := ParseARP(p)
	if err != nil || eh.Dst != macB || a.Op != ARPReply || a.SenderIP != ipA || a.SenderMAC != macA || a.TargetIP != ipB || a.TargetMAC != macB {
		t.Fatalf("reply %+v %+v %v", eh, a, err)
	}
	waitStats(t, s, "arp reply", func(st Stats) bool { return st.ARPReplies == 1 })

	// The requester was learned: sending to it needs no ARP request.
	c, _ := s.ListenUDP(0)
	if err := c.WriteTo(context.Background(), []byte("x"), netip.AddrPortFrom(ipB, 69)); err != nil {
		t.Fatal(err)
	}
	eh, _, _, _ = parseSentUDP(t, l.sent(t))
	if eh.Dst != macB {
		t.Fatalf("sent to %v", eh.Dst)
	}

	// Requests for other addresses are not answered.
	l.inject(arpFrame(BroadcastMAC, ARP{Op: ARPRequest, SenderMAC: macB, SenderIP: ipB, TargetIP: netip.MustParseAddr("10.0.0.99")}))
	l.quiet(t)
}

func TestARPResolve(t *testing.T) {
	s, l := configured(t, Config{ARPTimeout: time.Second})
	c, err := s.ListenUDP(50000)
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), 69)
	macC := HardwareAddr{0x00, 0x16, 0x3e, 0, 0, 3}

	// An unsolicited reply is not cached.
	l.inject(arpFrame(macA, ARP{Op: ARPReply, SenderMAC: macC, SenderIP: dst.Addr(), TargetMAC: macA, TargetIP: ipA}))
	waitStats(t, s, "rx", func(st Stats) bool { return st.RxFrames == 1 })

	errc := make(chan error, 1)
	go func() { errc <- c.WriteTo(context.Background(), []byte("hello"), dst) }()
	f := l.sent(t)
	eh, p, _ := ParseEthernet(f)
	a, err := ParseARP(p)
	if err != nil || eh.Dst != BroadcastMAC || a.Op != ARPRequest || a.TargetIP != dst.Addr() || a.SenderIP != ipA {
		t.Fatalf("request %+v %+v %v", eh, a, err)
	}
	l.inject(arpFrame(macA, ARP{Op: ARPReply, SenderMAC: macC, SenderIP: dst.Addr(), TargetMAC: macA, TargetIP: ipA}))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	eh, h, u, payload := parseSentUDP(t, l.sent(t))
	if eh.Dst != macC || h.Src != ipA || h.Dst != dst.Addr() || u.SrcPort != 50000 || u.DstPort != 69 || string(payload) != "hello" {
		t.Fatalf("datagram %+v %+v %+v %q", eh, h, u, payload)
	}
}

func TestARPNoReply(t *testing.T) {
	s, l := configured(t, Config{ARPTimeout: 10 * time.Millisecond, ARPAttempts: 3})
	c, _ := s.ListenUDP(0)
	err := c.WriteTo(context.Background(), []byte("x"), netip.AddrPortFrom(netip.MustParseAddr("10.0.0.3"), 69))
	if !errors.Is(err, ErrNoARPReply) {
		t.Fatalf("err = %v", err)
	}
	for range 3 {
		l.sent(t)
	}
	l.quiet(t)

	// A context ends the wait early.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	s.cfg.ARPTimeout = time.Hour
	if err := c.WriteTo(ctx, []byte("x"), netip.AddrPortFrom(netip.MustParseAddr("10.0.0.3"), 69)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestRoutes(t *testing.T) {
	s, l := newStack(t, Config{ARPTimeout: 10 * time.Millisecond, ARPAttempts: 1})
	c, _ := s.ListenUDP(68)
	ctx := context.Background()
	bcast := netip.AddrPortFrom(limitedBroadcast, 67)

	// Unconfigured: broadcasts go out from 0.0.0.0, unicasts fail.
	if err := c.WriteTo(ctx, []byte("discover"), bcast); err != nil {
		t.Fatal(err)
	}
	eh, h, _, _ := parseSentUDP(t, l.sent(t))
	if eh.Dst != BroadcastMAC || !h.Src.IsUnspecified() || h.Dst != limitedBroadcast {
		t.Fatalf("broadcast %+v %+v", eh, h)
	}
	if err := c.WriteTo(ctx, []byte("x"), netip.AddrPortFrom(ipB, 67)); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("unconfigured unicast: %v", err)
	}

	// No router: off-link fails; directed broadcast is a broadcast.
	if err := s.Configure(netip.MustParsePrefix("10.0.0.10/24"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteTo(ctx, []byte("x"), netip.MustParseAddrPort("192.168.0.1:69")); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("off-link: %v", err)
	}
	if err := c.WriteTo(ctx, []byte("x"), netip.MustParseAddrPort("10.0.0.255:69")); err != nil {
		t.Fatal(err)
	}
	eh, h, _, _ = parseSentUDP(t, l.sent(t))
	if eh.Dst != BroadcastMAC || h.Src != ipA {
		t.Fatalf("directed broadcast %+v %+v", eh, h)
	}

	// With a router, off-link traffic is ARPed for the router.
	if err := s.Configure(netip.MustParsePrefix("10.0.0.10/24"), ipB); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.WriteTo(ctx, []byte("x"), netip.MustParseAddrPort("192.168.0.1:69")) }()
	_, p, _ := ParseEthernet(l.sent(t))
	if a, _ := ParseARP(p); a.TargetIP != ipB {
		t.Fatalf("ARP for %v, want the router", a.TargetIP)
	}
	<-errc

	for _, bad := range []string{"0.0.0.0:69", "224.0.0.1:69", "127.0.0.1:69", "10.0.0.10:69", "[::1]:69", "10.0.0.1:0"} {
		if err := c.WriteTo(ctx, []byte("x"), netip.MustParseAddrPort(bad)); !errors.Is(err, ErrBadAddress) {
			t.Errorf("send to %s: %v", bad, err)
		}
	}
	if err := c.WriteTo(ctx, make([]byte, 1473), bcast); !errors.Is(err, ErrTooBig) {
		t.Fatalf("1473 bytes: %v", err)
	}
	if err := c.WriteTo(ctx, make([]byte, s.MaxUDPPayload()), bcast); err != nil {
		t.Fatalf("1472 bytes: %v", err)
	}
	if f := l.sent(t); len(f) != 1514 {
		t.Fatalf("full frame %d bytes", len(f))
	}
}

func TestReceiveUDP(t *testing.T) {
	s, l := configured(t, Config{})
	c, _ := s.ListenUDP(50000)
	from := netip.AddrPortFrom(ipB, 1234)
	ctx := context.Background()

	l.inject(udpFrame(macA, from, netip.AddrPortFrom(ipA, 50000), []byte("one")))
	// Padding after the IP packet is ignored.
	l.inject(append(udpFrame(macA, from, netip.AddrPortFrom(ipA, 50000), []byte("two")), 0, 0, 0, 0))
	// Broadcasts reach the port too.
	l.inject(udpFrame(BroadcastMAC, from, netip.AddrPortFrom(limitedBroadcast, 50000), []byte("three")))
	l.inject(udpFrame(BroadcastMAC, from, netip.MustParseAddrPort("10.0.0.255:50000"), []byte("four")))
	buf := make([]byte, 100)
	for _, want := range []string{"one", "two", "three", "four"} {
		n, f, err := c.ReadFrom(ctx, buf)
		if err != nil || f != from || string(buf[:n]) != want {
			t.Fatalf("ReadFrom = %q %v %v, want %q", buf[:n], f, err, want)
		}
	}
	// A short buffer truncates.
	l.inject(udpFrame(macA, from, netip.AddrPortFrom(ipA, 50000), []byte("truncated")))
	if n, _, err := c.ReadFrom(ctx, buf[:4]); err != nil || n != 4 {
		t.Fatalf("short read %d %v", n, err)
	}

	// Dropped: other MAC, other IP, unbound port, bad checksum,
	// fragment, VLAN, IPv6, multicast source MAC, oversize, runt.
	wrongSum := udpFrame(macA, from, netip.AddrPortFrom(ipA, 50000), []byte("bad"))
	wrongSum[len(wrongSum)-1] ^= 1
	frag := udpFrame(macA, from, netip.AddrPortFrom(ipA, 50000), []byte("frag"))
	frag[14+6] |= 0x20
	frag[14+10], frag[14+11] = 0, 0
	c16 := Checksum(frag[14:34], 0)
	frag[14+10], frag[14+11] = byte(c16>>8), byte(c16)
	mcastSrc := udpFrame(macA, from, netip.AddrPortFrom(ipA, 50000), []byte("m"))
	mcastSrc[6] |= 1
	for _, f := range [][]byte{
		udpFrame(macB, from, netip.AddrPortFrom(ipA, 50000), []byte("other mac")),
		udpFrame(macA, from, netip.MustParseAddrPort("10.0.0.11:50000"), []byte("other ip")),
		udpFrame(macA, from, netip.AddrPortFrom(ipA, 50001), []byte("no port")),
		wrongSum,
		frag,
		ethFrame(macA, macB, EtherTypeVLAN, make([]byte, 50)),
		ethFrame(macA, macB, 0x86dd, make([]byte, 50)),
		mcastSrc,
		ethFrame(macA, macB, EtherTypeIPv4, make([]byte, 1501)),
		macA[:],
	} {
		l.inject(f)
	}
	waitStats(t, s, "drops", func(st Stats) bool {
		return st.NotForUs == 2 && st.NoPort == 1 && st.BadChecksum == 1 && st.Fragments == 1 &&
			st.Unsupported == 2 && st.Oversize == 1 && st.Malformed == 2
	})
	ctx2, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, _, err := c.ReadFrom(ctx2, buf); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dropped frames were delivered: %v", err)
	}
}

func TestReceiveUnconfigured(t *testing.T) {
	// A DHCP client has no address: a unicast offer to the offered
	// address at our MAC must arrive; the same to another MAC must not.
	s, l := newStack(t, Config{})
	c, _ := s.ListenUDP(68)
	from := netip.AddrPortFrom(ipB, 67)
	l.inject(udpFrame(macB, from, netip.MustParseAddrPort("10.0.0.50:68"), []byte("not ours")))
	l.inject(udpFrame(macA, from, netip.MustParseAddrPort("10.0.0.50:68"), []byte("offer")))
	buf := make([]byte, 64)
	n, _, err := c.ReadFrom(context.Background(), buf)
	if err != nil || string(buf[:n]) != "offer" {
		t.Fatalf("ReadFrom = %q %v", buf[:n], err)
	}
	if st := s.Stats(); st.NotForUs != 1 {
		t.Fatalf("stats %+v", st)
	}
	// ARP requests are not answered without an address.
	l.inject(arpFrame(BroadcastMAC, ARP{Op: ARPRequest, SenderMAC: macB, SenderIP: ipB, TargetIP: netip.MustParseAddr("10.0.0.50")}))
	l.quiet(t)
}

func TestQueueFull(t *testing.T) {
	s, l := configured(t, Config{QueueLen: 2})
	c, _ := s.ListenUDP(50000)
	for range 5 {
		l.inject(udpFrame(macA, netip.AddrPortFrom(ipB, 1), netip.AddrPortFrom(ipA, 50000), []byte("x")))
	}
	waitStats(t, s, "queue full", func(st Stats) bool { return st.QueueFull == 3 })
	c.Close()
}

func TestEcho(t *testing.T) {
	s, l := configured(t, Config{})
	req := AppendICMP(nil, ICMP{Type: ICMPEchoRequest, Rest: [4]byte{0x12, 0x34, 0, 7}}, []byte("ping data"))
	l.inject(ethFrame(macA, macB, EtherTypeIPv4, ipPacket(Header{Protocol: ProtocolICMP, Src: ipB, Dst: ipA}, req)))
	eh, p, _ := ParseEthernet(l.sent(t))
	h, p, err := ParseIPv4(p)
	if err != nil || eh.Dst != macB || h.Src != ipA || h.Dst != ipB || h.Protocol != ProtocolICMP {
		t.Fatalf("reply %+v %+v %v", eh, h, err)
	}
	m, body, err := ParseICMP(p)
	if err != nil || m.Type != ICMPEchoReply || m.Rest != [4]byte{0x12, 0x34, 0, 7} || string(body) != "ping data" {
		t.Fatalf("echo reply %+v %q %v", m, body, err)
	}
	waitStats(t, s, "echo", func(st Stats) bool { return st.EchoReplies == 1 })

	// Broadcast pings and other ICMP types get no answer.
	l.inject(ethFrame(BroadcastMAC, macB, EtherTypeIPv4, ipPacket(Header{Protocol: ProtocolICMP, Src: ipB, Dst: limitedBroadcast}, req)))
	l.inject(ethFrame(macA, macB, EtherTypeIPv4, ipPacket(Header{Protocol: ProtocolICMP, Src: ipB, Dst: ipA}, AppendICMP(nil, ICMP{Type: 13}, nil))))
	l.quiet(t)
}

func TestUnreachable(t *testing.T) {
	s, l := configured(t, Config{})
	c, _ := s.ListenUDP(50000)
	server := netip.AddrPortFrom(ipB, 69)
	quoted := ipPacket(Header{Protocol: ProtocolUDP, Src: ipA, Dst: ipB},
		AppendUDP(nil, ipA, ipB, UDPHeader{SrcPort: 50000, DstPort: 69}, []byte("rrq")))
	msg := AppendICMP(nil, ICMP{Type: ICMPUnreachable, Code: ICMPCodePortUnreach}, quoted[:28])
	l.inject(ethFrame(macA, macB, EtherTypeIPv4, ipPacket(Header{Protocol: ProtocolICMP, Src: ipB, Dst: ipA}, msg)))
	_, from, err := c.ReadFrom(context.Background(), nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Dst != server || ue.Code != 3 || ue.Reporter != ipB || from != server {
		t.Fatalf("ReadFrom = %v %v", from, err)
	}
	if ue.Error() == "" {
		t.Fatal("empty message")
	}
	// About another port: nobody to tell.
	quoted2 := bytes.Clone(quoted)
	quoted2[20], quoted2[21] = 0xc3, 0x51 // source port 50001
	msg = AppendICMP(nil, ICMP{Type: ICMPUnreachable, Code: 3}, quoted2[:28])
	l.inject(ethFrame(macA, macB, EtherTypeIPv4, ipPacket(Header{Protocol: ProtocolICMP, Src: ipB, Dst: ipA}, msg)))
	waitStats(t, s, "unreachable", func(st Stats) bool { return st.Unreachable == 1 && st.NoPort == 1 })
}

func TestListenUDP(t *testing.T) {
	s, _ := newStack(t, Config{})
	c, err := s.ListenUDP(68)
	if err != nil || c.LocalPort() != 68 {
		t.Fatal(err)
	}
	if _, err := s.ListenUDP(68); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("second bind: %v", err)
	}
	c.Close()
	c.Close()
	if _, err := s.ListenUDP(68); err != nil {
		t.Fatalf("after close: %v", err)
	}
	if _, _, err := c.ReadFrom(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := c.WriteTo(context.Background(), nil, netip.AddrPortFrom(limitedBroadcast, 67)); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	seen := map[uint16]bool{}
	for range 100 {
		c, err := s.ListenUDP(0)
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalPort()
		if p < firstEphemeral || seen[p] {
			t.Fatalf("ephemeral port %d", p)
		}
		seen[p] = true
	}
}

func TestEphemeralExhaustion(t *testing.T) {
	s, _ := newStack(t, Config{QueueLen: 1})
	for range numEphemeral {
		if _, err := s.ListenUDP(0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ListenUDP(0); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("err = %v", err)
	}
}

func TestLinkFailure(t *testing.T) {
	s, l := configured(t, Config{})
	c, _ := s.ListenUDP(0)
	linkErr := errors.New("backend gone")
	l.recvErr <- linkErr
	_, _, err := c.ReadFrom(context.Background(), nil)
	if !errors.Is(err, linkErr) || !errors.Is(s.Err(), linkErr) {
		t.Fatalf("ReadFrom = %v, Err = %v", err, s.Err())
	}
	if err := c.WriteTo(context.Background(), nil, netip.AddrPortFrom(ipB, 1)); !errors.Is(err, linkErr) {
		t.Fatalf("WriteTo = %v", err)
	}
	if _, err := s.ListenUDP(0); !errors.Is(err, linkErr) {
		t.Fatalf("ListenUDP = %v", err)
	}
}

func TestClose(t *testing.T) {
	s, _ := configured(t, Config{})
	c, _ := s.ListenUDP(0)
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(context.Background(), nil)
		errc <- err
	}()
	s.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrom after Close = %v", err)
	}
	s.Close() // idempotent
}

func TestARPCacheBounded(t *testing.T) {
	s, l := configured(t, Config{ARPCacheSize: 4})
	for i := range 20 {
		ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(100 + i)})
		mac := HardwareAddr{0, 0x16, 0x3e, 1, 0, byte(i)}
		l.inject(arpFrame(BroadcastMAC, ARP{Op: ARPRequest, SenderMAC: mac, SenderIP: ip, TargetIP: ipA}))
		l.sent(t)
	}
	s.mu.Lock()
	n := len(s.arp)
	s.mu.Unlock()
	if n != 4 {
		t.Fatalf("cache holds %d entries", n)
	}
}

// TestHandleIPAndSendIP: another protocol (TCP, 6) reaches its handler
// only when unicast to our address, and SendIP sends a packet built
// elsewhere after checking it.
func TestHandleIPAndSendIP(t *testing.T) {
	s, l := configured(t, Config{})
	if err := s.HandleIP(ProtocolUDP, func([]byte) {}); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("HandleIP(UDP): %v", err)
	}
	got := make(chan []byte, 4)
	s.HandleIP(6, func(p []byte) { got <- bytes.Clone(p) })
	seg := []byte("not really a TCP segment")
	pkt := ipPacket(Header{Protocol: 6, Src: ipB, Dst: ipA}, seg)
	l.inject(append(ethFrame(macA, macB, EtherTypeIPv4, pkt), 0, 0, 0, 0)) // padding is cut
	l.inject(ethFrame(BroadcastMAC, macB, EtherTypeIPv4, ipPacket(Header{Protocol: 6, Src: ipB, Dst: limitedBroadcast}, seg)))
	l.inject(ethFrame(macA, macB, EtherTypeIPv4, ipPacket(Header{Protocol: 47, Src: ipB, Dst: ipA}, seg)))
	select {
	case p := <-got:
		if !bytes.Equal(p, pkt) {
			t.Fatalf("handler got %x, want %x", p, pkt)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler got nothing")
	}
	waitStats(t, s, "unsupported", func(st Stats) bool { return st.Unsupported == 2 && st.Handled == 1 })
	if len(got) != 0 {
		t.Fatal("a broadcast or another protocol reached the handler")
	}
	s.HandleIP(6, nil)
	l.inject(ethFrame(macA, macB, EtherTypeIPv4, pkt))
	waitStats(t, s, "unsupported after removal", func(st Stats) bool { return st.Unsupported == 3 })

	ctx := context.Background()
	// To an on-link host: ARP first, then the frame, unchanged.
	out := ipPacket(Header{Protocol: 6, Src: ipA, Dst: ipB}, seg)
	done := make(chan error, 1)
	go func() { done <- s.SendIP(ctx, out) }()
	req, _ := ParseARP(l.sent(t)[EthernetHeaderSize:])
	l.inject(arpFrame(macA, ARP{Op: ARPReply, SenderMAC: macB, SenderIP: req.TargetIP, TargetMAC: macA, TargetIP: ipA}))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eh, p, _ := ParseEthernet(l.sent(t))
	if eh.Dst != macB || eh.Type != EtherTypeIPv4 || !bytes.Equal(p[:len(out)], out) {
		t.Fatalf("sent %+v %x", eh, p)
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		err  error
	}{
		{"short", out[:10], ErrShort},
		{"bad checksum", append([]byte{out[0], out[1] ^ 1}, out[2:]...), ErrChecksum},
		{"wrong source", ipPacket(Header{Protocol: 6, Src: ipB, Dst: ipB}, seg), ErrBadAddress},
		{"too big", ipPacket(Header{Protocol: 6, Src: ipA, Dst: ipB}, make([]byte, 1500)), ErrTooBig},
	} {
		if err := s.SendIP(ctx, tc.pkt); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	l.quiet(t)
}

// largeLink is a testLink that delivers frames up to max bytes (receive
// offload).
type largeLink struct {
	*testLink
	max int
}

func (l largeLink) MaxReceive() int { return l.max }

// TestLargeReceive: a LargeReceiver's frames above the MTU reach the
// protocol handlers, up to its limit; other links drop them.
func TestLargeReceive(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int // 0: plain link
		size int // TCP payload
		ok   bool
	}{
		{"plain, MTU-sized", 0, 1480, true},
		{"plain, above the MTU", 0, 30000, false},
		{"large, 64 KiB segment", 65535 + EthernetHeaderSize, 65535 - HeaderSize, true},
		{"large, above its limit", 9000 + EthernetHeaderSize, 9000, false},
		{"large, limit beyond IPv4's is capped", 1 << 20, 65535 - HeaderSize, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLink()
			var l Link = tl
			if tc.max > 0 {
				l = largeLink{tl, tc.max}
			}
			s, err := New(l, Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Configure(netip.MustParsePrefix("10.0.0.10/24"), ipB); err != nil {
				t.Fatal(err)
			}
			got := make(chan int, 1)
			if err := s.HandleIP(6, func(p []byte) { got <- len(p) }); err != nil {
				t.Fatal(err)
			}
			tl.inject(ethFrame(macA, macB, EtherTypeIPv4, ipPacket(Header{Protocol: 6, Src: ipB, Dst: ipA}, make([]byte, tc.size))))
			select {
			case n := <-got:
				if !tc.ok || n != HeaderSize+tc.size {
					t.Fatalf("handler got %d bytes (ok %v)", n, tc.ok)
				}
			case <-time.After(200 * time.Millisecond):
				if tc.ok {
					t.Fatalf("frame not delivered: %+v", s.Stats())
				}
				if st := s.Stats(); st.Oversize != 1 {
					t.Fatalf("frame not counted as oversize: %+v", st)
				}
			}
		})
	}
}
