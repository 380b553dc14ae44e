package xenbus_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/xenbus"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

const guest xen.DomID = 4

func setup(t *testing.T) (*xentest.System, *xenstore.Client) {
	t.Helper()
	sys, err := xentest.NewSystem(xentest.SystemConfig{GuestID: guest})
	if err != nil {
		t.Fatal(err)
	}
	c, err := xenstore.New(sys.StorePage, sys.StoreChan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("xenstore Close: %v", err)
		}
		sys.Close()
	})
	return sys, c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func vbd(t *testing.T, sys *xentest.System, id uint32, mod func(*xentest.BackendConfig)) *xentest.Backend {
	t.Helper()
	cfg := xentest.BackendConfig{
		Type: "vbd", DevID: id, Front: guest, Back: 0,
		FrontendKeys: map[string]string{"virtual-device": "51712", "device-type": "disk"},
		BackendKeys:  map[string]string{"sectors": "2048", "sector-size": "512", "info": "0", "mode": "w"},
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := xentest.NewBackend(sys.Store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// after drops the states before the first s: the backend's watch fires
// once when set up, and what it reads then depends on timing.
func after(states []xen.XenbusState, s xen.XenbusState) []xen.XenbusState {
	if i := slices.Index(states, s); i >= 0 {
		return states[i:]
	}
	return nil
}

func TestEnumerate(t *testing.T) {
	sys, c := setup(t)
	ctx := ctxFor(t, 20*time.Second)
	devs, err := xenbus.Enumerate(ctx, c, "vbd")
	if err != nil || len(devs) != 0 {
		t.Fatalf("no devices: %v, %v", devs, err)
	}
	for _, id := range []uint32{51728, 768, 51712, 5632} {
		vbd(t, sys, id, nil)
	}
	// Names that are not device ids are skipped.
	for _, junk := range []string{"foo", "0768", "-1", "99999999999"} {
		if err := sys.Store.Write("/local/domain/4/device/vbd/"+junk+"/state", "1"); err != nil {
			t.Fatal(err)
		}
	}
	devs, err = xenbus.Enumerate(ctx, c, "vbd")
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for _, d := range devs {
		ids = append(ids, d.ID)
		if d.Type != "vbd" || !strings.HasSuffix(d.Dir, "/"+strings.TrimLeft(d.Dir[len("device/vbd/"):], "0")) {
			t.Errorf("device %+v", d)
		}
	}
	if !slices.Equal(ids, []uint32{768, 5632, 51712, 51728}) {
		t.Errorf("ids %v, want numeric order", ids)
	}
	if _, err := xenbus.Enumerate(ctx, c, "a/b"); !errors.Is(err, xenbus.ErrBadType) {
		t.Errorf("bad type: %v", err)
	}
}

func TestConnectAndClose(t *testing.T) {
	sys, c := setup(t)
	ctx := ctxFor(t, 20*time.Second)
	var gotRing string
	b := vbd(t, sys, 51712, func(cfg *xentest.BackendConfig) {
		cfg.Connect = func(b *xentest.Backend) error {
			var err error
			gotRing, err = b.ReadFrontend("ring-ref")
			return err
		}
	})
	devs, err := xenbus.Enumerate(ctx, c, "vbd")
	if err != nil || len(devs) != 1 {
		t.Fatalf("Enumerate: %v %v", devs, err)
	}
	f, err := xenbus.Open(ctx, c, devs[0])
	if err != nil {
		t.Fatal(err)
	}
	if f.Backend != b.Dir() || f.BackendID != 0 {
		t.Fatalf("backend %q id %d", f.Backend, f.BackendID)
	}
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Backend properties are readable before publishing.
	if n, err := f.ReadBackendUint(ctx, "sectors", 1<<62); err != nil || n != 2048 {
		t.Fatalf("sectors %d, %v", n, err)
	}
	keys := []xenbus.KV{{"ring-ref", "9"}, {"event-channel", "5"}, {"protocol", "x86_64-abi"}}
	if err := f.Publish(ctx, xen.StateInitialised, keys...); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if gotRing != "9" || b.Connects() != 1 {
		t.Fatalf("backend saw ring-ref %q, %d connects", gotRing, b.Connects())
	}
	if b.State() != xen.StateConnected || b.FrontendState() != xen.StateConnected || f.State() != xen.StateConnected {
		t.Fatalf("states: backend %v frontend %v", b.State(), b.FrontendState())
	}
	if v, err := f.ReadFrontend(ctx, "virtual-device"); err != nil || v != "51712" {
		t.Fatalf("virtual-device %q %v", v, err)
	}

	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The handshake Mini-OS and Linux expect, and the backend is ready
	// for the next frontend. Each closing step waited for the backend,
	// so it saw all three; our final Connected may have been overtaken
	// by Closing before its watch ran.
	got := after(b.FrontendStates(), xen.StateInitialised)
	tail := []xen.XenbusState{xen.StateClosing, xen.StateClosed, xen.StateInitialising}
	if len(got) < 4 || !slices.Equal(got[len(got)-3:], tail) {
		t.Errorf("frontend states seen by the backend %v, want Initialised … %v", got, tail)
	}
	if b.State() != xen.StateInitWait {
		t.Errorf("backend state after Close: %v", b.State())
	}
	for _, kv := range keys {
		if sys.Store.Exists(b.FrontendDir() + "/" + kv.Key) {
			t.Errorf("%s left behind", kv.Key)
		}
	}
	if !sys.Store.Exists(b.FrontendDir() + "/virtual-device") {
		t.Error("Close removed a toolstack key")
	}
	if ws := sys.Conn.Watches(); len(ws) != 0 {
		t.Errorf("watches left: %v", ws)
	}

	// A later frontend (the next kernel) connects again.
	f2, err := xenbus.Open(ctx, c, devs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := f2.Connect(ctx, xen.StateConnected, xenbus.KV{"ring-ref", "10"}, xenbus.KV{"event-channel", "6"}); err != nil {
		t.Fatal(err)
	}
	if gotRing != "10" || b.Connects() != 2 {
		t.Fatalf("second connection: ring-ref %q, %d connects", gotRing, b.Connects())
	}
	if err := f2.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBackendNeverReady(t *testing.T) {
	sys, c := setup(t)
	vbd(t, sys, 768, func(cfg *xentest.BackendConfig) { cfg.NoHotplug = true })
	ctx := ctxFor(t, 20*time.Second)
	f, err := xenbus.Open(ctx, c, xenbus.Device{Type: "vbd", ID: 768, Dir: "device/vbd/768"})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = f.Connect(short, xen.StateInitialised, xenbus.KV{"ring-ref", "8"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect = %v, want a deadline error", err)
	}
	for _, want := range []string{"device/vbd/768", "InitWait", "reached Initialising"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Nothing was published, so Close has nothing to undo and does not
	// wait for the dead backend.
	if err := f.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if sys.Store.Exists("/local/domain/4/device/vbd/768/ring-ref") {
		t.Error("ring-ref published")
	}
}

func TestBackendClosesUnexpectedly(t *testing.T) {
	sys, c := setup(t)
	vbd(t, sys, 51712, func(cfg *xentest.BackendConfig) {
		cfg.Connect = func(b *xentest.Backend) error {
			return errors.New("cannot map the ring")
		}
	})
	ctx := ctxFor(t, 20*time.Second)
	f, err := xenbus.Open(ctx, c, xenbus.Device{Type: "vbd", ID: 51712, Dir: "device/vbd/51712"})
	if err != nil {
		t.Fatal(err)
	}
	err = f.Connect(ctx, xen.StateInitialised, xenbus.KV{"ring-ref", "8"})
	if !errors.Is(err, xenbus.ErrBackendGone) || !strings.Contains(err.Error(), "Closing") {
		t.Fatalf("Connect = %v, want ErrBackendGone naming Closing", err)
	}
	f.Close(ctx)
}

func TestBackendGoesClosed(t *testing.T) {
	sys, c := setup(t)
	b := vbd(t, sys, 51712, nil)
	ctx := ctxFor(t, 20*time.Second)
	f, err := xenbus.Open(ctx, c, xenbus.Device{Type: "vbd", ID: 51712, Dir: "device/vbd/51712"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// The backend dies between our publishing and its connecting.
	b.Close()
	if err := f.Publish(ctx, xen.StateInitialised, xenbus.KV{"ring-ref", "8"}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetState(xen.StateClosed); err != nil {
		t.Fatal(err)
	}
	err = f.WaitConnected(ctx)
	if !errors.Is(err, xenbus.ErrBackendGone) || !strings.Contains(err.Error(), "Closed") || !strings.Contains(err.Error(), "device/vbd/51712") {
		t.Fatalf("WaitConnected = %v", err)
	}
}

// TestStaleConnectedBackend: a backend still connected to a previous
// frontend (as after a crash of an earlier kernel) is reset first.
func TestStaleConnectedBackend(t *testing.T) {
	sys, c := setup(t)
	b := vbd(t, sys, 51712, nil)
	ctx := ctxFor(t, 20*time.Second)
	// Let the backend connect to a "previous" frontend.
	if err := sys.Store.Write(b.FrontendDir()+"/state", "4"); err != nil {
		t.Fatal(err)
	}
	for b.State() != xen.StateConnected {
		time.Sleep(time.Millisecond)
	}
	f, err := xenbus.Open(ctx, c, xenbus.Device{Type: "vbd", ID: 51712, Dir: "device/vbd/51712"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Connect(ctx, xen.StateInitialised, xenbus.KV{"ring-ref", "8"}); err != nil {
		t.Fatal(err)
	}
	// The backend may not have seen our final Connected yet; everything
	// before it is settled, since each step waited for the backend.
	got := after(b.FrontendStates(), xen.StateConnected)
	want := []xen.XenbusState{xen.StateConnected, xen.StateClosing, xen.StateClosed, xen.StateInitialising, xen.StateInitialised}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("frontend states %v, want %v", got, want)
	}
	if b.Connects() != 2 {
		t.Errorf("connects %d", b.Connects())
	}
	f.Close(ctx)
}

// TestOfflineBackendUnregisters: with online=0 the backend goes away
// after Closed; Close stops waiting instead of timing out.
func TestOfflineBackendUnregisters(t *testing.T) {
	sys, c := setup(t)
	b := vbd(t, sys, 51712, func(cfg *xentest.BackendConfig) { cfg.Offline = true })
	ctx := ctxFor(t, 20*time.Second)
	f, err := xenbus.Open(ctx, c, xenbus.Device{Type: "vbd", ID: 51712, Dir: "device/vbd/51712"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Connect(ctx, xen.StateConnected, xenbus.KV{"ring-ref", "8"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if sys.Store.Exists(b.Dir()) {
		t.Error("backend directory still there")
	}
	if v, _ := sys.Store.Read(b.FrontendDir() + "/state"); v != "1" {
		t.Errorf("frontend state %q, want 1 (Initialising)", v)
	}
}

func TestOpenRejectsBadNodes(t *testing.T) {
	sys, c := setup(t)
	ctx := ctxFor(t, 20*time.Second)
	for _, tc := range []struct {
		name           string
		backend, beID  string
		wantBadNode    bool
		wantNotExisted bool
	}{
		{"relative backend", "local/domain/0/backend/vbd/4/1", "0", true, false},
		{"trailing slash", "/local/domain/0/backend/vbd/4/1/", "0", true, false},
		{"reserved backend-id", "/local/domain/0/backend/vbd/4/1", "32752", true, false},
		{"text backend-id", "/local/domain/0/backend/vbd/4/1", "dom0", true, false},
		{"no backend", "", "0", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := "/local/domain/4/device/vbd/1"
			sys.Store.Rm(dir)
			if tc.backend != "" {
				sys.Store.Write(dir+"/backend", tc.backend)
			}
			sys.Store.Write(dir+"/backend-id", tc.beID)
			_, err := xenbus.Open(ctx, c, xenbus.Device{Type: "vbd", ID: 1, Dir: "device/vbd/1"})
			if tc.wantBadNode && !errors.Is(err, xenbus.ErrBadNode) {
				t.Errorf("err = %v, want ErrBadNode", err)
			}
			if tc.wantNotExisted && !errors.Is(err, xenstore.ErrNotExist) {
				t.Errorf("err = %v, want ErrNotExist", err)
			}
		})
	}
}

func TestPublishChecksKeys(t *testing.T) {
	sys, c := setup(t)
	vbd(t, sys, 51712, nil)
	ctx := ctxFor(t, 20*time.Second)
	f, err := xenbus.Open(ctx, c, xenbus.Device{Type: "vbd", ID: 51712, Dir: "device/vbd/51712"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(ctx)
	for _, k := range []string{"", "/abs", "state", "a\x00b"} {
		if err := f.Publish(ctx, xen.StateInitialised, xenbus.KV{k, "1"}); !errors.Is(err, xenbus.ErrBadNode) {
			t.Errorf("key %q: %v", k, err)
		}
	}
}

// TestPublishRetriesConflicts: the transaction that publishes the keys is
// redone when xenstored reports a conflict.
func TestPublishRetriesConflicts(t *testing.T) {
	sys, c := setup(t)
	b := vbd(t, sys, 51712, nil)
	ctx := ctxFor(t, 20*time.Second)
	f, err := xenbus.Open(ctx, c, xenbus.Device{Type: "vbd", ID: 51712, Dir: "device/vbd/51712"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(ctx)
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	before := sys.Store.Commits()
	sys.Store.FailCommits(3)
	if err := f.Publish(ctx, xen.StateInitialised, xenbus.KV{"ring-ref", "77"}); err != nil {
		t.Fatal(err)
	}
	if n := sys.Store.Commits() - before; n != 4 {
		t.Errorf("%d commits, want 4", n)
	}
	if v, _ := b.ReadFrontend("ring-ref"); v != "77" {
		t.Errorf("ring-ref %q", v)
	}
}

// TestCloseStuckBackend: a backend that stops reacting mid-handshake
// makes Close fail with a clear error, yet our keys are still removed
// and our state is back to Initialising for the next kernel.
func TestCloseStuckBackend(t *testing.T) {
	sys, c := setup(t)
	b := vbd(t, sys, 51712, nil)
	ctx := ctxFor(t, 20*time.Second)
	f, err := xenbus.Open(ctx, c, xenbus.Device{Type: "vbd", ID: 51712, Dir: "device/vbd/51712"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Connect(ctx, xen.StateInitialised, xenbus.KV{"ring-ref", "8"}, xenbus.KV{"event-channel", "3"}); err != nil {
		t.Fatal(err)
	}
	b.Close() // the backend dies
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = f.Close(short)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Closing") || !strings.Contains(err.Error(), "reached Connected") {
		t.Fatalf("Close = %v", err)
	}
	for _, k := range []string{"ring-ref", "event-channel"} {
		if sys.Store.Exists(b.FrontendDir() + "/" + k) {
			t.Errorf("%s left behind", k)
		}
	}
	if v, _ := sys.Store.Read(b.FrontendDir() + "/state"); v != "1" {
		t.Errorf("frontend state %q, want 1", v)
	}
	if ws := sys.Conn.Watches(); len(ws) != 0 {
		t.Errorf("watches left: %v", ws)
	}
}
