// Package xenbus implements the frontend half of the xenbus device
// handshake (xen/include/public/io/xenbus.h), shared by every PV frontend
// (block, network, console): find devices in xenstore, wait for the
// backend, publish the ring details, reach Connected, and — the part a
// bootloader cannot skip — hand the device back in the state the next
// kernel's frontend expects.
//
// Each device has a frontend directory in the guest's home,
// device/<type>/<id>, holding "backend" (the backend directory),
// "backend-id" and our "state"; the backend directory holds the
// backend's "state" and its properties. States are decimal XenbusState
// values. The sequence follows Linux (drivers/xen/xenbus/xenbus_probe*.c,
// xen-blkfront.c, xen-netfront.c) and Mini-OS (blkfront.c):
//
//	connect:  [reset a stale backend] -> backend InitWait -> publish keys
//	          (one transaction) -> state Initialised (or Connected) ->
//	          backend Connected -> state Connected
//	close:    Closing -> backend >= Closing -> Closed -> backend Closed ->
//	          Initialising -> backend InitWait -> remove our keys
//
// Every wait is bounded by the caller's context; errors name the device
// and the backend state reached.
package xenbus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
)

// Error is the type of this package's sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Errors.
const (
	// ErrBackendGone: the backend closed or disappeared while we were
	// connecting.
	ErrBackendGone = Error("xenbus: backend closed the device")
	// ErrBadNode: a xenstore node the handshake depends on is malformed.
	ErrBadNode = Error("xenbus: malformed xenstore node")
	// ErrBadType: the device type is empty or contains '/'.
	ErrBadType = Error("xenbus: invalid device type")
	// ErrState: the call does not fit the frontend's current state.
	ErrState = Error("xenbus: operation not valid in this state")
)

// Device is one entry of device/<type>.
type Device struct {
	Type string // "vbd", "vif", "console"
	ID   uint32 // 51712 for xvda, 0 for the first vif
	Dir  string // "device/vbd/51712", relative to the domain's home
}

func checkType(typ string) error {
	if typ == "" || strings.ContainsAny(typ, "/\x00") {
		return fmt.Errorf("%w %q", ErrBadType, typ)
	}
	return nil
}

// Enumerate lists the devices of a type, in numeric id order (PV-GRUB
// names disks hd0, hd1… in this order). Entries whose names are not
// decimal numbers are skipped. No device/<type> directory means no
// devices.
func Enumerate(ctx context.Context, store xenstore.Ops, typ string) ([]Device, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	dir := "device/" + typ
	names, err := store.Directory(ctx, dir)
	if errors.Is(err, xenstore.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("xenbus: list %s: %w", dir, err)
	}
	var out []Device
	for _, n := range names {
		id, ok := parseID(n)
		if !ok {
			continue
		}
		out = append(out, Device{Type: typ, ID: id, Dir: dir + "/" + n})
	}
	slices.SortFunc(out, func(a, b Device) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// parseID accepts plain decimal numbers only ("0", "51712").
func parseID(s string) (uint32, bool) {
	if s == "" || len(s) > 10 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

// KV is one key a frontend publishes under its directory.
type KV struct {
	Key, Value string
}

// Frontend drives one device's handshake. Its methods must not be called
// concurrently.
type Frontend struct {
	Device
	// Backend is the backend's directory, BackendID its domain.
	Backend   string
	BackendID xen.DomID

	store   *xenstore.Client
	watch   *xenstore.Watch
	state   xen.XenbusState // what we last wrote
	last    xen.XenbusState // backend state last seen
	written []string        // keys we published, to remove at Close
	mu      sync.Mutex
	closed  bool
}

// Open reads the device's backend location and starts watching the
// backend's state. It does not change anything in xenstore.
func Open(ctx context.Context, store *xenstore.Client, dev Device) (*Frontend, error) {
	if err := checkType(dev.Type); err != nil {
		return nil, err
	}
	be, err := xenstore.ReadString(ctx, store, dev.Dir+"/backend")
	if err != nil {
		return nil, fmt.Errorf("xenbus: %s: %w", dev.Dir, err)
	}
	if len(be) < 2 || be[0] != '/' || len(be) > xenstore.AbsPathMax-16 || strings.HasSuffix(be, "/") {
		return nil, fmt.Errorf("xenbus: %s: backend path %q: %w", dev.Dir, truncate(be), ErrBadNode)
	}
	id, err := xenstore.ReadUint(ctx, store, dev.Dir+"/backend-id", uint64(xen.DomFirstReserved)-1)
	if err != nil {
		return nil, fmt.Errorf("xenbus: %s: backend-id: %w", dev.Dir, errors.Join(ErrBadNode, err))
	}
	f := &Frontend{Device: dev, Backend: be, BackendID: xen.DomID(id), store: store}
	if f.state, err = f.readState(ctx, dev.Dir+"/state"); err != nil {
		return nil, err
	}
	if f.watch, err = store.Watch(ctx, be+"/state"); err != nil {
		return nil, fmt.Errorf("xenbus: %s: watch backend: %w", dev.Dir, err)
	}
	return f, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// readState reads a state node; a missing node is StateUnknown (the
// device is gone or not yet created).
func (f *Frontend) readState(ctx context.Context, path string) (xen.XenbusState, error) {
	n, err := xenstore.ReadUint(ctx, f.store, path, uint64(xen.StateReconfigured))
	if errors.Is(err, xenstore.ErrNotExist) {
		return xen.StateUnknown, nil
	}
	if err != nil {
		return 0, fmt.Errorf("xenbus: %s: %w", f.Dir, err)
	}
	return xen.XenbusState(n), nil
}

// BackendState reads the backend's current state.
func (f *Frontend) BackendState(ctx context.Context) (xen.XenbusState, error) {
	s, err := f.readState(ctx, f.Backend+"/state")
	if err == nil {
		f.last = s
	}
	return s, err
}

// State is the state we last wrote (or found at Open).
func (f *Frontend) State() xen.XenbusState { return f.state }

// SetState writes our state.
func (f *Frontend) SetState(ctx context.Context, s xen.XenbusState) error {
	if err := xenstore.WriteString(ctx, f.store, f.Dir+"/state", strconv.Itoa(int(s))); err != nil {
		return fmt.Errorf("xenbus: %s: set state %v: %w", f.Dir, s, err)
	}
	f.state = s
	return nil
}

// WaitBackend waits until the backend's state satisfies ok and returns
// it. what describes the awaited state for the error message.
func (f *Frontend) WaitBackend(ctx context.Context, what string, ok func(xen.XenbusState) bool) (xen.XenbusState, error) {
	for {
		s, err := f.BackendState(ctx)
		if err != nil {
			return s, err
		}
		if ok(s) {
			return s, nil
		}
		select {
		case _, open := <-f.watch.C:
			if !open {
				return s, fmt.Errorf("xenbus: %s: watch on %s/state ended: %w", f.Dir, f.Backend, xenstore.ErrClosed)
			}
		case <-ctx.Done():
			return s, fmt.Errorf("xenbus: %s: waiting for backend %s (reached %v): %w", f.Dir, what, s, ctx.Err())
		}
	}
}

// WaitReady resets a backend left connected (or closing) by an earlier
// frontend — the same reset Linux performs when it starts after a kexec —
// and waits until the backend is in InitWait, ready for our details.
func (f *Frontend) WaitReady(ctx context.Context) error {
	s, err := f.BackendState(ctx)
	if err != nil {
		return err
	}
	switch s {
	case xen.StateConnected, xen.StateClosing, xen.StateClosed:
		if err := f.reset(ctx, s); err != nil {
			return err
		}
	}
	_, err = f.WaitBackend(ctx, "InitWait", func(s xen.XenbusState) bool {
		return s == xen.StateInitWait || s == xen.StateInitialised
	})
	return err
}

// reset walks a backend found in state from back to InitWait.
func (f *Frontend) reset(ctx context.Context, from xen.XenbusState) error {
	if from == xen.StateConnected {
		if err := f.SetState(ctx, xen.StateClosing); err != nil {
			return err
		}
		if _, err := f.WaitBackend(ctx, "Closing", atLeast(xen.StateClosing)); err != nil {
			return err
		}
	}
	if from <= xen.StateClosing {
		if err := f.SetState(ctx, xen.StateClosed); err != nil {
			return err
		}
		if _, err := f.WaitBackend(ctx, "Closed", is(xen.StateClosed)); err != nil {
			return err
		}
	}
	return f.SetState(ctx, xen.StateInitialising)
}

func atLeast(min xen.XenbusState) func(xen.XenbusState) bool {
	return func(s xen.XenbusState) bool { return s >= min }
}

func is(want xen.XenbusState) func(xen.XenbusState) bool {
	return func(s xen.XenbusState) bool { return s == want }
}

// Publish writes keys under the frontend directory in one transaction
// (retried on conflicts) and then announces state: Initialised for
// frontends that wait for the backend before connecting (block), or
// Connected for those that do not (network). The keys are removed again
// by Close.
func (f *Frontend) Publish(ctx context.Context, state xen.XenbusState, keys ...KV) error {
	for _, kv := range keys {
		if kv.Key == "" || strings.ContainsAny(kv.Key, "\x00") || strings.HasPrefix(kv.Key, "/") || kv.Key == "state" {
			return fmt.Errorf("xenbus: %s: cannot publish key %q: %w", f.Dir, kv.Key, ErrBadNode)
		}
	}
	err := f.store.Transact(ctx, func(tx *xenstore.Tx) error {
		for _, kv := range keys {
			if err := xenstore.WriteString(ctx, tx, f.Dir+"/"+kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("xenbus: %s: publish: %w", f.Dir, err)
	}
	for _, kv := range keys {
		if !slices.Contains(f.written, kv.Key) {
			f.written = append(f.written, kv.Key)
		}
	}
	return f.SetState(ctx, state)
}

// WaitConnected waits for the backend to reach Connected and then sets
// our own state to Connected. A backend that moves to Closing or Closed
// instead fails with ErrBackendGone.
func (f *Frontend) WaitConnected(ctx context.Context) error {
	s, err := f.WaitBackend(ctx, "Connected", func(s xen.XenbusState) bool {
		return s == xen.StateConnected || s >= xen.StateClosing || s == xen.StateUnknown
	})
	if err != nil {
		return err
	}
	if s != xen.StateConnected {
		return fmt.Errorf("xenbus: %s: backend %s went to %v while we waited for Connected: %w", f.Dir, f.Backend, s, ErrBackendGone)
	}
	if f.state != xen.StateConnected {
		return f.SetState(ctx, xen.StateConnected)
	}
	return nil
}

// Connect is WaitReady, Publish and WaitConnected in one call, for
// frontends that need no backend property before publishing.
func (f *Frontend) Connect(ctx context.Context, state xen.XenbusState, keys ...KV) error {
	if err := f.WaitReady(ctx); err != nil {
		return err
	}
	if err := f.Publish(ctx, state, keys...); err != nil {
		return err
	}
	return f.WaitConnected(ctx)
}

// ReadBackend reads a backend property ("sectors", "feature-…").
func (f *Frontend) ReadBackend(ctx context.Context, key string) (string, error) {
	v, err := xenstore.ReadString(ctx, f.store, f.Backend+"/"+key)
	if err != nil {
		return "", fmt.Errorf("xenbus: %s: %w", f.Dir, err)
	}
	return v, nil
}

// ReadBackendUint reads a numeric backend property no larger than max.
func (f *Frontend) ReadBackendUint(ctx context.Context, key string, max uint64) (uint64, error) {
	n, err := xenstore.ReadUint(ctx, f.store, f.Backend+"/"+key, max)
	if err != nil {
		return 0, fmt.Errorf("xenbus: %s: %w", f.Dir, err)
	}
	return n, nil
}

// ReadFrontend reads a key of our own directory ("mac", "virtual-device").
func (f *Frontend) ReadFrontend(ctx context.Context, key string) (string, error) {
	v, err := xenstore.ReadString(ctx, f.store, f.Dir+"/"+key)
	if err != nil {
		return "", fmt.Errorf("xenbus: %s: %w", f.Dir, err)
	}
	return v, nil
}

// Close hands the device back: Closing, Closed, then Initialising, each
// time waiting for the backend to follow, so that the backend is in
// InitWait for the next frontend (the chainloaded kernel's); then the
// keys we published are removed and the watch dropped. A backend that
// disappears (its state node removed) ends the handshake early. The
// caller ends its grants and closes its event channel afterwards, once
// the backend has let go of them (backend Closed).
//
// Every step is attempted even after a failure; the first error is
// returned. The waits for the backend are bounded by ctx; the final
// clean-up (our state back to Initialising, removing keys, the watch)
// runs even if ctx has ended, bounded by CleanupTimeout, because the next
// kernel needs it most exactly when a backend misbehaved.
func (f *Frontend) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()

	var first error
	note := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	gone := func(s xen.XenbusState) bool { return s == xen.StateUnknown }
	if f.state != xen.StateInitialising && f.state != xen.StateUnknown {
		steps := []struct {
			own  xen.XenbusState
			what string
			ok   func(xen.XenbusState) bool
		}{
			{xen.StateClosing, "Closing", atLeast(xen.StateClosing)},
			{xen.StateClosed, "Closed", is(xen.StateClosed)},
			{xen.StateInitialising, "InitWait", func(s xen.XenbusState) bool {
				return s >= xen.StateInitWait && s < xen.StateClosed
			}},
		}
		for _, st := range steps {
			if err := f.SetState(ctx, st.own); err != nil {
				note(err)
				break
			}
			s, err := f.WaitBackend(ctx, st.what, func(s xen.XenbusState) bool { return st.ok(s) || gone(s) })
			if err != nil {
				note(err)
				break
			}
			if gone(s) {
				break
			}
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	defer cancel()
	if f.state != xen.StateInitialising && f.state != xen.StateUnknown {
		// Whatever happened, leave the frontend in its initial state:
		// the next kernel starts from there.
		note(f.SetState(cctx, xen.StateInitialising))
	}
	for _, k := range f.written {
		if err := f.store.Rm(cctx, f.Dir+"/"+k); err != nil && !errors.Is(err, xenstore.ErrNotExist) {
			note(fmt.Errorf("xenbus: %s: remove %s: %w", f.Dir, k, err))
		}
	}
	f.written = nil
	note(f.watch.Close(cctx))
	return first
}

// CleanupTimeout bounds the clean-up at the end of Close: a few xenstore
// requests, which a live xenstored answers at once.
const CleanupTimeout = 5 * time.Second
