// Package xenstore is a client for xenstored over the shared ring page a
// PV guest is given at boot (io/xs_wire.h, docs/misc/xenstore.txt and
// xenstore-ring.txt in the Xen tree).
//
// Requests from any number of goroutines are written whole, one at a time,
// to the request ring; a single reader goroutine reassembles replies from
// the response ring and hands each to its caller by req_id, and routes
// WATCH_EVENT messages to the watch that owns the token. Nothing polls:
// the reader blocks in xen.Channel.Wait and writers waiting for ring space
// block on a Go channel the reader signals.
//
// xenstored is another domain's code: every reply is length-checked,
// matched to a request of the same type, and malformed input becomes an
// error, never a panic or a hang.
//
// Paths that do not start with '/' are relative to the guest's home,
// /local/domain/<domid>; xenstored resolves them, and watches registered
// with relative paths report relative event paths.
//
// The ring outlives us: the kernel we chainload reuses it. Close therefore
// waits for every request to be answered, removes every watch, aborts open
// transactions and leaves both streams empty. Ring reconnection
// (XENSTORE_SERVER_FEATURE_RECONNECTION) is supported for recovery: Reset
// makes xenstored drop everything on the connection, in-flight requests
// fail with ErrReset, and the client re-registers its watches.
//
// We write our own client because the Go xenstore libraries talk to
// xenstored through /dev/xen or a Unix socket, not a ring page, and run in
// dom0 rather than in a guest without an OS.
package xenstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/ring"
)

// Stats counts what the reader saw; tests and diagnostics use it.
type Stats struct {
	Requests    uint64 // requests written
	Replies     uint64 // replies matched to a request
	WatchEvents uint64 // events delivered to a watch
	Dropped     uint64 // replies or events nobody was waiting for
	Malformed   uint64 // messages rejected as malformed
	Resets      uint64 // completed ring reconnections
}

// call is a request waiting for its reply.
type call struct {
	typ       MsgType
	tx        uint32
	done      chan result // capacity 1: the reader never blocks on it
	abandoned bool        // the caller gave up; guarded by Client.mu
}

type result struct {
	payload []byte
	err     error
}

// Client talks to xenstored over one ring page. It is safe for concurrent
// use.
type Client struct {
	page     []byte
	req, rsp ring.Stream
	ch       xen.Channel

	// wsem is held (a token in it) while one message is being written,
	// so messages never interleave; a channel so that waiting for it
	// honours the caller's context.
	wsem chan struct{}

	mu        sync.Mutex
	pending   map[uint32]*call
	nextReq   uint32
	watches   map[string]*Watch // by token
	nextToken uint64
	txs       map[uint32]struct{}
	gen       uint64 // incremented by every reset
	closing   bool   // Close started: only its own requests may run
	closed    bool
	broken    error         // set when the stream is unusable
	resetting bool          // a reset is under way
	wantReset bool          // Reset was asked for
	peerReset bool          // someone else started the reset: only wait for it
	resetCh   chan struct{} // closed when a reset starts
	resetDone chan struct{} // closed when a reset completes
	idle      chan struct{} // closed when pending becomes empty (if non-nil)
	stop      bool
	cancel    context.CancelFunc // interrupts the reader's Wait
	stats     Stats

	space      chan struct{} // capacity 1: the reader saw the peer move
	readerDone chan struct{}
}

// Errors from New.
const (
	errPageSize  = Error("xenstore: ring page shorter than 4096 bytes")
	errPageAlign = Error("xenstore: ring page not 4-byte aligned")
)

// New starts a client on the xenstore ring page (start_info.store_mfn,
// mapped) and its event channel (start_info.store_evtchn). The channel
// stays open when the client is closed: it belongs to the domain.
//
// If the page holds unread responses from an earlier user, they are
// discarded (as Linux does), or, when xenstored supports reconnection, the
// connection is reset so that a half-written request cannot corrupt the
// first exchange. If a reconnection is already under way, requests wait
// until xenstored completes it.
func New(page []byte, ch xen.Channel) (*Client, error) {
	if len(page) < xen.PageSize {
		return nil, errPageSize
	}
	if uintptr(unsafe.Pointer(&page[0]))%4 != 0 {
		return nil, errPageAlign
	}
	req, rsp, err := ring.Store(page)
	if err != nil {
		return nil, fmt.Errorf("xenstore: %w", err)
	}
	c := &Client{
		page:       page,
		req:        req,
		rsp:        rsp,
		ch:         ch,
		pending:    map[uint32]*call{},
		nextReq:    1,
		watches:    map[string]*Watch{},
		txs:        map[uint32]struct{}{},
		wsem:       make(chan struct{}, 1),
		resetCh:    make(chan struct{}),
		resetDone:  make(chan struct{}),
		space:      make(chan struct{}, 1),
		readerDone: make(chan struct{}),
	}
	if c.features()&xen.XenstoreFeatureReconnection != 0 {
		rp, _ := c.rsp.Pending()
		qp, _ := c.req.Pending()
		if c.connection() != xen.XenstoreConnected {
			// Someone else asked for a reconnection: wait for it
			// (xenstore-ring.txt), without starting another.
			c.wantReset, c.peerReset = true, true
		} else if rp != 0 || qp != 0 {
			c.wantReset = true
		}
	} else {
		c.skipStaleResponses()
	}
	go c.readLoop()
	return c, nil
}

func (c *Client) field(off int) *uint32 { return (*uint32)(unsafe.Pointer(&c.page[off])) }

func (c *Client) features() uint32 {
	return atomic.LoadUint32(c.field(xen.XenstoreOffServerFeatures))
}

func (c *Client) connection() uint32 {
	return atomic.LoadUint32(c.field(xen.XenstoreOffConnection))
}

// serverError returns the ring's error field if xenstored uses it.
func (c *Client) serverError() uint32 {
	if c.features()&xen.XenstoreFeatureError == 0 {
		return 0
	}
	return atomic.LoadUint32(c.field(xen.XenstoreOffError))
}

// skipStaleResponses drops responses left by a previous user of the ring.
// The bound protects against a peer that keeps producing.
func (c *Client) skipStaleResponses() {
	var scratch [ring.StoreRingSize]byte
	for i := 0; i < 4; i++ {
		n, err := c.rsp.Consume(scratch[:])
		if err != nil || n == 0 {
			return
		}
	}
}

// Err returns the error that made the connection unusable, or nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// ---- requests ----

// checkPath rejects what would break the wire format; xenstored checks
// the rest and answers EINVAL.
func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty", ErrBadPath)
	}
	for i := 0; i < len(p); i++ {
		if p[i] == 0 {
			return fmt.Errorf("%w %q: contains NUL", ErrBadPath, p)
		}
	}
	return nil
}

// roundTrip sends a request and waits for its reply. internal requests
// (Close's own) are allowed while closing.
func (c *Client) roundTrip(ctx context.Context, typ MsgType, tx uint32, txGen uint64, payload []byte, internal bool) ([]byte, error) {
	if len(payload) > PayloadMax {
		return nil, fmt.Errorf("xenstore: %v of %d bytes: %w", typ, len(payload), ErrTooLong)
	}
	if err := ctx.Err(); err != nil {
		return nil, err // do not send what nobody will wait for
	}
	c.mu.Lock()
	for c.resetting || c.wantReset {
		done := c.resetDone
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
	switch {
	case c.closed || c.closing && !internal:
		c.mu.Unlock()
		return nil, ErrClosed
	case c.broken != nil:
		err := c.broken
		c.mu.Unlock()
		return nil, err
	case tx != 0 && txGen != c.gen:
		c.mu.Unlock()
		return nil, fmt.Errorf("xenstore: transaction %d: %w", tx, ErrReset)
	}
	id := c.allocID()
	cl := &call{typ: typ, tx: tx, done: make(chan result, 1)}
	c.pending[id] = cl
	gen := c.gen
	c.mu.Unlock()

	msg := AppendHeader(make([]byte, 0, HeaderSize+len(payload)), Header{Type: typ, ReqID: id, TxID: tx, Len: uint32(len(payload))})
	msg = append(msg, payload...)
	if err := c.send(ctx, msg, gen); err != nil {
		c.mu.Lock()
		if c.pending[id] == cl {
			c.forget(id)
		}
		c.mu.Unlock()
		return nil, err
	}
	select {
	case r := <-cl.done:
		return r.payload, r.err
	case <-ctx.Done():
		// The request stays pending: xenstored will answer it, and the
		// reply must be consumed before the ring is idle. The reader
		// discards it (noting transactions it opened or ended).
		c.mu.Lock()
		cl.abandoned = true
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// allocID returns an unused request id. c.mu is held.
func (c *Client) allocID() uint32 {
	for {
		id := c.nextReq
		c.nextReq++
		if _, busy := c.pending[id]; !busy {
			return id
		}
	}
}

// forget removes a pending call. c.mu is held.
func (c *Client) forget(id uint32) {
	delete(c.pending, id)
	if len(c.pending) == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// send writes one whole message to the request ring, waiting for space as
// needed. A message is never left half-written on purpose: once the first
// byte is out, only a reset (after which xenstored drops partial packets)
// or a dead connection stops it.
func (c *Client) send(ctx context.Context, msg []byte, gen uint64) error {
	select {
	case c.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.wsem }()
	written := 0
	for {
		c.mu.Lock()
		if c.gen != gen || c.resetting {
			c.mu.Unlock()
			return ErrReset
		}
		if c.broken != nil {
			err := c.broken
			c.mu.Unlock()
			return err
		}
		if c.stop {
			c.mu.Unlock()
			return ErrClosed
		}
		resetCh := c.resetCh
		c.mu.Unlock()

		n, err := c.req.Produce(msg[written:])
		if err != nil {
			err = fmt.Errorf("xenstore: request ring: %w (%w)", ErrProtocol, err)
			c.fail(err)
			return err
		}
		written += n
		if n > 0 {
			if err := c.ch.Notify(); err != nil {
				err = fmt.Errorf("xenstore: notify: %w", err)
				c.fail(err)
				return err
			}
		}
		if written == len(msg) {
			c.mu.Lock()
			c.stats.Requests++
			c.mu.Unlock()
			return nil
		}
		select {
		case <-c.space:
		case <-resetCh:
		case <-c.readerDone:
			return ErrClosed
		case <-ctx.Done():
			if written == 0 {
				return ctx.Err()
			}
			// Half a message is in the ring and xenstored is not
			// taking the rest: the stream is lost.
			c.abandonStream(fmt.Errorf("xenstore: request abandoned half-written: %w", ctx.Err()))
			return ctx.Err()
		}
	}
}

// abandonStream recovers from a desynchronised stream: by a reset if
// xenstored supports it, otherwise by declaring the client broken.
func (c *Client) abandonStream(why error) {
	if c.features()&xen.XenstoreFeatureReconnection != 0 {
		c.mu.Lock()
		c.wantReset = true
		c.kick()
		c.mu.Unlock()
		return
	}
	c.fail(fmt.Errorf("%w: %w", ErrProtocol, why))
}

// fail marks the connection unusable and fails every pending request.
func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = err
	}
	c.failPending(err)
}

// failPending answers every pending call with err. c.mu is held.
func (c *Client) failPending(err error) {
	for id, cl := range c.pending {
		cl.done <- result{err: err}
		c.forget(id)
	}
}

// kick interrupts the reader's Wait. c.mu is held.
func (c *Client) kick() {
	if c.cancel != nil {
		c.cancel()
	}
}

// ---- the reader ----

func (c *Client) readLoop() {
	defer close(c.readerDone)
	var dec Decoder
	buf := make([]byte, ring.StoreRingSize)
	for {
		c.mu.Lock()
		stop, wantReset, broken := c.stop, c.wantReset, c.broken != nil
		c.mu.Unlock()
		if stop {
			return
		}
		reconnect := c.features()&xen.XenstoreFeatureReconnection != 0
		if reconnect && (wantReset || c.connection() != xen.XenstoreConnected) {
			if !c.reset(&dec) {
				return
			}
			continue
		}
		if wantReset { // asked for, but not supported
			c.mu.Lock()
			c.wantReset = false
			close(c.resetDone)
			c.resetDone = make(chan struct{})
			c.mu.Unlock()
			continue
		}
		if e := c.serverError(); e != 0 && !broken {
			c.fail(fmt.Errorf("xenstore: ring error indicator %d: %w", e, ErrServer))
			continue
		}
		if !broken {
			n, err := c.rsp.Consume(buf)
			if err != nil {
				c.fail(fmt.Errorf("xenstore: response ring: %w (%w)", ErrProtocol, err))
				continue
			}
			if n > 0 {
				if err := c.ch.Notify(); err != nil {
					c.fail(fmt.Errorf("xenstore: notify: %w", err))
					continue
				}
				c.decode(&dec, buf[:n])
				c.signalSpace()
				continue
			}
		}
		c.signalSpace()
		if err := c.wait(); err != nil {
			// The channel itself failed: nothing will ever arrive.
			c.fail(fmt.Errorf("xenstore: event channel: %w", err))
			return
		}
	}
}

func (c *Client) signalSpace() {
	select {
	case c.space <- struct{}{}:
	default:
	}
}

// wait blocks until an event arrives or the reader is kicked.
func (c *Client) wait() error {
	c.mu.Lock()
	if c.stop || c.wantReset {
		c.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.mu.Unlock()
	err := c.ch.Wait(ctx)
	c.mu.Lock()
	c.cancel = nil
	c.mu.Unlock()
	if err != nil && ctx.Err() != nil {
		err = nil // kicked
	}
	cancel()
	return err
}

// decode feeds bytes to the decoder and dispatches complete messages.
func (c *Client) decode(dec *Decoder, p []byte) {
	for len(p) > 0 {
		n, m, err := dec.Feed(p)
		p = p[n:]
		if err != nil {
			c.mu.Lock()
			c.stats.Malformed++
			c.mu.Unlock()
			c.abandonStream(err)
			return
		}
		if m != nil {
			c.dispatch(m)
		}
	}
}

// dispatch routes one message from xenstored.
func (c *Client) dispatch(m *Message) {
	if m.Type == TypeWatchEvent {
		path, token, err := ParseWatchEvent(m.Payload)
		c.mu.Lock()
		w := c.watches[token]
		switch {
		case err != nil:
			c.stats.Malformed++
		case w == nil:
			c.stats.Dropped++
		default:
			c.stats.WatchEvents++
		}
		c.mu.Unlock()
		if err == nil && w != nil {
			w.deliver(path)
		}
		return
	}
	c.mu.Lock()
	cl := c.pending[m.ReqID]
	if cl == nil {
		c.stats.Dropped++
		c.mu.Unlock()
		return
	}
	c.forget(m.ReqID)
	c.stats.Replies++
	var r result
	switch {
	case m.Type == TypeError:
		e, err := ParseErrorReply(m.Payload)
		if err != nil {
			c.stats.Malformed++
			r.err = err
		} else {
			r.err = e
		}
	case m.Type != cl.typ:
		c.stats.Malformed++
		r.err = fmt.Errorf("xenstore: %v reply to a %v request: %w", m.Type, cl.typ, ErrProtocol)
	case m.TxID != cl.tx:
		c.stats.Malformed++
		r.err = fmt.Errorf("xenstore: reply for transaction %d to a request in %d: %w", m.TxID, cl.tx, ErrProtocol)
	default:
		r.payload = m.Payload
	}
	if cl.abandoned && r.err == nil {
		// Keep track of transactions the caller no longer knows
		// about, so that Close still ends them.
		switch cl.typ {
		case TypeTransactionStart:
			if id, err := ParseTransactionID(r.payload); err == nil {
				c.txs[id] = struct{}{}
			}
		case TypeTransactionEnd:
			delete(c.txs, cl.tx)
		}
	}
	c.mu.Unlock()
	cl.done <- r
}

// reset performs a ring reconnection (xenstore-ring.txt): every pending
// request fails with ErrReset, writers stop, we set connection=1 (unless
// someone else already did) and wait for xenstored to empty the rings and
// set it back to 0. It returns false if the client stopped meanwhile.
func (c *Client) reset(dec *Decoder) bool {
	c.mu.Lock()
	c.resetting = true
	c.gen++
	close(c.resetCh)
	c.failPending(ErrReset)
	clear(c.txs)
	c.mu.Unlock()

	c.wsem <- struct{}{} // a writer in the middle of a message sees resetCh and stops
	c.mu.Lock()
	initiate := !c.peerReset
	c.mu.Unlock()
	if initiate && c.connection() == xen.XenstoreConnected {
		atomic.StoreUint32(c.field(xen.XenstoreOffConnection), xen.XenstoreReconnect)
		if err := c.ch.Notify(); err != nil {
			<-c.wsem
			c.fail(fmt.Errorf("xenstore: notify: %w", err))
			c.endReset(false)
			return true
		}
	}
	<-c.wsem

	for c.connection() != xen.XenstoreConnected {
		c.mu.Lock()
		stop := c.stop
		c.wantReset = false // this reset answers any request made meanwhile
		c.mu.Unlock()
		if stop {
			c.endReset(false)
			return false
		}
		if err := c.wait(); err != nil {
			c.fail(fmt.Errorf("xenstore: event channel: %w", err))
			c.endReset(false)
			return false
		}
	}
	dec.Reset()
	c.endReset(true)
	return true
}

// endReset finishes a reset and, if it succeeded, re-registers the
// watches xenstored dropped.
func (c *Client) endReset(ok bool) {
	c.mu.Lock()
	c.resetting = false
	c.wantReset = false
	c.peerReset = false
	c.resetCh = make(chan struct{})
	close(c.resetDone)
	c.resetDone = make(chan struct{})
	var again []*Watch
	if ok {
		c.broken = nil
		c.stats.Resets++
		for _, w := range c.watches {
			again = append(again, w)
		}
	}
	c.mu.Unlock()
	if len(again) > 0 {
		// Not from the reader: the replies must be read by it.
		go func() {
			for _, w := range again {
				w.rewatch()
			}
		}()
	}
}

// Reset reconnects the ring: xenstored drops every request, watch and
// transaction of this connection and empties both streams. In-flight
// requests fail with ErrReset; watches are registered again (each fires
// once more, as a new watch does). It also clears a broken state.
func (c *Client) Reset(ctx context.Context) error {
	if c.features()&xen.XenstoreFeatureReconnection == 0 {
		return ErrNoReconnect
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.wantReset = true
	done := c.resetDone
	c.kick()
	c.mu.Unlock()
	select {
	case <-done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.broken
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ---- close ----

// Close leaves the ring the way the next kernel needs it
// (xen-pv-abi.md §6.5 item 3): it waits for in-flight requests to be
// answered, unwatches every watch, aborts open transactions, stops the
// reader and checks that both streams are empty. It returns ErrNotIdle
// (wrapped) if that could not be achieved before ctx ended; the client is
// closed either way.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed || c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	c.mu.Unlock()

	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	note(c.waitIdle(ctx))

	c.mu.Lock()
	ws := make([]*Watch, 0, len(c.watches))
	for _, w := range c.watches {
		ws = append(ws, w)
	}
	txs := make([]uint32, 0, len(c.txs))
	for id := range c.txs {
		txs = append(txs, id)
	}
	gen := c.gen
	c.mu.Unlock()
	for _, w := range ws {
		note(w.close(ctx, true))
	}
	for _, id := range txs {
		_, err := c.roundTrip(ctx, TypeTransactionEnd, id, gen, []byte("F\x00"), true)
		c.mu.Lock()
		delete(c.txs, id)
		c.mu.Unlock()
		var e Errno
		if !errors.As(err, &e) { // xenstored saying no means it is gone already
			note(err)
		}
	}
	note(c.waitIdle(ctx))

	c.mu.Lock()
	c.stop = true
	c.closed = true
	c.kick()
	c.failPending(ErrClosed)
	c.mu.Unlock()
	<-c.readerDone

	rp, err1 := c.rsp.Pending()
	qp, err2 := c.req.Pending()
	if err1 != nil || err2 != nil || rp != 0 || qp != 0 {
		note(fmt.Errorf("xenstore: %d response and %d request bytes left: %w", rp, qp, ErrNotIdle))
	}
	if firstErr != nil && !errors.Is(firstErr, ErrNotIdle) {
		return fmt.Errorf("%w: %w", ErrNotIdle, firstErr)
	}
	return firstErr
}

// waitIdle waits until no request is pending.
func (c *Client) waitIdle(ctx context.Context) error {
	c.mu.Lock()
	if len(c.pending) == 0 || c.broken != nil {
		c.mu.Unlock()
		return nil
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-c.readerDone:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("xenstore: waiting for replies: %w", ctx.Err())
	}
}

// ---- operations ----

// Ops are the operations available both outside and inside a
// transaction. *Client and *Tx implement it.
type Ops interface {
	Read(ctx context.Context, path string) ([]byte, error)
	Write(ctx context.Context, path string, value []byte) error
	Mkdir(ctx context.Context, path string) error
	Rm(ctx context.Context, path string) error
	Directory(ctx context.Context, path string) ([]string, error)
	GetPerms(ctx context.Context, path string) ([]Perm, error)
	SetPerms(ctx context.Context, path string, perms []Perm) error
}

var (
	_ Ops = (*Client)(nil)
	_ Ops = (*Tx)(nil)
)

func (c *Client) read(ctx context.Context, tx uint32, gen uint64, path string) ([]byte, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	v, err := c.roundTrip(ctx, TypeRead, tx, gen, appendStrings(nil, path), false)
	if err != nil {
		return nil, fmt.Errorf("xenstore: read %s: %w", path, err)
	}
	return v, nil
}

func (c *Client) write(ctx context.Context, tx uint32, gen uint64, path string, value []byte) error {
	if err := checkPath(path); err != nil {
		return err
	}
	p := append(appendStrings(nil, path), value...)
	if _, err := c.roundTrip(ctx, TypeWrite, tx, gen, p, false); err != nil {
		return fmt.Errorf("xenstore: write %s: %w", path, err)
	}
	return nil
}

func (c *Client) simple(ctx context.Context, typ MsgType, tx uint32, gen uint64, path string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	if _, err := c.roundTrip(ctx, typ, tx, gen, appendStrings(nil, path), false); err != nil {
		return fmt.Errorf("xenstore: %v %s: %w", typ, path, err)
	}
	return nil
}

func (c *Client) directory(ctx context.Context, tx uint32, gen uint64, path string) ([]string, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	p, err := c.roundTrip(ctx, TypeDirectory, tx, gen, appendStrings(nil, path), false)
	if err == nil {
		var names []string
		if names, err = ParseDirectory(p); err == nil {
			return names, nil
		}
	}
	return nil, fmt.Errorf("xenstore: directory %s: %w", path, err)
}

func (c *Client) getPerms(ctx context.Context, tx uint32, gen uint64, path string) ([]Perm, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	p, err := c.roundTrip(ctx, TypeGetPerms, tx, gen, appendStrings(nil, path), false)
	if err == nil {
		var perms []Perm
		if perms, err = ParsePerms(p); err == nil {
			return perms, nil
		}
	}
	return nil, fmt.Errorf("xenstore: get perms %s: %w", path, err)
}

func (c *Client) setPerms(ctx context.Context, tx uint32, gen uint64, path string, perms []Perm) error {
	if err := checkPath(path); err != nil {
		return err
	}
	if len(perms) == 0 {
		return fmt.Errorf("xenstore: set perms %s: empty list: %w", path, ErrInvalid)
	}
	p := appendStrings(nil, path)
	for _, pm := range perms {
		p = appendStrings(p, pm.String())
	}
	if _, err := c.roundTrip(ctx, TypeSetPerms, tx, gen, p, false); err != nil {
		return fmt.Errorf("xenstore: set perms %s: %w", path, err)
	}
	return nil
}

// Read returns the value of a node.
func (c *Client) Read(ctx context.Context, path string) ([]byte, error) {
	return c.read(ctx, 0, 0, path)
}

// Write sets the value of a node, creating it and missing parents.
func (c *Client) Write(ctx context.Context, path string, value []byte) error {
	return c.write(ctx, 0, 0, path, value)
}

// Mkdir creates a node (and parents) with an empty value if missing.
func (c *Client) Mkdir(ctx context.Context, path string) error {
	return c.simple(ctx, TypeMkdir, 0, 0, path)
}

// Rm removes a node and its children; a missing node is not an error
// unless its parent is missing too.
func (c *Client) Rm(ctx context.Context, path string) error {
	return c.simple(ctx, TypeRm, 0, 0, path)
}

// Directory lists the names of a node's children.
func (c *Client) Directory(ctx context.Context, path string) ([]string, error) {
	return c.directory(ctx, 0, 0, path)
}

// GetPerms returns a node's permission list.
func (c *Client) GetPerms(ctx context.Context, path string) ([]Perm, error) {
	return c.getPerms(ctx, 0, 0, path)
}

// SetPerms replaces a node's permission list.
func (c *Client) SetPerms(ctx context.Context, path string, perms []Perm) error {
	return c.setPerms(ctx, 0, 0, path, perms)
}

// ReadString reads a node as a string.
func ReadString(ctx context.Context, o Ops, path string) (string, error) {
	v, err := o.Read(ctx, path)
	return string(v), err
}

// WriteString writes a string value.
func WriteString(ctx context.Context, o Ops, path, value string) error {
	return o.Write(ctx, path, []byte(value))
}

// ReadUint reads a node holding an unsigned decimal number (state,
// ring-ref, event-channel, sectors…) no larger than max.
func ReadUint(ctx context.Context, o Ops, path string, max uint64) (uint64, error) {
	v, err := o.Read(ctx, path)
	if err != nil {
		return 0, err
	}
	n, perr := strconv.ParseUint(string(v), 10, 64)
	if perr != nil || n > max {
		return 0, fmt.Errorf("xenstore: %s = %q: not a number up to %d: %w", path, truncate(v), max, ErrInvalid)
	}
	return n, nil
}
