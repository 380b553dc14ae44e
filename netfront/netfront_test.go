package netfront_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/gopvgrub/gopvgrub/netfront"
	"github.com/gopvgrub/gopvgrub/netfront/netif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
	"github.com/gopvgrub/gopvgrub/xen/xenbus"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

const guest xen.DomID = 4

var guestMAC = [6]byte{0x00, 0x16, 0x3e, 0x12, 0x34, 0x56}

// env is a simulated machine with the guest's xenstore client and grant
// table, as the unikernel has them, and one vif.
type env struct {
	sys   *xentest.System
	store *xenstore.Client
	gnt   *gnttab.Table
	nb    *xentest.Netback
	pages int
	ports int

	mu   sync.Mutex
	sent [][]byte     // frames the guest transmitted
	tx   func([]byte) // replaces recording, if set
}

func newEnv(t testing.TB, cfg xentest.NetbackConfig) *env {
	t.Helper()
	sys, err := xentest.NewSystem(xentest.SystemConfig{GuestID: guest, Guest: xentest.DomainConfig{GrantFrames: 8}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := xenstore.New(sys.StorePage, sys.StoreChan)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gnttab.New(sys.Guest)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sys: sys, store: c, gnt: g, pages: sys.Guest.Pages(), ports: sys.Guest.OpenPorts()}
	cfg.Front = guest
	if cfg.MAC == ([6]byte{}) {
		cfg.MAC = guestMAC
	}
	cfg.Tx = func(f []byte) {
		e.mu.Lock()
		tx := e.tx
		if tx == nil {
			e.sent = append(e.sent, f)
		}
		e.mu.Unlock()
		if tx != nil {
			tx(f)
		}
	}
	nb, err := xentest.NewNetback(sys.Hyp, sys.Store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.nb = nb
	t.Cleanup(func() {
		nb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("xenstore Close: %v", err)
		}
		sys.Close()
	})
	return e
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) config(o netfront.Options) netfront.Config {
	return netfront.Config{Store: e.store, Platform: e.sys.Guest, Grants: e.gnt, Options: o}
}

func (e *env) open(t testing.TB, o netfront.Options) *netfront.Device {
	t.Helper()
	devs, err := netfront.Devices(ctxFor(t, 10*time.Second), e.store)
	if err != nil || len(devs) != 1 {
		t.Fatalf("Devices = %v, %v", devs, err)
	}
	d, err := netfront.Open(ctxFor(t, 20*time.Second), e.config(o), devs[0])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// closeAndCheck closes d and checks that everything was given back.
func (e *env) closeAndCheck(t testing.TB, d *netfront.Device) {
	t.Helper()
	if err := d.Close(ctxFor(t, 20*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	be := e.nb.Backend()
	if s := be.State(); s != xen.StateInitWait {
		t.Fatalf("backend state after Close: %v", s)
	}
	if s := be.FrontendState(); s != xen.StateInitialising {
		t.Fatalf("frontend state after Close: %v", s)
	}
	if n := e.gnt.Active(); n != 0 {
		t.Fatalf("%d grants active: %v", n, e.gnt.Leaks())
	}
	if n := e.sys.Hyp.Mappings(); n != 0 {
		t.Fatalf("%d grant mappings left", n)
	}
	if p := e.sys.Guest.Pages(); p != e.pages {
		t.Fatalf("%d pages allocated, %d before", p, e.pages)
	}
	if p := e.sys.Guest.OpenPorts(); p != e.ports {
		t.Fatalf("%d ports open, %d before", p, e.ports)
	}
	for _, k := range []string{"tx-ring-ref", "rx-ring-ref", "event-channel", "request-rx-copy"} {
		if _, err := be.ReadFrontend(k); err == nil {
			t.Fatalf("%s left in the frontend directory", k)
		}
	}
}

func (e *env) sentFrames() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent
}

func frame(n int, seed byte) []byte {
	f := make([]byte, n)
	copy(f, guestMAC[:])
	copy(f[6:], []byte{0, 0x16, 0x3e, 0, 0, 1})
	f[12], f[13] = 0x08, 0x00
	for i := 14; i < n; i++ {
		f[i] = seed + byte(i)
	}
	return f
}

func recv(t testing.TB, d *netfront.Device) []byte {
	t.Helper()
	f, err := d.Recv(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatalf("Recv: %v (stats %+v, backend %+v)", err, d.Stats(), nil)
	}
	return f
}

// TestNoOffload: without receive offload we ask for complete checksums
// and take frames of the MTU only.
func TestNoOffload(t *testing.T) {
	e := newEnv(t, xentest.NetbackConfig{})
	d := e.open(t, netfront.Options{NoOffload: true})
	keys := e.nb.FrontendKeys()
	if keys["feature-no-csum-offload"] != "1" {
		t.Errorf("feature-no-csum-offload = %q", keys["feature-no-csum-offload"])
	}
	for _, k := range []string{"feature-sg", "feature-gso-tcpv4"} {
		if _, ok := keys[k]; ok {
			t.Errorf("%s offered", k)
		}
	}
	if n := d.MaxReceive(); n != 1500+14 {
		t.Errorf("MaxReceive %d without offload", n)
	}
	e.closeAndCheck(t, d)
}

func TestConnect(t *testing.T) {
	e := newEnv(t, xentest.NetbackConfig{MTU: 9000})
	d := e.open(t, netfront.Options{})
	if d.MAC() != guestMAC || d.MTU() != 1500 || d.Name() != "vif0" {
		t.Fatalf("MAC %x MTU %d name %s", d.MAC(), d.MTU(), d.Name())
	}
	keys := e.nb.FrontendKeys()
	for k, want := range map[string]string{"request-rx-copy": "1", "feature-rx-notify": "1", "feature-sg": "1", "feature-gso-tcpv4": "1"} {
		if keys[k] != want {
			t.Errorf("%s = %q", k, keys[k])
		}
	}
	for _, k := range []string{"feature-no-csum-offload", "multi-queue-num-queues", "event-channel-tx"} {
		if _, ok := keys[k]; ok {
			t.Errorf("%s offered", k)
		}
	}
	if n := d.MaxReceive(); n != 65535+14 {
		t.Errorf("MaxReceive %d with receive offload", n)
	}
	if e.nb.Backend().State() != xen.StateConnected || len(e.nb.ProtocolErrors()) != 0 {
		t.Fatalf("backend %v, errors %v", e.nb.Backend().State(), e.nb.ProtocolErrors())
	}
	e.closeAndCheck(t, d)
	if err := d.Close(ctxFor(t, time.Second)); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Recv(ctxFor(t, time.Second)); !errors.Is(err, netfront.ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	if err := d.Send(ctxFor(t, time.Second), frame(60, 0)); !errors.Is(err, netfront.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

func TestSendRecv(t *testing.T) {
	e := newEnv(t, xentest.NetbackConfig{QueueLen: 4096})
	d := e.open(t, netfront.Options{RxBuffers: 16, TxBuffers: 4})
	ctx := ctxFor(t, 20*time.Second)

	// Many frames both ways, more than there are buffers.
	const n = 500
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 4 {
				if err := d.Send(ctx, frame(60+(w*n/4+i)%1455, byte(w))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range n {
		if err := e.nb.Inject(frame(60+i%1455, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		got := recv(t, d)
		if !bytes.Equal(got, frame(60+i%1455, byte(i))) {
			t.Fatalf("frame %d: %d bytes", i, len(got))
		}
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.sentFrames()) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := len(e.sentFrames()); got != n {
		t.Fatalf("backend got %d frames", got)
	}
	st := d.Stats()
	if st.RxPackets != n || st.TxPackets != n || st.RxErrors != 0 || st.TxErrors != 0 || st.Notifies == 0 {
		t.Fatalf("stats %+v", st)
	}
	if len(e.nb.ProtocolErrors()) != 0 {
		t.Fatal(e.nb.ProtocolErrors())
	}
	e.closeAndCheck(t, d)
}

func TestFrameLimits(t *testing.T) {
	e := newEnv(t, xentest.NetbackConfig{MTU: 1400})
	d := e.open(t, netfront.Options{})
	ctx := ctxFor(t, 5*time.Second)
	if d.MTU() != 1400 {
		t.Fatalf("MTU %d", d.MTU())
	}
	for _, n := range []int{13, 1415} {
		if err := d.Send(ctx, make([]byte, n)); !errors.Is(err, netfront.ErrFrame) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
	if err := d.Send(ctx, frame(1414, 1)); err != nil {
		t.Fatal(err)
	}
	e.closeAndCheck(t, d)
}

func TestReceiveShapes(t *testing.T) {
	// Multi-slot packets, extra-info slots, data at an offset: all
	// reassembled.
	e := newEnv(t, xentest.NetbackConfig{SplitRx: 500, RxExtra: true, RxOffset: 100})
	d := e.open(t, netfront.Options{RxBuffers: 8})
	for i := range 20 {
		e.nb.Inject(frame(1000+i*20, byte(i)))
	}
	for i := range 20 {
		if got := recv(t, d); !bytes.Equal(got, frame(1000+i*20, byte(i))) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if st := d.Stats(); st.RxMultiSlot != 20 || st.RxExtras != 20 || st.RxErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
	e.closeAndCheck(t, d)
}

// TestReceiveGSO: a 64 KiB GSO packet, as netback sends it with receive
// offload (a page per slot and a GSO extra-info slot), arrives whole; one
// byte more than a 64 KiB IP packet is dropped.
func TestReceiveGSO(t *testing.T) {
	e := newEnv(t, xentest.NetbackConfig{SplitRx: 4096, RxExtra: true})
	d := e.open(t, netfront.Options{})
	big := frame(d.MaxReceive(), 7)
	e.nb.Inject(frame(d.MaxReceive()+1, 8))
	e.nb.Inject(big)
	if got := recv(t, d); !bytes.Equal(got, big) {
		t.Fatalf("%d-byte frame arrived as %d bytes", len(big), len(got))
	}
	if st := d.Stats(); st.RxMultiSlot != 2 || st.RxErrors != 1 || st.RxPackets != 1 {
		t.Fatalf("stats %+v", st)
	}
	e.closeAndCheck(t, d)
}

func udpFrame(payload string) []byte {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.10")
	u := ipv4.AppendUDP(nil, src, dst, ipv4.UDPHeader{SrcPort: 69, DstPort: 50000}, []byte(payload))
	p := ipv4.AppendIPv4(nil, ipv4.Header{Protocol: ipv4.ProtocolUDP, Src: src, Dst: dst}, len(u))
	f := ipv4.EthernetHeader{Dst: guestMAC, Src: [6]byte{0, 0x16, 0x3e, 0, 0, 1}, Type: ipv4.EtherTypeIPv4}.Append(nil)
	return append(append(f, p...), u...)
}

func TestChecksumOffload(t *testing.T) {
	e := newEnv(t, xentest.NetbackConfig{CsumBlank: true})
	d := e.open(t, netfront.Options{})
	want := udpFrame("checksum me")
	e.nb.Inject(want)
	got := recv(t, d)
	if !bytes.Equal(got, want) {
		t.Fatalf("frame\n%x, want\n%x", got, want)
	}
	_, p, _ := ipv4.ParseEthernet(got)
	h, p, err := ipv4.ParseIPv4(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ipv4.ParseUDP(h.Src, h.Dst, p); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.RxChecksumFixed != 1 {
		t.Fatalf("stats %+v", st)
	}
	e.closeAndCheck(t, d)
}

func TestReceiveErrors(t *testing.T) {
	// Every third response is an error, every fifth claims data beyond
	// its page: those packets are dropped, the others arrive.
	n := 0
	e := newEnv(t, xentest.NetbackConfig{MangleRx: func(r *netif.RxResponse) {
		n++
		switch {
		case n%3 == 0:
			r.Status = netif.RspError
		case n%5 == 0:
			r.Offset = 4000
		}
	}})
	d := e.open(t, netfront.Options{})
	var want [][]byte
	for i := 1; i <= 30; i++ {
		f := frame(200, byte(i))
		e.nb.Inject(f)
		if i%3 != 0 && i%5 != 0 {
			want = append(want, f)
		}
	}
	for i, w := range want {
		if got := recv(t, d); !bytes.Equal(got, w) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if st := d.Stats(); st.RxErrors != 14 || st.RxPackets != uint64(len(want)) {
		t.Fatalf("stats %+v", st)
	}
	e.closeAndCheck(t, d)
}

func TestTxErrorStatus(t *testing.T) {
	e := newEnv(t, xentest.NetbackConfig{MangleTx: func(r *netif.TxResponse) { r.Status = netif.RspDropped }})
	d := e.open(t, netfront.Options{TxBuffers: 2})
	for range 10 {
		if err := d.Send(ctxFor(t, 5*time.Second), frame(60, 0)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Stats().TxErrors < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := d.Stats(); st.TxErrors != 10 || d.Err() != nil {
		t.Fatalf("stats %+v, err %v", st, d.Err())
	}
	e.closeAndCheck(t, d)
}

func TestProtocolViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(e *env, d *netfront.Device) error
	}{
		{"tx response for an id not in flight", func(e *env, d *netfront.Device) error {
			return e.nb.InjectTxResponse(netif.TxResponse{ID: 7})
		}},
		{"tx response with a bad status", func(e *env, d *netfront.Device) error {
			e.nb.HoldTx()
			d.Send(context.Background(), frame(60, 0))
			return e.nb.InjectTxResponse(netif.TxResponse{ID: 31, Status: netif.RspNull})
		}},
		{"more rx responses than requests", func(e *env, d *netfront.Device) error {
			rs := make([]netif.RxResponse, 300)
			return e.nb.InjectRxResponses(rs...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, xentest.NetbackConfig{})
			d := e.open(t, netfront.Options{})
			if err := tc.do(e, d); err != nil {
				t.Fatal(err)
			}
			_, err := d.Recv(ctxFor(t, 5*time.Second))
			if !errors.Is(err, netfront.ErrProtocol) || !errors.Is(d.Err(), netfront.ErrProtocol) {
				t.Fatalf("Recv = %v", err)
			}
			if err := d.Send(ctxFor(t, time.Second), frame(60, 0)); !errors.Is(err, netfront.ErrProtocol) {
				t.Fatalf("Send = %v", err)
			}
			// Close still hands the device back.
			if err := d.Close(ctxFor(t, 20*time.Second)); err != nil {
				t.Logf("Close: %v", err)
			}
			if s := e.nb.Backend().State(); s != xen.StateInitWait {
				t.Fatalf("backend %v", s)
			}
		})
	}
}

func TestBackendGone(t *testing.T) {
	e := newEnv(t, xentest.NetbackConfig{})
	d := e.open(t, netfront.Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := d.Recv(ctxFor(t, 10*time.Second))
		errc <- err
	}()
	if err := e.nb.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, netfront.ErrBackendGone) {
		t.Fatalf("Recv = %v", err)
	}
	d.Close(ctxFor(t, 20*time.Second))
}

func TestBackpressureAndDrain(t *testing.T) {
	e := newEnv(t, xentest.NetbackConfig{})
	d := e.open(t, netfront.Options{TxBuffers: 2})
	e.nb.HoldTx()
	ctx := ctxFor(t, 5*time.Second)
	for i := range 2 {
		if err := d.Send(ctx, frame(60, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Every page is in flight: Send waits, bounded by its context.
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := d.Send(short, frame(60, 2)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v", err)
	}
	// Released, the waiting Send goes through.
	done := make(chan error, 1)
	go func() { done <- d.Send(ctx, frame(60, 3)) }()
	time.Sleep(20 * time.Millisecond)
	e.nb.ReleaseTx()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Close drains what is in flight: the last frame reaches the
	// backend before the handoff.
	e.nb.HoldTx()
	d.Send(ctx, frame(60, 4))
	time.AfterFunc(50*time.Millisecond, e.nb.ReleaseTx)
	e.closeAndCheck(t, d)
	sent := e.sentFrames()
	if len(sent) != 4 || !bytes.Equal(sent[3], frame(60, 4)) {
		t.Fatalf("backend got %d frames", len(sent))
	}
}

func TestOpenFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  xentest.NetbackConfig
		want error
	}{
		{"no rx-copy", xentest.NetbackConfig{Features: map[string]string{"feature-sg": "1"}}, netfront.ErrUnsupported},
		{"bad mac", xentest.NetbackConfig{MACNode: "00:16:3e:zz:00:01"}, netfront.ErrBadNode},
		{"multicast mac", xentest.NetbackConfig{MACNode: "01:00:5e:00:00:01"}, netfront.ErrBadNode},
		{"bad mtu", xentest.NetbackConfig{MTU: 100}, netfront.ErrBadNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg)
			devs, _ := netfront.Devices(ctxFor(t, 5*time.Second), e.store)
			_, err := netfront.Open(ctxFor(t, 20*time.Second), e.config(netfront.Options{}), devs[0])
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v", err)
			}
			// Nothing is left behind.
			if n := e.gnt.Active(); n != 0 || e.sys.Guest.Pages() != e.pages || e.sys.Guest.OpenPorts() != e.ports {
				t.Fatalf("grants %d, pages %d/%d, ports %d/%d", n, e.sys.Guest.Pages(), e.pages, e.sys.Guest.OpenPorts(), e.ports)
			}
		})
	}
	// No backend at all: bounded by the context.
	e := newEnv(t, xentest.NetbackConfig{})
	dev := xenbus.Device{Type: "vif", ID: 9, Dir: "device/vif/9"}
	if _, err := netfront.Open(ctxFor(t, time.Second), e.config(netfront.Options{}), dev); err == nil {
		t.Fatal("opened a missing device")
	}
}

func TestReopenAfterClose(t *testing.T) {
	// The chainloaded kernel's netfront connects to the vif we handed
	// back: simulate it with a second Open.
	e := newEnv(t, xentest.NetbackConfig{})
	d := e.open(t, netfront.Options{})
	d.Send(ctxFor(t, time.Second), frame(60, 1))
	e.closeAndCheck(t, d)
	d2 := e.open(t, netfront.Options{})
	e.nb.Inject(frame(100, 2))
	if got := recv(t, d2); !bytes.Equal(got, frame(100, 2)) {
		t.Fatal("frame differs after reopen")
	}
	e.closeAndCheck(t, d2)
	if st := e.nb.Stats(); st.Connects != 2 || st.Disconnects != 2 || len(e.nb.ProtocolErrors()) != 0 {
		t.Fatalf("backend %+v %v", st, e.nb.ProtocolErrors())
	}
}

func TestParseMAC(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"00:16:3e:12:34:56", true},
		{"00:16:3E:AB:cd:ef", true},
		{"00:16:3e:12:34", false},
		{"00:16:3e:12:34:56:78", false},
		{"0:16:3e:12:34:56", false},
		{"00-16-3e-12-34-56", false},
		{"00:16:3e:12:34:5g", false},
		{"ff:ff:ff:ff:ff:ff", false},
		{"00:00:00:00:00:00", false},
		{"", false},
	} {
		if _, err := netfront.ParseMAC(tc.s); (err == nil) != tc.ok {
			t.Errorf("ParseMAC(%q) = %v", tc.s, err)
		}
	}
	m, _ := netfront.ParseMAC("00:16:3e:12:34:56")
	if fmt.Sprintf("%x", m) != "00163e123456" {
		t.Fatalf("%x", m)
	}
}
