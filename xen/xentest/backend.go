package xentest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/gopvgrub/gopvgrub/xen"
)

// BackendConfig describes a simulated xenbus device: the xenstore nodes
// the toolstack creates for it and how its backend behaves.
type BackendConfig struct {
	Type  string // "vbd", "vif", "console"
	DevID uint32 // 51712 for xvda
	Front xen.DomID
	Back  xen.DomID

	// FrontendKeys are extra nodes of the frontend directory
	// ("virtual-device", "mac", "device-type"…).
	FrontendKeys map[string]string
	// BackendKeys are the backend's properties ("sectors", "info",
	// "sector-size", "mode", "feature-…").
	BackendKeys map[string]string

	// Offline clears the backend's "online" node: after the frontend
	// closes, the backend then unregisters and its directory goes away,
	// as Linux backends do when the toolstack detaches a device.
	Offline bool
	// NoHotplug leaves the backend in Initialising forever (the hotplug
	// script never finished).
	NoHotplug bool

	// Connect is called when the frontend has published its details
	// (state Initialised or Connected) and the backend is about to
	// switch to Connected: read ring refs and event channels with
	// ReadFrontend, map and bind them. An error sends the backend to
	// Closing, as xenbus_dev_fatal does.
	Connect func(b *Backend) error
	// Disconnect is called when the frontend starts closing and the
	// backend leaves Connected: unmap and unbind.
	Disconnect func(b *Backend)
}

// Backend is a simulated xenbus backend. It reacts to the frontend's
// state the way Linux's blkback (drivers/block/xen-blkback/xenbus.c
// frontend_changed) and netback do.
type Backend struct {
	x   *Xenstored
	cfg BackendConfig

	front, back string // absolute directories

	mu        sync.Mutex
	seen      []xen.XenbusState // frontend states reacted to
	connected bool
	lw        *LocalWatch
	done      chan struct{}
	connects  int
}

// NewBackend creates the device's nodes as libxl does and starts the
// backend: unless NoHotplug, it moves to InitWait at once.
func NewBackend(x *Xenstored, cfg BackendConfig) (*Backend, error) {
	if cfg.Type == "" {
		return nil, fmt.Errorf("xentest: backend without a device type")
	}
	id := strconv.FormatUint(uint64(cfg.DevID), 10)
	b := &Backend{
		x:     x,
		cfg:   cfg,
		front: fmt.Sprintf("%s/device/%s/%s", domainPath(cfg.Front), cfg.Type, id),
		back:  fmt.Sprintf("%s/backend/%s/%d/%s", domainPath(cfg.Back), cfg.Type, cfg.Front, id),
		done:  make(chan struct{}),
	}
	online := "1"
	if cfg.Offline {
		online = "0"
	}
	nodes := [][2]string{
		{b.front + "/backend", b.back},
		{b.front + "/backend-id", strconv.Itoa(int(cfg.Back))},
		{b.front + "/state", "1"},
		{b.back + "/frontend", b.front},
		{b.back + "/frontend-id", strconv.Itoa(int(cfg.Front))},
		{b.back + "/online", online},
		{b.back + "/state", "1"},
	}
	for _, k := range sortedKeys(cfg.FrontendKeys) {
		nodes = append(nodes, [2]string{b.front + "/" + k, cfg.FrontendKeys[k]})
	}
	for _, k := range sortedKeys(cfg.BackendKeys) {
		nodes = append(nodes, [2]string{b.back + "/" + k, cfg.BackendKeys[k]})
	}
	for _, kv := range nodes {
		if err := x.Write(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	// The frontend owns its directory and the backend may read it; the
	// backend directory is the reverse (libxl's permissions).
	fp := []string{"n" + strconv.Itoa(int(cfg.Front)), "r" + strconv.Itoa(int(cfg.Back))}
	bp := []string{"n" + strconv.Itoa(int(cfg.Back)), "r" + strconv.Itoa(int(cfg.Front))}
	for _, n := range nodes {
		perms := bp
		if isUnder(n[0], b.front) {
			perms = fp
		}
		if err := x.SetPerms(n[0], perms...); err != nil {
			return nil, err
		}
	}
	if err := x.SetPerms(b.front, fp...); err != nil {
		return nil, err
	}
	if err := x.SetPerms(b.back, bp...); err != nil {
		return nil, err
	}
	if !cfg.NoHotplug {
		if err := b.SetState(xen.StateInitWait); err != nil {
			return nil, err
		}
	}
	b.lw = x.Watch(b.front + "/state")
	go b.run()
	return b, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// FrontendDir is the frontend directory (absolute).
func (b *Backend) FrontendDir() string { return b.front }

// Dir is the backend directory (absolute).
func (b *Backend) Dir() string { return b.back }

// Config returns the configuration the backend was created with.
func (b *Backend) Config() BackendConfig { return b.cfg }

// State reads the backend's state node (StateUnknown if it is gone).
func (b *Backend) State() xen.XenbusState { return b.readState(b.back + "/state") }

// FrontendState reads the frontend's state node.
func (b *Backend) FrontendState() xen.XenbusState { return b.readState(b.front + "/state") }

func (b *Backend) readState(path string) xen.XenbusState {
	v, err := b.x.Read(path)
	if err != nil {
		return xen.StateUnknown
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return xen.StateUnknown
	}
	return xen.XenbusState(n)
}

// SetState writes the backend's state, as xenbus_switch_state does; tests
// use it to make a backend misbehave (e.g. go Closed unexpectedly).
func (b *Backend) SetState(s xen.XenbusState) error {
	return b.x.Write(b.back+"/state", strconv.Itoa(int(s)))
}

// ReadFrontend reads a node of the frontend directory ("ring-ref"…).
func (b *Backend) ReadFrontend(key string) (string, error) {
	return b.x.Read(b.front + "/" + key)
}

// ReadFrontendUint reads a numeric frontend node.
func (b *Backend) ReadFrontendUint(key string) (uint64, error) {
	v, err := b.ReadFrontend(key)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("xentest: %s/%s = %q: %w", b.front, key, v, err)
	}
	return n, nil
}

// FrontendStates is the sequence of distinct frontend states the backend
// has reacted to, in order.
func (b *Backend) FrontendStates() []xen.XenbusState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.seen)
}

// Connects counts successful connections.
func (b *Backend) Connects() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connects
}

// Close stops the backend goroutine (the nodes stay).
func (b *Backend) Close() {
	b.lw.Close()
	<-b.done
}

func (b *Backend) run() {
	defer close(b.done)
	for range b.lw.C {
		b.frontendChanged()
	}
}

// frontendChanged is blkback's frontend_changed.
func (b *Backend) frontendChanged() {
	fs := b.FrontendState()
	b.mu.Lock()
	if n := len(b.seen); n == 0 || b.seen[n-1] != fs {
		b.seen = append(b.seen, fs)
	}
	b.mu.Unlock()
	own := b.State()
	if own == xen.StateUnknown {
		return // unregistered: the backend is gone
	}
	if b.cfg.NoHotplug && own == xen.StateInitialising {
		return // nothing happens until hotplug completes
	}
	switch fs {
	case xen.StateInitialising:
		if own == xen.StateClosed {
			b.SetState(xen.StateInitWait)
		}
	case xen.StateInitialised, xen.StateConnected:
		if own == xen.StateConnected || own >= xen.StateClosing {
			return
		}
		if b.cfg.Connect != nil {
			if err := b.cfg.Connect(b); err != nil {
				b.SetState(xen.StateClosing)
				return
			}
		}
		b.mu.Lock()
		b.connected = true
		b.connects++
		b.mu.Unlock()
		b.SetState(xen.StateConnected)
	case xen.StateClosing:
		b.disconnect()
		b.SetState(xen.StateClosing)
	case xen.StateClosed, xen.StateUnknown:
		b.disconnect()
		b.SetState(xen.StateClosed)
		if b.offline() {
			b.x.Rm(b.back) // device_unregister: the backend is gone
		}
	}
}

func (b *Backend) disconnect() {
	b.mu.Lock()
	was := b.connected
	b.connected = false
	b.mu.Unlock()
	if was && b.cfg.Disconnect != nil {
		b.cfg.Disconnect(b)
	}
}

func (b *Backend) offline() bool {
	v, err := b.x.Read(b.back + "/online")
	return errors.Is(err, xen.ENOENT) || err == nil && v != "1"
}
