package netfront_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot"
	"github.com/gopvgrub/gopvgrub/netboot/dhcp"
	"github.com/gopvgrub/gopvgrub/netboot/nettest"
	"github.com/gopvgrub/gopvgrub/netboot/tftp"
	"github.com/gopvgrub/gopvgrub/netfront"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

// TestNetboot is the whole network boot in one process: netfront over the
// simulated netback, bridged onto a simulated segment with a DHCP server
// and a TFTP server; PV-GRUB's extra="(nd)/pxe/menu.lst", then a kernel,
// then the handoff, and the next kernel's netfront getting a lease on the
// same vif.
func TestNetboot(t *testing.T) {
	hub := nettest.NewHub()
	srv, err := hub.NewStation([6]byte{0, 0x16, 0x3e, 0, 0, 1}, netip.MustParsePrefix("10.0.0.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	kernel := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range kernel {
		kernel[i] = byte(r.Uint32())
	}
	menu := []byte("default 0\ntitle Debian\nkernel (nd)/vmlinuz\n")
	ds := &nettest.DHCPServer{
		Listen: srv.Listen, ServerID: netip.MustParseAddr("10.0.0.1"),
		Subnet: netip.MustParsePrefix("10.0.0.0/24"), Pool: netip.MustParseAddr("10.0.0.50"),
		Router: netip.MustParseAddr("10.0.0.1"), NextServer: netip.MustParseAddr("10.0.0.1"),
	}
	if err := ds.Start(); err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ts := &nettest.TFTPServer{Files: map[string][]byte{"/pxe/menu.lst": menu, "/vmlinuz": kernel}, Listen: srv.Listen, Port: tftp.Port}
	if _, err := ts.Start(); err != nil {
		t.Fatal(err)
	}
	defer ts.Close()

	e := newEnv(t, xentest.NetbackConfig{QueueLen: 1024})
	// The bridge: the vif's traffic goes onto the segment and back.
	port := hub.NewPort(guestMAC, 1500)
	defer port.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.mu.Lock()
	e.tx = func(f []byte) { port.Send(ctx, f) }
	e.mu.Unlock()
	go func() {
		for {
			f, err := port.Recv(ctx)
			if err != nil {
				return
			}
			e.nb.Inject(f)
		}
	}()

	cfg := netboot.Config{
		Path: "(nd)/pxe/menu.lst",
		DHCP: dhcp.Config{Timeout: 200 * time.Millisecond},
		TFTP: tftp.Options{Timeout: 200 * time.Millisecond, MaxSize: 64 << 20},
	}
	d := e.open(t, netfront.Options{})
	res, err := netboot.Boot(ctx, d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Config, menu) || res.Lease.Addr.String() != "10.0.0.50/24" {
		t.Fatalf("config %q, lease %v", res.Config, res.Lease)
	}
	start := time.Now()
	got, err := res.Fetch(ctx, "(nd)/vmlinuz")
	if err != nil || !bytes.Equal(got, kernel) {
		t.Fatalf("kernel: %v, %d bytes", err, len(got))
	}
	t.Logf("%d bytes in %v; netfront %+v; stack %+v", len(got), time.Since(start), d.Stats(), res.Stack().Stats())
	if st := res.Stack().Stats(); st.BadChecksum != 0 || st.Malformed != 0 {
		t.Fatalf("stack %+v", st)
	}
	res.Close()
	e.closeAndCheck(t, d)

	// The next kernel's netfront: the vif works again.
	d2 := e.open(t, netfront.Options{})
	cfg.Path = ""
	ds.Options = map[uint8][]byte{150: []byte("(nd)/pxe/menu.lst")}
	res2, err := netboot.Boot(ctx, d2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res2.ConfigPath != "(nd)/pxe/menu.lst" || res2.Lease.Addr.Addr() != res.Lease.Addr.Addr() {
		t.Fatalf("second boot: %q %v", res2.ConfigPath, res2.Lease)
	}
	res2.Close()
	e.closeAndCheck(t, d2)
	if len(e.nb.ProtocolErrors()) != 0 {
		t.Fatal(e.nb.ProtocolErrors())
	}
}
