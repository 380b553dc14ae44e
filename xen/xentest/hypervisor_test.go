package xentest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/xen"
)

func twoDomains(t *testing.T) (*Hypervisor, *Domain, *Domain) {
	t.Helper()
	h := NewHypervisor()
	return h, h.NewDomain(0, DomainConfig{}), h.NewDomain(5, DomainConfig{GrantFrames: 2, MaxPages: 8})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// blocked reports whether Wait is still blocked after a short while: it
// checks that an event was NOT delivered, so the duration only needs to
// be long enough for a wrongly delivered event to show.
func blocked(p *Port) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	return errors.Is(p.Wait(ctx), context.DeadlineExceeded)
}

func TestEventChannelNotifyWait(t *testing.T) {
	h, d0, g := twoDomains(t)
	gp, dp, err := h.Connect(g, d0)
	if err != nil {
		t.Fatal(err)
	}
	if gp.Port() == 0 || dp.Domain() != d0 || !gp.Bound() || !dp.Bound() {
		t.Fatalf("ports %d/%d", gp.Port(), dp.Port())
	}
	ctx := ctxT(t)
	// Notify before Wait: the pending bit keeps the event.
	if err := gp.Notify(); err != nil {
		t.Fatal(err)
	}
	if !dp.Pending() {
		t.Fatal("pending bit not set")
	}
	if err := dp.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if dp.Pending() {
		t.Fatal("Wait did not clear the pending bit")
	}
	// Several notifications before a Wait coalesce into one event.
	gp.Notify()
	gp.Notify()
	if err := dp.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !blocked(dp) {
		t.Fatal("coalesced events delivered twice")
	}
	// Wait blocks until the peer notifies.
	done := make(chan error, 1)
	go func() { done <- gp.Wait(ctx) }()
	dp.Notify()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if gp.Sent() != 3 || dp.Received() != 2 || dp.Sent() != 1 || gp.Received() != 1 {
		t.Errorf("counters sent %d/%d received %d/%d", gp.Sent(), dp.Sent(), gp.Received(), dp.Received())
	}
}

func TestEventChannelMask(t *testing.T) {
	h, d0, g := twoDomains(t)
	gp, dp, _ := h.Connect(g, d0)
	ctx := ctxT(t)
	if err := dp.Mask(); err != nil {
		t.Fatal(err)
	}
	gp.Notify()
	if !blocked(dp) {
		t.Fatal("event delivered while masked")
	}
	if !dp.Pending() {
		t.Fatal("event lost while masked")
	}
	// Unmask delivers what arrived meanwhile, to a waiter already blocked.
	done := make(chan error, 1)
	go func() { done <- dp.Wait(ctx) }()
	if err := dp.Unmask(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestEventChannelBindAndClose(t *testing.T) {
	h, d0, g := twoDomains(t)
	ctx := ctxT(t)
	ch, err := g.AllocUnbound(0)
	if err != nil {
		t.Fatal(err)
	}
	// Notifying an unbound port is silently dropped, as in Xen.
	if err := ch.Notify(); err != nil {
		t.Fatal(err)
	}
	other := h.NewDomain(9, DomainConfig{})
	if _, err := other.BindInterdomain(5, ch.Port()); !errors.Is(err, xen.EINVAL) {
		t.Errorf("bind by a domain the port was not offered to: %v", err)
	}
	if _, err := d0.BindInterdomain(5, 999); !errors.Is(err, xen.EINVAL) {
		t.Errorf("bind to a missing port: %v", err)
	}
	if _, err := d0.BindInterdomain(77, 1); !errors.Is(err, xen.ESRCH) {
		t.Errorf("bind to a missing domain: %v", err)
	}
	be, err := d0.BindInterdomain(5, ch.Port())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d0.BindInterdomain(5, ch.Port()); !errors.Is(err, xen.EINVAL) {
		t.Errorf("second bind: %v", err)
	}
	self, err := g.AllocUnbound(xen.DomSelf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.BindInterdomain(xen.DomSelf, self.Port()); err != nil {
		t.Errorf("loopback bind: %v", err)
	}

	// The guest closes its end: a Wait on it fails, the backend's end is
	// unbound again and its notifications go nowhere.
	done := make(chan error, 1)
	go func() { done <- ch.Wait(ctx) }()
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, xen.EINVAL) {
		t.Errorf("Wait on a closed port: %v", err)
	}
	if err := ch.Notify(); !errors.Is(err, xen.EINVAL) {
		t.Errorf("Notify on a closed port: %v", err)
	}
	if err := ch.Close(); !errors.Is(err, xen.EINVAL) {
		t.Errorf("double Close: %v", err)
	}
	if err := be.Notify(); err != nil || be.(*Port).Bound() {
		t.Errorf("peer after close: %v bound=%v", err, be.(*Port).Bound())
	}
	if g.OpenPorts() != 2 {
		t.Errorf("guest has %d open ports, want 2 (the loopback pair)", g.OpenPorts())
	}
}

func TestMemory(t *testing.T) {
	h, _, g := twoDomains(t)
	mem, mfns, err := g.AllocPages(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(mem) != 3*4096 || len(mfns) != 3 || mfns[0] == mfns[1] || mfns[1] == mfns[2] {
		t.Fatalf("%d bytes, mfns %v", len(mem), mfns)
	}
	for _, b := range mem {
		if b != 0 {
			t.Fatal("pages not zeroed")
		}
	}
	mem[4096+10] = 42
	f, err := h.Frame(mfns[1])
	if err != nil || len(f) != 4096 || f[10] != 42 {
		t.Fatalf("Frame does not alias the second page: %v", err)
	}
	if _, _, err := g.AllocPages(6); !errors.Is(err, xen.ENOMEM) {
		t.Errorf("over the limit: %v", err)
	}
	if _, _, err := g.AllocPages(0); !errors.Is(err, xen.EINVAL) {
		t.Errorf("zero pages: %v", err)
	}
	if err := g.FreePages(mem[4096:]); !errors.Is(err, xen.EINVAL) {
		t.Errorf("partial free: %v", err)
	}
	if err := g.FreePages(mem); err != nil {
		t.Fatal(err)
	}
	if g.Pages() != 0 {
		t.Errorf("%d pages after free", g.Pages())
	}
	if _, err := h.Frame(mfns[0]); !errors.Is(err, xen.EINVAL) {
		t.Errorf("freed frame still there: %v", err)
	}
	if err := g.FreePages(mem); !errors.Is(err, xen.EINVAL) {
		t.Errorf("double free: %v", err)
	}
}

func grantFixture(t *testing.T) (*Hypervisor, *Domain, []byte, xen.MFN, []byte) {
	t.Helper()
	h, _, g := twoDomains(t)
	mem, mfns, err := g.AllocPages(1)
	if err != nil {
		t.Fatal(err)
	}
	table, err := g.Grow(1)
	if err != nil {
		t.Fatal(err)
	}
	return h, g, mem, mfns[0], table
}

func TestGrantMapChecks(t *testing.T) {
	h, g, _, mfn, _ := grantFixture(t)
	_, others, err := h.NewDomain(6, DomainConfig{}).AllocPages(1)
	if err != nil {
		t.Fatal(err)
	}
	foreign := others[0]
	g.SetGrantEntry(10, xen.GTFPermitAccess, 0, uint32(mfn))
	g.SetGrantEntry(11, xen.GTFPermitAccess|xen.GTFReadonly, 0, uint32(mfn))
	g.SetGrantEntry(12, xen.GTFPermitAccess, 0, uint32(foreign))
	g.SetGrantEntry(13, xen.GTFAcceptTransfer, 0, uint32(mfn))
	g.SetGrantEntry(14, xen.GTFPermitAccess, 3, uint32(mfn))
	for _, tc := range []struct {
		name     string
		granter  xen.DomID
		ref      uint32
		readonly bool
		want     error
	}{
		{"rw grant, rw map", 5, 10, false, nil},
		{"ro grant, ro map", 5, 11, true, nil},
		{"ro grant, rw map", 5, 11, false, xen.GNTSTGeneralError},
		{"frame of another domain", 5, 12, true, xen.GNTSTBadPage},
		{"not permit_access", 5, 13, true, xen.GNTSTGeneralError},
		{"granted to someone else", 5, 14, true, xen.GNTSTGeneralError},
		{"invalid entry", 5, 20, true, xen.GNTSTGeneralError},
		{"beyond the table set up", 5, 512, true, xen.GNTSTBadGntref},
		{"no such granter", 42, 10, true, xen.GNTSTBadDomain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := h.MapGrant(0, tc.granter, tc.ref, tc.readonly)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if m != nil {
				m.Unmap()
			}
		})
	}
	if h.Mappings() != 0 {
		t.Errorf("%d mappings left", h.Mappings())
	}
}

func TestGrantInUseBits(t *testing.T) {
	h, g, mem, mfn, _ := grantFixture(t)
	g.SetGrantEntry(8, xen.GTFPermitAccess, 0, uint32(mfn))
	flags := func() uint16 { f, _, _, _ := g.GrantEntry(8); return f }
	ro, err := h.MapGrant(0, 5, 8, true)
	if err != nil {
		t.Fatal(err)
	}
	if flags() != xen.GTFPermitAccess|xen.GTFReading {
		t.Fatalf("ro mapping: flags %#x", flags())
	}
	rw, err := h.MapGrant(0, 5, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	if flags() != xen.GTFPermitAccess|xen.GTFReading|xen.GTFWriting {
		t.Fatalf("rw mapping: flags %#x", flags())
	}
	copy(rw.Data, "via grant")
	if string(mem[:9]) != "via grant" || string(ro.Data[:9]) != "via grant" {
		t.Fatal("mappings do not alias the granted page")
	}
	if err := g.FreePages(mem); !errors.Is(err, xen.EBUSY) {
		t.Errorf("freeing a mapped page: %v", err)
	}
	rw.Unmap()
	if flags() != xen.GTFPermitAccess|xen.GTFReading {
		t.Fatalf("after rw unmap: flags %#x", flags())
	}
	if err := rw.Unmap(); !errors.Is(err, xen.GNTSTBadHandle) {
		t.Errorf("double unmap: %v", err)
	}
	ro.Unmap()
	if flags() != xen.GTFPermitAccess || h.Mappings() != 0 {
		t.Fatalf("after last unmap: flags %#x, %d mappings", flags(), h.Mappings())
	}
	if err := g.FreePages(mem); err != nil {
		t.Errorf("free after unmap: %v", err)
	}
}

func TestGrantCopy(t *testing.T) {
	h, g, mem, mfn, _ := grantFixture(t)
	g.SetGrantEntry(8, xen.GTFPermitAccess, 0, uint32(mfn))
	g.SetGrantEntry(9, xen.GTFPermitAccess|xen.GTFReadonly, 0, uint32(mfn))
	if err := h.CopyToGrant(0, 5, 8, 4090, []byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	if string(mem[4090:]) != "abcdef" {
		t.Fatalf("page tail %q", mem[4090:])
	}
	got := make([]byte, 6)
	if err := h.CopyFromGrant(0, 5, 9, 4090, got); err != nil || string(got) != "abcdef" {
		t.Fatalf("CopyFromGrant = %q, %v", got, err)
	}
	if err := h.CopyToGrant(0, 5, 9, 0, []byte("x")); !errors.Is(err, xen.GNTSTGeneralError) {
		t.Errorf("write through a read-only grant: %v", err)
	}
	for _, tc := range []struct{ off, n int }{{4091, 6}, {-1, 1}, {4097, 0}, {0, 4097}} {
		if err := h.CopyFromGrant(0, 5, 8, tc.off, make([]byte, tc.n)); !errors.Is(err, xen.GNTSTBadCopyArg) {
			t.Errorf("copy %d at %d: %v", tc.n, tc.off, err)
		}
	}
	if f, _, _, _ := g.GrantEntry(8); f != xen.GTFPermitAccess || h.Mappings() != 0 {
		t.Errorf("copies left the grant in use: flags %#x", f)
	}
}

func TestGrantFrames(t *testing.T) {
	_, _, g := twoDomains(t)
	if n, _ := g.MaxFrames(); n != 2 {
		t.Fatalf("MaxFrames %d", n)
	}
	a, err := g.Grow(1)
	if err != nil || len(a) != 4096 {
		t.Fatal(err)
	}
	b, err := g.Grow(2)
	if err != nil || len(b) != 8192 {
		t.Fatal(err)
	}
	a[0] = 7
	if b[0] != 7 {
		t.Fatal("grown table does not alias the first frame")
	}
	if _, err := g.Grow(3); !errors.Is(err, xen.GNTSTGeneralError) {
		t.Errorf("beyond max: %v", err)
	}
	if c, _ := g.Grow(1); len(c) != 4096 || g.GrantFrames() != 2 {
		t.Errorf("Grow(1) after 2: len %d frames %d (never shrinks)", len(c), g.GrantFrames())
	}
	if _, _, _, err := g.GrantEntry(1024); !errors.Is(err, xen.GNTSTBadGntref) {
		t.Errorf("entry beyond max: %v", err)
	}
}

func TestSystem(t *testing.T) {
	sys, err := NewSystem(SystemConfig{GuestID: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	si := sys.StartInfo()
	if si.StoreEvtchn != 1 || si.ConsoleEvtchn != 2 || si.StoreMFN == si.ConsoleMFN {
		t.Errorf("start info %+v", si)
	}
	if _, err := xen.ParseStartInfo(si.Marshal()); err != nil {
		t.Errorf("start info does not parse: %v", err)
	}
	for ref, mfn := range map[uint32]xen.MFN{xen.GrantRefConsole: sys.ConsoleMFN, xen.GrantRefXenstore: sys.StoreMFN} {
		f, d, fr, _ := sys.Guest.GrantEntry(ref)
		if f != xen.GTFPermitAccess || d != 0 || xen.MFN(fr) != mfn {
			t.Errorf("reserved ref %d: %#x d%d %#x", ref, f, d, fr)
		}
	}
	if v, err := sys.Store.Read("/local/domain/7/domid"); err != nil || v != "7" {
		t.Errorf("domid node %q %v", v, err)
	}
	if p, _ := sys.Store.GetPerms("/local/domain/7"); len(p) != 1 || p[0] != "n7" {
		t.Errorf("home perms %v", p)
	}
	if !sys.ConsoleChan.Bound() || !sys.ConsoleBackend.Bound() {
		t.Error("console channel not bound")
	}
}
