package xentest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/ring"
)

// Message types of the xenstore wire protocol (io/xs_wire.h). The
// simulated daemon has its own copy of the framing, independent of
// package xenstore, so that a bug shared by both cannot hide.
const (
	xsDirectory     = 1
	xsRead          = 2
	xsGetPerms      = 3
	xsWatch         = 4
	xsUnwatch       = 5
	xsTxStart       = 6
	xsTxEnd         = 7
	xsGetDomainPath = 10
	xsWrite         = 11
	xsMkdir         = 12
	xsRm            = 13
	xsSetPerms      = 14
	xsWatchEvent    = 15
	xsError         = 16
	xsResetWatches  = 21
	xsHeader        = 16
	xsPayloadMax    = 4096
)

// Xenstored is a simulated xenstore daemon: one database served to any
// number of guest rings (Serve) and to in-process callers acting as dom0
// (the toolstack and simulated backends). Safe for concurrent use.
type Xenstored struct {
	mu     sync.Mutex
	gen    uint64
	db     *tree
	conns  map[*Conn]struct{}
	local  map[*LocalWatch]struct{}
	nextTx uint32
	lim    limits
	// failCommits makes the next commits fail with EAGAIN (a test hook
	// for conflicts that are hard to provoke on purpose).
	failCommits int
	commits     int
}

// NewXenstored returns a daemon whose database holds only "/".
func NewXenstored() *Xenstored {
	x := &Xenstored{conns: map[*Conn]struct{}{}, local: map[*LocalWatch]struct{}{}}
	x.db = newTree(&x.gen)
	return x
}

// SetQuota sets the value-size limit (E2BIG beyond it, as oxenstored
// answers) and the number of nodes an unprivileged domain may own
// (EQUOTA). Zero means unlimited.
func (x *Xenstored) SetQuota(maxValue, maxNodes int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.lim = limits{maxValue: maxValue, maxNodes: maxNodes}
}

// FailCommits makes the next n transaction commits fail with EAGAIN, as
// if another client had written what they touched.
func (x *Xenstored) FailCommits(n int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.failCommits = n
}

// Commits is the number of TRANSACTION_END requests processed (commits
// and aborts, successful or not).
func (x *Xenstored) Commits() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.commits
}

// ---- in-process access, as dom0 ----

func (x *Xenstored) errorf(op, path string, e errName) error {
	if e == eOK {
		return nil
	}
	if n := xen.ErrnoByName(string(e)); n != 0 {
		return fmt.Errorf("xentest: xenstore %s %s: %w", op, path, n)
	}
	return fmt.Errorf("xentest: xenstore %s %s: %s", op, path, e)
}

func checkAbs(path string) errName {
	if !validPath(path) {
		return eINVAL
	}
	return eOK
}

// Read returns a node's value.
func (x *Xenstored) Read(path string) (string, error) {
	if e := checkAbs(path); e != eOK {
		return "", x.errorf("read", path, e)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	v, e := x.db.read(0, path)
	return string(v), x.errorf("read", path, e)
}

// Exists reports whether a node exists.
func (x *Xenstored) Exists(path string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return validPath(path) && x.db.lookup(path) != nil
}

// Write sets a node's value, creating it and its parents.
func (x *Xenstored) Write(path, value string) error {
	if e := checkAbs(path); e != eOK {
		return x.errorf("write", path, e)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.errorf("write", path, x.apply(0, txOp{kind: opWrite, path: path, value: []byte(value)}))
}

// Mkdir creates a node if missing.
func (x *Xenstored) Mkdir(path string) error {
	if e := checkAbs(path); e != eOK {
		return x.errorf("mkdir", path, e)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.errorf("mkdir", path, x.apply(0, txOp{kind: opMkdir, path: path}))
}

// Rm removes a node and everything below it.
func (x *Xenstored) Rm(path string) error {
	if e := checkAbs(path); e != eOK {
		return x.errorf("rm", path, e)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.errorf("rm", path, x.apply(0, txOp{kind: opRm, path: path}))
}

// Directory lists a node's children, sorted.
func (x *Xenstored) Directory(path string) ([]string, error) {
	if e := checkAbs(path); e != eOK {
		return nil, x.errorf("directory", path, e)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	names, e := x.db.directory(0, path)
	return names, x.errorf("directory", path, e)
}

// SetPerms sets a node's permissions, given as on the wire: "n1", "r0"…
// The first names the owner and the default access.
func (x *Xenstored) SetPerms(path string, perms ...string) error {
	if e := checkAbs(path); e != eOK {
		return x.errorf("setperms", path, e)
	}
	ps, ok := parsePerms(perms)
	if !ok {
		return x.errorf("setperms", path, eINVAL)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.errorf("setperms", path, x.apply(0, txOp{kind: opSetPerms, path: path, perms: ps}))
}

// GetPerms returns a node's permissions as strings.
func (x *Xenstored) GetPerms(path string) ([]string, error) {
	if e := checkAbs(path); e != eOK {
		return nil, x.errorf("getperms", path, e)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	ps, e := x.db.getPerms(0, path)
	if e != eOK {
		return nil, x.errorf("getperms", path, e)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out, nil
}

func parsePerms(ss []string) ([]perm, bool) {
	if len(ss) == 0 {
		return nil, false
	}
	out := make([]perm, 0, len(ss))
	for _, s := range ss {
		p, ok := parsePerm(s)
		if !ok {
			return nil, false
		}
		out = append(out, p)
	}
	return out, true
}

// Dump returns every node as "path=value" lines, sorted, for test
// failure messages.
func (x *Xenstored) Dump() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var b strings.Builder
	var walk func(path string, n *node)
	walk = func(path string, n *node) {
		fmt.Fprintf(&b, "%s=%q\n", path, n.value)
		names := make([]string, 0, len(n.children))
		for k := range n.children {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			p := path + "/" + k
			if path == "/" {
				p = "/" + k
			}
			walk(p, n.children[k])
		}
	}
	walk("/", x.db.root)
	return b.String()
}

// apply performs one modification on the live database and fires the
// watches it triggers. x.mu is held.
func (x *Xenstored) apply(dom xen.DomID, op txOp) errName {
	var e errName
	var removed *node
	switch op.kind {
	case opWrite:
		e = x.db.write(dom, op.path, op.value, x.lim)
	case opMkdir:
		if x.db.lookup(op.path) != nil {
			return eOK // nothing changes, nothing fires
		}
		e = x.db.mkdir(dom, op.path, x.lim)
	case opRm:
		removed = x.db.lookup(op.path)
		e = x.db.rm(dom, op.path)
		if removed == nil {
			return e
		}
	case opSetPerms:
		e = x.db.setPerms(dom, op.path, op.perms)
	}
	if e == eOK {
		x.fire(op.path, op.kind == opRm)
	}
	return e
}

// fire sends the events a change of path causes: every watch on path or
// an ancestor sees path; for a removal, watches below path see their own
// path (xenstore.txt). x.mu is held.
func (x *Xenstored) fire(path string, removal bool) {
	for c := range x.conns {
		for _, w := range c.watches {
			switch {
			case isUnder(path, w.abs):
				c.queueEvent(w, path)
			case removal && isUnder(w.abs, path):
				c.queueEvent(w, w.abs)
			}
		}
	}
	for lw := range x.local {
		switch {
		case isUnder(path, lw.path):
			lw.deliver(path)
		case removal && isUnder(lw.path, path):
			lw.deliver(lw.path)
		}
	}
}

// ---- in-process watches ----

// LocalWatch is an in-process watch, for simulated backends and tests.
// Like a real watch it fires once when set up.
type LocalWatch struct {
	// C delivers changed paths; closed by Close.
	C    <-chan string
	x    *Xenstored
	path string

	mu     sync.Mutex
	queue  []string
	notify chan struct{}
	done   chan struct{}
	once   sync.Once
}

// Watch registers an in-process watch on path and below.
func (x *Xenstored) Watch(path string) *LocalWatch {
	out := make(chan string)
	lw := &LocalWatch{C: out, x: x, path: path, notify: make(chan struct{}, 1), done: make(chan struct{})}
	go lw.run(out)
	x.mu.Lock()
	x.local[lw] = struct{}{}
	lw.deliver(path)
	x.mu.Unlock()
	return lw
}

func (lw *LocalWatch) run(out chan<- string) {
	defer close(out)
	for {
		lw.mu.Lock()
		if len(lw.queue) == 0 {
			lw.mu.Unlock()
			select {
			case <-lw.notify:
				continue
			case <-lw.done:
				return
			}
		}
		p := lw.queue[0]
		lw.queue = lw.queue[1:]
		lw.mu.Unlock()
		select {
		case out <- p:
		case <-lw.done:
			return
		}
	}
}

func (lw *LocalWatch) deliver(path string) {
	lw.mu.Lock()
	if len(lw.queue) >= 1024 {
		lw.queue = append(lw.queue[:0], lw.path)
	} else {
		lw.queue = append(lw.queue, path)
	}
	lw.mu.Unlock()
	select {
	case lw.notify <- struct{}{}:
	default:
	}
}

// Close removes the watch and closes C.
func (lw *LocalWatch) Close() {
	lw.x.mu.Lock()
	delete(lw.x.local, lw)
	lw.x.mu.Unlock()
	lw.once.Do(func() { close(lw.done) })
}

// ---- serving a guest's ring ----

// ServeOptions configure one ring connection.
type ServeOptions struct {
	// Reconnect advertises XENSTORE_SERVER_FEATURE_RECONNECTION and
	// honours the connection field.
	Reconnect bool
	// ErrorField advertises XENSTORE_SERVER_FEATURE_ERROR.
	ErrorField bool
	// InitialIndex is the value of all four ring indices when serving
	// starts and after a reconnection; a value near 2^32 exercises the
	// wrap of the free-running indices.
	InitialIndex uint32
	// EventAfterWatchReply sends the initial watch event after the
	// WATCH reply; by default it comes first, as cxenstored does.
	EventAfterWatchReply bool
}

// Conn is the daemon's side of one guest's ring.
type Conn struct {
	x    *Xenstored
	dom  xen.DomID
	page []byte
	req  ring.Stream
	rsp  ring.Stream
	ch   xen.Channel
	opts ServeOptions

	// Guarded by x.mu.
	in      []byte // partial request
	out     []byte // bytes not yet in the response ring
	watches []*connWatch
	txs     map[uint32]*transaction
	held    bool
	broken  bool
	stats   ConnStats

	kick   chan struct{} // capacity 1
	events chan struct{} // capacity 1
	stop   chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
}

// ConnStats counts a connection's traffic.
type ConnStats struct {
	Requests int // messages processed
	Events   int // watch events queued
	Resets   int // reconnections performed
}

type connWatch struct {
	abs   string // absolute path (or @special)
	orig  string // as the client sent it
	token string
}

// Serve starts serving the xenstore ring page of domain dom, notifying it
// through ch (the daemon's end of the store event channel). It sets the
// ring's indices and feature bits, so call it before the guest's client
// starts, as the toolstack does.
func (x *Xenstored) Serve(dom xen.DomID, page []byte, ch xen.Channel, opts ServeOptions) (*Conn, error) {
	req, rsp, err := ring.Store(page)
	if err != nil {
		return nil, err
	}
	if uintptr(unsafe.Pointer(&page[0]))%4 != 0 {
		return nil, fmt.Errorf("xentest: xenstore page not aligned")
	}
	c := &Conn{
		x: x, dom: dom, page: page, req: req, rsp: rsp, ch: ch, opts: opts,
		txs:    map[uint32]*transaction{},
		kick:   make(chan struct{}, 1),
		events: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	var features uint32
	if opts.Reconnect {
		features |= xen.XenstoreFeatureReconnection
	}
	if opts.ErrorField {
		features |= xen.XenstoreFeatureError
	}
	c.setIndices(opts.InitialIndex)
	atomic.StoreUint32(c.field(xen.XenstoreOffServerFeatures), features)
	atomic.StoreUint32(c.field(xen.XenstoreOffConnection), xen.XenstoreConnected)
	atomic.StoreUint32(c.field(xen.XenstoreOffError), xen.XenstoreErrorNone)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	x.mu.Lock()
	x.conns[c] = struct{}{}
	x.mu.Unlock()
	go c.waitLoop(ctx)
	go c.serve()
	return c, nil
}

func (c *Conn) field(off int) *uint32 { return (*uint32)(unsafe.Pointer(&c.page[off])) }

func (c *Conn) setIndices(v uint32) {
	for _, off := range []int{xen.XenstoreOffReqCons, xen.XenstoreOffReqProd, xen.XenstoreOffRspCons, xen.XenstoreOffRspProd} {
		atomic.StoreUint32(c.field(off), v)
	}
}

// waitLoop turns event channel notifications into a Go channel signal so
// that serve can also wait for kicks.
func (c *Conn) waitLoop(ctx context.Context) {
	for {
		if err := c.ch.Wait(ctx); err != nil {
			return
		}
		poke(c.events)
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Close stops serving the ring. Watches and transactions of the
// connection are dropped.
func (c *Conn) Close() {
	c.x.mu.Lock()
	delete(c.x.conns, c)
	c.x.mu.Unlock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.cancel()
	<-c.done
}

// Hold stops the daemon from reading requests until Release, as a busy
// or stuck xenstored would.
func (c *Conn) Hold() {
	c.x.mu.Lock()
	c.held = true
	c.x.mu.Unlock()
}

// Release undoes Hold.
func (c *Conn) Release() {
	c.x.mu.Lock()
	c.held = false
	c.x.mu.Unlock()
	poke(c.kick)
}

// Inject queues raw bytes for the response stream, for tests of a
// client's handling of malformed or unsolicited replies.
func (c *Conn) Inject(raw []byte) {
	c.x.mu.Lock()
	c.out = append(c.out, raw...)
	c.x.mu.Unlock()
	poke(c.kick)
}

// Fail sets the ring's error indicator (if the feature is advertised)
// and stops serving, as xenstored does when the guest misbehaves.
func (c *Conn) Fail(code uint32) {
	c.x.mu.Lock()
	c.broken = true
	if c.opts.ErrorField {
		atomic.StoreUint32(c.field(xen.XenstoreOffError), code)
	}
	c.x.mu.Unlock()
	c.ch.Notify()
	poke(c.kick)
}

// Stats returns the connection's counters.
func (c *Conn) Stats() ConnStats {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	return c.stats
}

// Watches lists the connection's watches as "path token" strings.
func (c *Conn) Watches() []string {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	var out []string
	for _, w := range c.watches {
		out = append(out, w.orig+" "+w.token)
	}
	return out
}

// Transactions is the number of open transactions on the connection.
func (c *Conn) Transactions() int {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	return len(c.txs)
}

func (c *Conn) serve() {
	defer close(c.done)
	buf := make([]byte, ring.StoreRingSize)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		notify := false
		x := c.x
		x.mu.Lock()
		if c.opts.Reconnect && atomic.LoadUint32(c.field(xen.XenstoreOffConnection)) == xen.XenstoreReconnect {
			c.reconnect()
			notify = true
		}
		progress := false
		if !c.held && !c.broken {
			n, err := c.req.Consume(buf)
			switch {
			case err != nil:
				c.failLocked(xen.XenstoreErrorRingIdx)
			case n > 0:
				progress, notify = true, true
				c.in = append(c.in, buf[:n]...)
				c.process()
			}
		}
		if len(c.out) > 0 && !c.broken {
			n, err := c.rsp.Produce(c.out)
			if err != nil {
				c.failLocked(xen.XenstoreErrorRingIdx)
			} else if n > 0 {
				c.out = c.out[n:]
				progress, notify = true, true
			}
		}
		x.mu.Unlock()
		if notify {
			c.ch.Notify()
		}
		if progress {
			continue
		}
		select {
		case <-c.events:
		case <-c.kick:
		case <-c.stop:
			return
		}
	}
}

func (c *Conn) failLocked(code uint32) {
	c.broken = true
	if c.opts.ErrorField {
		atomic.StoreUint32(c.field(xen.XenstoreOffError), code)
	}
}

// reconnect performs the server side of a ring reconnection
// (xenstore-ring.txt). x.mu is held.
func (c *Conn) reconnect() {
	c.in, c.out = nil, nil
	c.watches = nil
	clear(c.txs)
	c.broken = false
	c.setIndices(c.opts.InitialIndex)
	atomic.StoreUint32(c.field(xen.XenstoreOffError), xen.XenstoreErrorNone)
	atomic.StoreUint32(c.field(xen.XenstoreOffConnection), xen.XenstoreConnected)
	c.stats.Resets++
}

// process handles every complete request in c.in. x.mu is held.
func (c *Conn) process() {
	for len(c.in) >= xsHeader {
		typ := binary.LittleEndian.Uint32(c.in[0:])
		reqID := binary.LittleEndian.Uint32(c.in[4:])
		txID := binary.LittleEndian.Uint32(c.in[8:])
		n := binary.LittleEndian.Uint32(c.in[12:])
		if n > xsPayloadMax {
			// xenstore.txt: the connection is killed.
			c.failLocked(xen.XenstoreErrorProto)
			return
		}
		if len(c.in) < xsHeader+int(n) {
			return
		}
		payload := c.in[xsHeader : xsHeader+int(n)]
		c.stats.Requests++
		rtyp, reply := c.handle(typ, txID, payload)
		c.in = c.in[xsHeader+int(n):]
		c.reply(rtyp, reqID, txID, reply)
		if typ == xsWatch && rtyp == xsWatch {
			c.afterWatch()
		}
	}
}

func (c *Conn) reply(typ, reqID, txID uint32, payload []byte) {
	var h [xsHeader]byte
	binary.LittleEndian.PutUint32(h[0:], typ)
	binary.LittleEndian.PutUint32(h[4:], reqID)
	binary.LittleEndian.PutUint32(h[8:], txID)
	binary.LittleEndian.PutUint32(h[12:], uint32(len(payload)))
	c.out = append(c.out, h[:]...)
	c.out = append(c.out, payload...)
}

func errReply(e errName) (uint32, []byte) { return xsError, append([]byte(e), 0) }

var okReply = []byte("OK\x00")

// args splits a payload of NUL-terminated strings; false if malformed.
func args(p []byte, n int) ([]string, bool) {
	if len(p) == 0 || p[len(p)-1] != 0 {
		return nil, false
	}
	s := strings.Split(string(p[:len(p)-1]), "\x00")
	if n >= 0 && len(s) != n {
		return nil, false
	}
	return s, true
}

func (c *Conn) handle(typ, txID uint32, p []byte) (uint32, []byte) {
	var tx *transaction
	if txID != 0 {
		tx = c.txs[txID]
		if tx == nil {
			return errReply(eNOENT)
		}
	}
	path := func() (string, errName) {
		s, ok := args(p, 1)
		if !ok {
			return "", eINVAL
		}
		abs, ok := canonical(c.dom, s[0])
		if !ok {
			return "", eINVAL
		}
		return abs, eOK
	}
	switch typ {
	case xsRead:
		abs, e := path()
		if e != eOK {
			return errReply(e)
		}
		var v []byte
		if tx != nil {
			tx.observe(abs, false)
			v, e = tx.snap.read(c.dom, abs)
		} else {
			v, e = c.x.db.read(c.dom, abs)
		}
		if e != eOK {
			return errReply(e)
		}
		return xsRead, bytes.Clone(v)
	case xsWrite:
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			return errReply(eINVAL)
		}
		abs, ok := canonical(c.dom, string(p[:i]))
		if !ok {
			return errReply(eINVAL)
		}
		return c.modify(xsWrite, tx, txOp{kind: opWrite, path: abs, value: bytes.Clone(p[i+1:])})
	case xsMkdir, xsRm:
		abs, e := path()
		if e != eOK {
			return errReply(e)
		}
		kind := opMkdir
		if typ == xsRm {
			kind = opRm
		}
		return c.modify(typ, tx, txOp{kind: kind, path: abs})
	case xsDirectory:
		abs, e := path()
		if e != eOK {
			return errReply(e)
		}
		var names []string
		if tx != nil {
			tx.observe(abs, false)
			names, e = tx.snap.directory(c.dom, abs)
		} else {
			names, e = c.x.db.directory(c.dom, abs)
		}
		if e != eOK {
			return errReply(e)
		}
		var out []byte
		for _, n := range names {
			out = append(append(out, n...), 0)
		}
		if len(out) > xsPayloadMax {
			return errReply(eE2BIG)
		}
		return xsDirectory, out
	case xsGetPerms:
		abs, e := path()
		if e != eOK {
			return errReply(e)
		}
		var ps []perm
		if tx != nil {
			tx.observe(abs, false)
			ps, e = tx.snap.getPerms(c.dom, abs)
		} else {
			ps, e = c.x.db.getPerms(c.dom, abs)
		}
		if e != eOK {
			return errReply(e)
		}
		var out []byte
		for _, pm := range ps {
			out = append(append(out, pm.String()...), 0)
		}
		return xsGetPerms, out
	case xsSetPerms:
		s, ok := args(p, -1)
		if !ok || len(s) < 2 {
			return errReply(eINVAL)
		}
		abs, ok := canonical(c.dom, s[0])
		ps, pok := parsePerms(s[1:])
		if !ok || !pok {
			return errReply(eINVAL)
		}
		return c.modify(xsSetPerms, tx, txOp{kind: opSetPerms, path: abs, perms: ps})
	case xsWatch:
		s, ok := args(p, -1)
		if !ok || len(s) < 2 || s[0] == "" {
			return errReply(eINVAL)
		}
		abs := s[0]
		if abs[0] != '@' {
			if abs, ok = canonical(c.dom, s[0]); !ok {
				return errReply(eINVAL)
			}
		}
		for _, w := range c.watches {
			if w.orig == s[0] && w.token == s[1] {
				return errReply(eEXIST)
			}
		}
		w := &connWatch{abs: abs, orig: s[0], token: s[1]}
		c.watches = append(c.watches, w)
		if !c.opts.EventAfterWatchReply {
			c.queueEvent(w, w.abs)
		}
		return xsWatch, okReply
	case xsUnwatch:
		s, ok := args(p, -1)
		if !ok || len(s) < 2 {
			return errReply(eINVAL)
		}
		for i, w := range c.watches {
			if w.orig == s[0] && w.token == s[1] {
				c.watches = append(c.watches[:i], c.watches[i+1:]...)
				return xsUnwatch, okReply
			}
		}
		return errReply(eNOENT)
	case xsTxStart:
		if txID != 0 {
			return errReply(eINVAL)
		}
		c.x.nextTx++
		id := c.x.nextTx
		base := &tree{root: c.x.db.root.clone(), gen: &c.x.gen}
		snap := &tree{root: base.root.clone(), gen: &c.x.gen}
		c.txs[id] = &transaction{id: id, dom: c.dom, base: base, snap: snap, seen: map[string]uint64{}, owner: c}
		return xsTxStart, append([]byte(strconv.FormatUint(uint64(id), 10)), 0)
	case xsTxEnd:
		if tx == nil {
			return errReply(eINVAL) // no transaction id given
		}
		s, ok := args(p, 1)
		if !ok || s[0] != "T" && s[0] != "F" {
			return errReply(eINVAL)
		}
		delete(c.txs, txID)
		c.x.commits++
		if s[0] == "F" {
			return xsTxEnd, okReply
		}
		if e := c.x.commit(tx); e != eOK {
			return errReply(e)
		}
		return xsTxEnd, okReply
	case xsResetWatches:
		c.watches = nil
		clear(c.txs)
		return xsResetWatches, okReply
	case xsGetDomainPath:
		s, ok := args(p, 1)
		if !ok {
			return errReply(eINVAL)
		}
		d, err := strconv.ParseUint(s[0], 10, 16)
		if err != nil {
			return errReply(eINVAL)
		}
		return xsGetDomainPath, append([]byte(domainPath(xen.DomID(d))), 0)
	}
	return errReply(eINVAL)
}

// afterWatch queues the initial event of the watch just added when it
// goes after the reply.
func (c *Conn) afterWatch() {
	if c.opts.EventAfterWatchReply && len(c.watches) > 0 {
		w := c.watches[len(c.watches)-1]
		c.queueEvent(w, w.abs)
	}
}

// modify runs a change directly or records it in the transaction.
func (c *Conn) modify(typ uint32, tx *transaction, op txOp) (uint32, []byte) {
	var e errName
	if tx != nil {
		tx.observe(op.path, op.kind == opRm)
		switch op.kind {
		case opWrite:
			e = tx.snap.write(c.dom, op.path, op.value, c.x.lim)
		case opMkdir:
			e = tx.snap.mkdir(c.dom, op.path, c.x.lim)
		case opRm:
			e = tx.snap.rm(c.dom, op.path)
		case opSetPerms:
			e = tx.snap.setPerms(c.dom, op.path, op.perms)
		}
		if e == eOK {
			tx.ops = append(tx.ops, op)
		}
	} else {
		e = c.x.apply(c.dom, op)
	}
	if e != eOK {
		return errReply(e)
	}
	return typ, okReply
}

// commit applies a transaction if nothing it observed changed. x.mu is
// held.
func (x *Xenstored) commit(tx *transaction) errName {
	if x.failCommits > 0 {
		x.failCommits--
		return eAGAIN
	}
	if tx.conflicts(x.db) {
		return eAGAIN
	}
	for _, op := range tx.ops {
		if e := x.apply(tx.dom, op); e != eOK {
			return e // cannot happen without a conflict; be loud
		}
	}
	return eOK
}

// queueEvent queues a WATCH_EVENT for w. x.mu is held.
func (c *Conn) queueEvent(w *connWatch, abs string) {
	epath := abs
	if w.orig != "" && w.orig[0] != '/' && w.orig[0] != '@' {
		// Relative watch: relative event path.
		prefix := domainPath(c.dom) + "/"
		epath = strings.TrimPrefix(abs, prefix)
	}
	payload := append(append(append([]byte(epath), 0), w.token...), 0)
	c.reply(xsWatchEvent, 0, 0, payload)
	c.stats.Events++
	poke(c.kick)
}
