package xentest

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/xen"
)

// waitState waits for the backend to reach want; the backend reacts in
// its own goroutine.
func waitState(t *testing.T, b *Backend, want xen.XenbusState) {
	t.Helper()
	lw := b.x.Watch(b.Dir() + "/state")
	defer lw.Close()
	deadline := time.After(20 * time.Second)
	for b.State() != want {
		select {
		case <-lw.C:
		case <-deadline:
			t.Fatalf("backend state %v, want %v", b.State(), want)
		}
	}
}

func newTestBackend(t *testing.T, x *Xenstored, mod func(*BackendConfig)) *Backend {
	t.Helper()
	cfg := BackendConfig{
		Type: "vif", DevID: 0, Front: 3, Back: 0,
		FrontendKeys: map[string]string{"mac": "00:16:3e:00:00:01"},
		BackendKeys:  map[string]string{"feature-rx-copy": "1"},
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := NewBackend(x, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestBackendNodes(t *testing.T) {
	x := NewXenstored()
	b := newTestBackend(t, x, nil)
	if b.FrontendDir() != "/local/domain/3/device/vif/0" || b.Dir() != "/local/domain/0/backend/vif/3/0" {
		t.Fatalf("dirs %s %s", b.FrontendDir(), b.Dir())
	}
	for path, want := range map[string]string{
		b.FrontendDir() + "/backend":    b.Dir(),
		b.FrontendDir() + "/backend-id": "0",
		b.FrontendDir() + "/state":      "1",
		b.FrontendDir() + "/mac":        "00:16:3e:00:00:01",
		b.Dir() + "/frontend":           b.FrontendDir(),
		b.Dir() + "/frontend-id":        "3",
		b.Dir() + "/online":             "1",
		b.Dir() + "/feature-rx-copy":    "1",
		b.Dir() + "/state":              "2", // hotplug done: InitWait
	} {
		if v, err := x.Read(path); err != nil || v != want {
			t.Errorf("%s = %q, %v; want %q", path, v, err, want)
		}
	}
	if p, _ := x.GetPerms(b.FrontendDir()); !slices.Equal(p, []string{"n3", "r0"}) {
		t.Errorf("frontend perms %v", p)
	}
	if p, _ := x.GetPerms(b.Dir() + "/state"); !slices.Equal(p, []string{"n0", "r3"}) {
		t.Errorf("backend perms %v", p)
	}
}

func TestBackendStateMachine(t *testing.T) {
	x := NewXenstored()
	var connects, disconnects atomic.Int32
	var ring string
	b := newTestBackend(t, x, func(c *BackendConfig) {
		c.Connect = func(b *Backend) error {
			connects.Add(1)
			n, err := b.ReadFrontendUint("tx-ring-ref")
			if err == nil && n != 8 {
				t.Errorf("tx-ring-ref %d", n)
			}
			ring, _ = b.ReadFrontend("tx-ring-ref")
			return err
		}
		c.Disconnect = func(*Backend) { disconnects.Add(1) }
	})
	front := b.FrontendDir()
	waitState(t, b, xen.StateInitWait)
	x.Write(front+"/tx-ring-ref", "8")
	x.Write(front+"/state", "4") // netfront style: Connected directly
	waitState(t, b, xen.StateConnected)
	if connects.Load() != 1 || ring != "8" || b.Connects() != 1 {
		t.Fatalf("connects %d ring %q", connects.Load(), ring)
	}
	x.Write(front+"/state", "5")
	waitState(t, b, xen.StateClosing)
	x.Write(front+"/state", "6")
	waitState(t, b, xen.StateClosed)
	if disconnects.Load() != 1 {
		t.Fatalf("disconnects %d", disconnects.Load())
	}
	x.Write(front+"/state", "1")
	waitState(t, b, xen.StateInitWait)
	// Connect again, blkfront style.
	x.Write(front+"/state", "3")
	waitState(t, b, xen.StateConnected)
	if connects.Load() != 2 {
		t.Fatalf("connects %d", connects.Load())
	}
	// The frontend vanishing closes the backend.
	x.Rm(front + "/state")
	waitState(t, b, xen.StateClosed)
	if disconnects.Load() != 2 {
		t.Fatalf("disconnects %d", disconnects.Load())
	}
}

func TestBackendConnectFailure(t *testing.T) {
	x := NewXenstored()
	b := newTestBackend(t, x, func(c *BackendConfig) {
		c.Connect = func(*Backend) error { return errors.New("no ring") }
	})
	waitState(t, b, xen.StateInitWait)
	x.Write(b.FrontendDir()+"/state", "3")
	waitState(t, b, xen.StateClosing)
	if b.Connects() != 0 {
		t.Fatal("failed connect counted")
	}
}

func TestBackendNoHotplug(t *testing.T) {
	x := NewXenstored()
	b := newTestBackend(t, x, func(c *BackendConfig) { c.NoHotplug = true })
	x.Write(b.FrontendDir()+"/state", "3")
	waitSeen(t, b, xen.StateInitialised)
	x.Write(b.FrontendDir()+"/state", "1")
	waitSeen(t, b, xen.StateInitialising)
	if b.State() != xen.StateInitialising {
		t.Fatalf("stuck backend moved to %v", b.State())
	}
}

func TestBackendOffline(t *testing.T) {
	x := NewXenstored()
	b := newTestBackend(t, x, func(c *BackendConfig) { c.Offline = true })
	waitState(t, b, xen.StateInitWait)
	x.Write(b.FrontendDir()+"/state", "4")
	waitState(t, b, xen.StateConnected)
	x.Write(b.FrontendDir()+"/state", "6")
	waitState(t, b, xen.StateUnknown)
	if x.Exists(b.Dir()) {
		t.Fatal("offline backend did not unregister")
	}
	x.Write(b.FrontendDir()+"/state", "1")
	waitSeen(t, b, xen.StateInitialising)
	x.Write(b.FrontendDir()+"/state", "6")
	waitSeen(t, b, xen.StateClosed)
	if b.State() != xen.StateUnknown || x.Exists(b.Dir()) {
		t.Fatal("unregistered backend came back")
	}
}

// waitSeen waits until the last frontend state the backend reacted to is
// s.
func waitSeen(t *testing.T, b *Backend, s xen.XenbusState) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen := b.FrontendStates()
		if len(seen) > 0 && seen[len(seen)-1] == s {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend reacted to %v, never to %v last", seen, s)
		}
		time.Sleep(time.Millisecond)
	}
}
