package xenstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// MaxTxAttempts is how often Transact runs its function before giving up
// on a transaction that keeps conflicting.
const MaxTxAttempts = 16

// ErrTxDone: the transaction was already committed or aborted.
const ErrTxDone = Error("xenstore: transaction already ended")

// Tx is an open transaction. Its reads and writes see a private snapshot;
// Commit applies the writes atomically, or fails with ErrAgain if another
// client changed what the transaction touched.
type Tx struct {
	c   *Client
	id  uint32
	gen uint64 // connection generation the transaction belongs to

	mu    sync.Mutex
	ended bool
}

// ID is the transaction id xenstored assigned.
func (t *Tx) ID() uint32 { return t.id }

// Begin starts a transaction.
func (c *Client) Begin(ctx context.Context) (*Tx, error) {
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	p, err := c.roundTrip(ctx, TypeTransactionStart, 0, 0, []byte{0}, false)
	if err != nil {
		return nil, fmt.Errorf("xenstore: transaction start: %w", err)
	}
	id, err := ParseTransactionID(p)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen { // reset after xenstored answered: the transaction is gone
		return nil, fmt.Errorf("xenstore: transaction start: %w", ErrReset)
	}
	c.txs[id] = struct{}{}
	return &Tx{c: c, id: id, gen: gen}, nil
}

// Commit ends the transaction, applying its writes. ErrAgain means it
// conflicted and must be redone from the start (Transact does that).
func (t *Tx) Commit(ctx context.Context) error { return t.end(ctx, true) }

// Abort ends the transaction, discarding its writes.
func (t *Tx) Abort(ctx context.Context) error { return t.end(ctx, false) }

func (t *Tx) end(ctx context.Context, commit bool) error {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return ErrTxDone
	}
	t.ended = true
	t.mu.Unlock()
	arg := []byte("F\x00")
	if commit {
		arg = []byte("T\x00")
	}
	_, err := t.c.roundTrip(ctx, TypeTransactionEnd, t.id, t.gen, arg, false)
	if ctx.Err() == nil {
		t.c.mu.Lock()
		delete(t.c.txs, t.id)
		t.c.mu.Unlock()
	}
	if err != nil {
		what := "abort"
		if commit {
			what = "commit"
		}
		return fmt.Errorf("xenstore: transaction %d %s: %w", t.id, what, err)
	}
	return nil
}

func (t *Tx) check() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return ErrTxDone
	}
	return nil
}

// Read is Client.Read inside the transaction.
func (t *Tx) Read(ctx context.Context, path string) ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return t.c.read(ctx, t.id, t.gen, path)
}

// Write is Client.Write inside the transaction.
func (t *Tx) Write(ctx context.Context, path string, value []byte) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.c.write(ctx, t.id, t.gen, path, value)
}

// Mkdir is Client.Mkdir inside the transaction.
func (t *Tx) Mkdir(ctx context.Context, path string) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.c.simple(ctx, TypeMkdir, t.id, t.gen, path)
}

// Rm is Client.Rm inside the transaction.
func (t *Tx) Rm(ctx context.Context, path string) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.c.simple(ctx, TypeRm, t.id, t.gen, path)
}

// Directory is Client.Directory inside the transaction.
func (t *Tx) Directory(ctx context.Context, path string) ([]string, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return t.c.directory(ctx, t.id, t.gen, path)
}

// GetPerms is Client.GetPerms inside the transaction.
func (t *Tx) GetPerms(ctx context.Context, path string) ([]Perm, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return t.c.getPerms(ctx, t.id, t.gen, path)
}

// SetPerms is Client.SetPerms inside the transaction.
func (t *Tx) SetPerms(ctx context.Context, path string, perms []Perm) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.c.setPerms(ctx, t.id, t.gen, path, perms)
}

// retryable reports errors after which a transaction is simply redone.
func retryable(err error) bool {
	return errors.Is(err, ErrAgain) || errors.Is(err, ErrReset)
}

// Transact runs fn in a transaction and commits it, redoing both when
// xenstored reports a conflict (EAGAIN) or the ring was reset, up to
// MaxTxAttempts times. If fn fails, the transaction is aborted and fn's
// error returned (unless it is itself EAGAIN, which is retried). fn may
// run several times and must not have effects outside the transaction.
func (c *Client) Transact(ctx context.Context, fn func(tx *Tx) error) error {
	var last error
	for range MaxTxAttempts {
		tx, err := c.Begin(ctx)
		if err != nil {
			if retryable(err) {
				last = err
				continue
			}
			return err
		}
		if err := fn(tx); err != nil {
			tx.Abort(ctx) // its error adds nothing to fn's
			if retryable(err) && ctx.Err() == nil {
				last = err
				continue
			}
			return err
		}
		err = tx.Commit(ctx)
		if err == nil || !retryable(err) {
			return err
		}
		last = err
	}
	return fmt.Errorf("xenstore: %d attempts: %w (last: %w)", MaxTxAttempts, ErrRetries, last)
}
