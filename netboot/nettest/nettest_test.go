package nettest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	macA = [6]byte{0x00, 0x16, 0x3e, 0, 0, 1}
	macB = [6]byte{0x00, 0x16, 0x3e, 0, 0, 2}
	macC = [6]byte{0x00, 0x16, 0x3e, 0, 0, 3}
)

func recv(t *testing.T, p *Port) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	f, err := p.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestHub(t *testing.T) {
	h := NewHub()
	a, b, c := h.NewPort(macA, 1500), h.NewPort(macB, 1500), h.NewPort(macC, 1500)
	ctx := context.Background()
	frame := []byte("frame one")
	if err := a.Send(ctx, frame); err != nil {
		t.Fatal(err)
	}
	frame[0] = 'X' // the hub copied it
	for _, p := range []*Port{b, c} {
		if f := recv(t, p); string(f) != "frame one" {
			t.Fatalf("got %q", f)
		}
	}
	// The sender does not hear itself.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := a.Recv(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sender received: %v", err)
	}

	// Faults: drop the first, duplicate the second, hold the third
	// and release it behind the fourth.
	var held []byte
	n := 0
	h.SetFault(func(from *Port, f []byte) [][]byte {
		n++
		switch n {
		case 1:
			return nil
		case 2:
			return [][]byte{f, f}
		case 3:
			held = f
			return nil
		case 4:
			return [][]byte{f, held}
		}
		return [][]byte{f}
	})
	for _, s := range []string{"1", "2", "3", "4"} {
		a.Send(ctx, []byte(s))
	}
	var got []string
	for range 4 {
		got = append(got, string(recv(t, b)))
	}
	if want := []string{"2", "2", "4", "3"}; !equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if a.Sent() != 5 {
		t.Fatalf("Sent = %d", a.Sent())
	}
	h.SetFault(nil)

	// A full queue drops and counts.
	for range QueueLen + 3 {
		a.Send(ctx, []byte("x"))
	}
	if d := c.Dropped(); d < 3 {
		t.Fatalf("Dropped = %d", d)
	}

	b.Close()
	if err := b.Send(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if _, err := b.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStationsAndParseUDPFrame(t *testing.T) {
	h := NewHub()
	a, err := h.NewStation(macA, netip.MustParsePrefix("10.0.0.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := h.NewStation(macB, netip.MustParsePrefix("10.0.0.2/24"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var seen []UDPInfo
	h.SetFault(func(from *Port, f []byte) [][]byte {
		if u, ok := ParseUDPFrame(f); ok {
			seen = append(seen, u)
		}
		return [][]byte{f}
	})
	ca, _ := a.Listen(1000)
	cb, _ := b.Listen(2000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ca.WriteTo(ctx, []byte("hi"), netip.MustParseAddrPort("10.0.0.2:2000")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, from, err := cb.ReadFrom(ctx, buf)
	if err != nil || string(buf[:n]) != "hi" || from != netip.MustParseAddrPort("10.0.0.1:1000") {
		t.Fatalf("ReadFrom %q %v %v", buf[:n], from, err)
	}
	h.SetFault(nil)
	if len(seen) != 1 || string(seen[0].Payload) != "hi" || seen[0].Dst.Port() != 2000 {
		t.Fatalf("seen %+v", seen)
	}
	if _, ok := ParseUDPFrame([]byte("short")); ok {
		t.Fatal("parsed garbage")
	}
}

func TestSocket(t *testing.T) {
	a, err := ListenSocket("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ListenSocket("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := a.WriteTo(ctx, []byte("ping"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, from, err := b.ReadFrom(ctx, buf)
	if err != nil || string(buf[:n]) != "ping" || from != a.LocalAddr() || from.Port() != a.LocalPort() {
		t.Fatalf("ReadFrom %q %v %v", buf[:n], from, err)
	}
	// Deadlines and cancellation end a read.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, _, err := b.ReadFrom(short, buf); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, ccancel)
	if _, _, err := b.ReadFrom(cctx, buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
	// And the socket still works afterwards.
	a.WriteTo(ctx, []byte("again"), b.LocalAddr())
	if n, _, err := b.ReadFrom(ctx, buf); err != nil || string(buf[:n]) != "again" {
		t.Fatalf("after cancel: %q %v", buf[:n], err)
	}
}

// TestTFTPServerBusybox checks the fake server against a real client:
// busybox tftp, with and without blksize, on loopback.
func TestTFTPServerBusybox(t *testing.T) {
	testassets.NeedTools(t, "busybox")
	if out, err := exec.Command("busybox", "tftp").CombinedOutput(); err != nil && !bytes.Contains(out, []byte("Usage")) {
		testassets.Missing(t, "busybox has no tftp applet: %s", out)
	}
	file := make([]byte, 70000)
	for i := range file {
		file[i] = byte(i * 7)
	}
	srv := &TFTPServer{Files: map[string][]byte{"boot/file": file, "empty": {}}, Listen: LoopbackListener()}
	port, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, remote string
		args         []string
		want         []byte
	}{
		{"plain", "boot/file", nil, file},
		{"blksize", "/boot/file", []string{"-b", "1400"}, file},
		{"empty", "empty", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := filepath.Join(dir, tc.name)
			args := append([]string{"tftp", "-g", "-r", tc.remote, "-l", local}, tc.args...)
			args = append(args, "127.0.0.1", itoa(port))
			if out, err := exec.Command("busybox", args...).CombinedOutput(); err != nil {
				t.Fatalf("busybox %v: %v: %s (%v)", args, err, out, srv)
			}
			got, err := os.ReadFile(local)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want %d: %v", len(got), len(tc.want), err)
			}
		})
	}
	// A missing file is an error packet busybox reports.
	out, err := exec.Command("busybox", "tftp", "-g", "-r", "nope", "-l", filepath.Join(dir, "nope"), "127.0.0.1", itoa(port)).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("not found")) {
		t.Fatalf("missing file: %v %s", err, out)
	}
	if st := srv.Stats(); st.Completed != 3 || st.Requests != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

// TestDHCPServer drives the fake server with hand-made client messages.
func TestDHCPServer(t *testing.T) {
	h := NewHub()
	srvSt, err := h.NewStation(macA, netip.MustParsePrefix("10.0.0.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	defer srvSt.Close()
	srv := &DHCPServer{
		Listen:      srvSt.Listen,
		ServerID:    netip.MustParseAddr("10.0.0.1"),
		Subnet:      netip.MustParsePrefix("10.0.0.0/24"),
		Pool:        netip.MustParseAddr("10.0.0.100"),
		Router:      netip.MustParseAddr("10.0.0.1"),
		DNS:         []netip.Addr{netip.MustParseAddr("10.0.0.53")},
		NextServer:  netip.MustParseAddr("10.0.0.2"),
		BootFile:    "pxe/boot",
		Options:     map[uint8][]byte{150: []byte("(nd)/menu.lst")},
		NakRequests: 1,
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cl, err := h.NewStation(macB, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	conn, _ := cl.Listen(68)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bcast := netip.MustParseAddrPort("255.255.255.255:67")
	exchange := func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		t.Helper()
		if err := conn.WriteTo(ctx, m.ToBytes(), bcast); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, from, err := conn.ReadFrom(ctx, buf)
		if err != nil || from != netip.MustParseAddrPort("10.0.0.1:67") {
			t.Fatalf("ReadFrom %v %v", from, err)
		}
		r, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || r.TransactionID != m.TransactionID {
			t.Fatalf("reply %v %v", r, err)
		}
		return r
	}
	disc, _ := dhcpv4.NewDiscovery(net.HardwareAddr(macB[:]), dhcpv4.WithTransactionID(dhcpv4.TransactionID{1, 2, 3, 4}))
	offer := exchange(disc)
	if offer.MessageType() != dhcpv4.MessageTypeOffer || !offer.YourIPAddr.Equal(net.ParseIP("10.0.0.100")) ||
		!offer.ServerIPAddr.Equal(net.ParseIP("10.0.0.2")) || offer.BootFileName != "pxe/boot" ||
		string(offer.Options.Get(dhcpv4.GenericOptionCode(150))) != "(nd)/menu.lst" ||
		offer.SubnetMask().String() != "ffffff00" || !offer.Router()[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Fatalf("offer %v", offer.Summary())
	}
	req, _ := dhcpv4.NewRequestFromOffer(offer)
	if r := exchange(req); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("first request: %v", r.MessageType())
	}
	if r := exchange(req); r.MessageType() != dhcpv4.MessageTypeAck || !r.YourIPAddr.Equal(net.ParseIP("10.0.0.100")) {
		t.Fatalf("second request: %v", r.Summary())
	}
	// The same client gets the same address again; another gets the next.
	if r := exchange(disc); !r.YourIPAddr.Equal(net.ParseIP("10.0.0.100")) {
		t.Fatalf("again: %v", r.YourIPAddr)
	}
	other, _ := dhcpv4.NewDiscovery(net.HardwareAddr(macC[:]))
	if r := exchange(other); !r.YourIPAddr.Equal(net.ParseIP("10.0.0.101")) {
		t.Fatalf("other: %v", r.YourIPAddr)
	}
	if a, ok := srv.LeaseOf(macC); !ok || a.String() != "10.0.0.101" {
		t.Fatalf("LeaseOf = %v %v", a, ok)
	}
	if st := srv.Stats(); st.Discovers != 3 || st.Offers != 3 || st.Requests != 2 || st.Acks != 1 || st.Naks != 1 || XID(st.Last) == 0 {
		t.Fatalf("stats %+v", st)
	}
	var _ ipv4.PacketConn = conn
}
