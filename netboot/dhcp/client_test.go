package dhcp_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/dhcp"
	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/gopvgrub/gopvgrub/netboot/nettest"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	serverMAC = [6]byte{0x00, 0x16, 0x3e, 0, 0, 1}
	clientMAC = [6]byte{0x00, 0x16, 0x3e, 0, 0, 2}
	rogueMAC  = [6]byte{0x00, 0x16, 0x3e, 0, 0, 3}
)

type bed struct {
	hub    *nettest.Hub
	srv    *nettest.DHCPServer
	client *nettest.Station
	conn   ipv4.PacketConn
}

func newBed(t *testing.T, configure func(*nettest.DHCPServer)) *bed {
	t.Helper()
	h := nettest.NewHub()
	ss, err := h.NewStation(serverMAC, netip.MustParsePrefix("10.0.0.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &nettest.DHCPServer{
		Listen:     ss.Listen,
		ServerID:   netip.MustParseAddr("10.0.0.1"),
		Subnet:     netip.MustParsePrefix("10.0.0.0/24"),
		Pool:       netip.MustParseAddr("10.0.0.100"),
		Router:     netip.MustParseAddr("10.0.0.1"),
		DNS:        []netip.Addr{netip.MustParseAddr("10.0.0.53")},
		NextServer: netip.MustParseAddr("10.0.0.2"),
		BootFile:   "pxe/boot",
		Options:    map[uint8][]byte{150: []byte("(nd)/pxe/menu.lst")},
	}
	if configure != nil {
		configure(srv)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	cs, err := h.NewStation(clientMAC, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := cs.Listen(dhcp.ClientPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		ss.Close()
		cs.Close()
	})
	return &bed{hub: h, srv: srv, client: cs, conn: conn}
}

func fast(cfg dhcp.Config) dhcp.Config {
	cfg.MAC = clientMAC
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Millisecond
		cfg.MaxTimeout = 80 * time.Millisecond
	}
	return cfg
}

func TestAcquire(t *testing.T) {
	b := newBed(t, nil)
	var logged int
	cfg := fast(dhcp.Config{Hostname: "guest1", Log: func(string, ...any) { logged++ }})
	c := dhcp.New(b.conn, cfg)
	l, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr.String() != "10.0.0.100/24" || l.Router.String() != "10.0.0.1" || l.ServerID.String() != "10.0.0.1" ||
		l.NextServer.String() != "10.0.0.2" || l.BootFile != "pxe/boot" || l.ConfigFile != "(nd)/pxe/menu.lst" ||
		len(l.DNS) != 1 || l.LeaseTime != time.Hour {
		t.Fatalf("lease %+v", l)
	}
	if st := c.Stats(); st.Discovers != 1 || st.Requests != 1 || st.Offers != 1 || st.Acks != 1 {
		t.Fatalf("stats %+v", st)
	}
	if logged == 0 {
		t.Fatal("nothing logged")
	}
	// What the server saw: our options.
	last := b.srv.Stats().Last
	if last.MessageType() != dhcpv4.MessageTypeRequest || last.HostName() != "guest1" || last.ClassIdentifier() != "gopvgrub" ||
		string(last.Options.Get(dhcpv4.OptionClientIdentifier)) != string(append([]byte{1}, clientMAC[:]...)) ||
		!last.RequestedIPAddress().Equal(net.ParseIP("10.0.0.100")) || !last.ServerIdentifier().Equal(net.ParseIP("10.0.0.1")) ||
		!last.IsBroadcast() || !last.IsOptionRequested(dhcpv4.GenericOptionCode(150)) || !last.IsOptionRequested(dhcpv4.OptionBootfileName) {
		t.Fatalf("request %s", last.Summary())
	}
	// The stack can be configured with it and then reach the server.
	if err := b.client.Stack.Configure(l.Addr, l.Router); err != nil {
		t.Fatal(err)
	}
}

func TestRetransmitDiscover(t *testing.T) {
	b := newBed(t, func(s *nettest.DHCPServer) { s.IgnoreDiscovers = 2; s.IgnoreRequests = 1 })
	c := dhcp.New(b.conn, fast(dhcp.Config{}))
	if _, err := c.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Discovers != 3 || st.Requests != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNakRestarts(t *testing.T) {
	b := newBed(t, func(s *nettest.DHCPServer) { s.NakRequests = 1 })
	xids := []uint32{}
	c := dhcp.New(b.conn, fast(dhcp.Config{XID: func() uint32 { x := uint32(100 + len(xids)); xids = append(xids, x); return x }}))
	l, err := c.Acquire(context.Background())
	if err != nil || l.Addr.Addr().String() != "10.0.0.100" {
		t.Fatalf("%v %v", l, err)
	}
	if st := c.Stats(); st.Naks != 1 || st.Discovers != 2 || len(xids) != 2 {
		t.Fatalf("stats %+v, xids %v", st, xids)
	}

	// A server that always refuses: bounded by Restarts.
	b = newBed(t, func(s *nettest.DHCPServer) { s.NakRequests = 100 })
	c = dhcp.New(b.conn, fast(dhcp.Config{Restarts: 1}))
	_, err = c.Acquire(context.Background())
	if !errors.Is(err, dhcp.ErrNoAck) || c.Stats().Naks != 2 {
		t.Fatalf("err %v, stats %+v", err, c.Stats())
	}
	t.Log(err)
}

func TestNoServer(t *testing.T) {
	h := nettest.NewHub()
	cs, _ := h.NewStation(clientMAC, netip.Prefix{})
	defer cs.Close()
	conn, _ := cs.Listen(dhcp.ClientPort)
	c := dhcp.New(conn, fast(dhcp.Config{Attempts: 3}))
	start := time.Now()
	_, err := c.Acquire(context.Background())
	if !errors.Is(err, dhcp.ErrNoOffer) || c.Stats().Discovers != 3 {
		t.Fatalf("err %v, stats %+v", err, c.Stats())
	}
	// 20 + 40 + 80 ms plus jitter.
	if d := time.Since(start); d < 140*time.Millisecond || d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	// The context bounds it too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	c = dhcp.New(conn, dhcp.Config{MAC: clientMAC})
	if _, err := c.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestBadOffersIgnored(t *testing.T) {
	// The server's replies go through Mangle: the first offer names
	// another transaction, the second offers an unusable address; the
	// third is fine.
	var n atomic.Int32
	b := newBed(t, func(s *nettest.DHCPServer) {
		s.Mangle = func(r *dhcpv4.DHCPv4) {
			if r.MessageType() != dhcpv4.MessageTypeOffer {
				return
			}
			switch n.Add(1) {
			case 1:
				r.TransactionID[0] ^= 0xff
			case 2:
				r.YourIPAddr = net.ParseIP("224.0.0.1")
			}
		}
	})
	c := dhcp.New(b.conn, fast(dhcp.Config{}))
	l, err := c.Acquire(context.Background())
	if err != nil || l.Addr.Addr().String() != "10.0.0.100" {
		t.Fatalf("%v %v", l, err)
	}
	if st := c.Stats(); st.Discovers != 3 || st.Ignored != 2 {
		t.Fatalf("stats %+v", st)
	}

	// Only unusable offers: the error says why.
	b = newBed(t, func(s *nettest.DHCPServer) {
		s.Mangle = func(r *dhcpv4.DHCPv4) { r.YourIPAddr = net.ParseIP("127.0.0.1") }
	})
	c = dhcp.New(b.conn, fast(dhcp.Config{Attempts: 2}))
	_, err = c.Acquire(context.Background())
	if !errors.Is(err, dhcp.ErrNoOffer) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("err %v", err)
	}
}

func TestRogueServer(t *testing.T) {
	// A second server answers too; the client takes the first offer
	// and then only listens to the server it chose.
	b := newBed(t, nil)
	rs, err := b.hub.NewStation(rogueMAC, netip.MustParsePrefix("10.0.0.66/24"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	rogue := &nettest.DHCPServer{
		Listen:   rs.Listen,
		ServerID: netip.MustParseAddr("10.0.0.66"),
		Subnet:   netip.MustParsePrefix("10.0.0.0/24"),
		Pool:     netip.MustParseAddr("10.0.0.200"),
		BootFile: "evil",
	}
	if err := rogue.Start(); err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	c := dhcp.New(b.conn, fast(dhcp.Config{}))
	l, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Whichever offer came first, the ACK matches it.
	switch l.ServerID.String() {
	case "10.0.0.1":
		if l.Addr.Addr().String() != "10.0.0.100" || l.BootFile != "pxe/boot" {
			t.Fatalf("lease %+v", l)
		}
	case "10.0.0.66":
		if l.Addr.Addr().String() != "10.0.0.200" || l.BootFile != "evil" {
			t.Fatalf("lease %+v", l)
		}
	default:
		t.Fatalf("lease %+v", l)
	}
}

func TestFloodDoesNotExtendTheWait(t *testing.T) {
	// A station floods port 68 with replies for another transaction;
	// no real server answers. The client still gives up on time.
	h := nettest.NewHub()
	cs, _ := h.NewStation(clientMAC, netip.Prefix{})
	defer cs.Close()
	rs, _ := h.NewStation(rogueMAC, netip.MustParsePrefix("10.0.0.66/24"))
	defer rs.Close()
	rc, _ := rs.Listen(dhcp.ServerPort)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		m, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer), dhcpv4.WithTransactionID(dhcpv4.TransactionID{9, 9, 9, 9}),
			dhcpv4.WithHwAddr(net.HardwareAddr(clientMAC[:])), dhcpv4.WithYourIP(net.ParseIP("10.0.0.9")))
		m.OpCode = dhcpv4.OpcodeBootReply
		b := m.ToBytes()
		for ctx.Err() == nil {
			rc.WriteTo(ctx, b, netip.MustParseAddrPort("255.255.255.255:68"))
			time.Sleep(200 * time.Microsecond)
		}
	}()
	conn, _ := cs.Listen(dhcp.ClientPort)
	c := dhcp.New(conn, fast(dhcp.Config{Attempts: 2, XID: func() uint32 { return 1 }}))
	start := time.Now()
	_, err := c.Acquire(context.Background())
	if !errors.Is(err, dhcp.ErrNoOffer) || time.Since(start) > 2*time.Second || c.Stats().Ignored == 0 {
		t.Fatalf("err %v after %v, stats %+v", err, time.Since(start), c.Stats())
	}
}
