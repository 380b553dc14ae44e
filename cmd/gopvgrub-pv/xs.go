package main

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/xen/xenstore"
)

// xenstoreTest is the e2e scenario `xenstore`, guest side:
//  1. print the domain's own subtree, one `XS node PATH = "VALUE"` line
//     per node (values escaped as xenstore-ls does), for dom0 to compare
//     with `xenstore-ls -f`;
//  2. arm a watch on data/tb-watch; each value dom0 writes there is
//     echoed to data/tb-ack, so dom0 times the round trip;
//  3. run a transaction on data/tb-tx that dom0 makes conflict: the first
//     attempt waits, inside the transaction, until dom0 has changed the
//     key; the commit must then fail with EAGAIN and the retry succeed.
func xenstoreTest() error {
	bl, err := newBootloader()
	if err != nil {
		return err
	}
	xs := bl.store
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	id, err := xenstore.ReadString(ctx, xs, "domid")
	if err != nil {
		return err
	}
	root := "/local/domain/" + id
	nodes, denied := 0, 0
	var walk func(p string) error
	walk = func(p string) error {
		v, err := xs.Read(ctx, p)
		switch {
		case errors.Is(err, xenstore.ErrPermission):
			fmt.Printf("XS denied %s\n", p)
			denied++
			return nil
		case err != nil:
			return err
		}
		fmt.Printf("XS node %s = \"%s\"\n", p, xsEscape(v))
		nodes++
		kids, err := xs.Directory(ctx, p)
		if errors.Is(err, xenstore.ErrPermission) {
			fmt.Printf("XS denied %s/\n", p)
			denied++
			return nil
		}
		if err != nil {
			return err
		}
		sort.Strings(kids)
		for _, k := range kids {
			if err := walk(path.Join(p, k)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		return fmt.Errorf("walk %s: %w", root, err)
	}
	fmt.Printf("XS tree %s nodes %d denied %d\n", root, nodes, denied)

	// 2. Watch: echo what dom0 writes.
	w, err := xs.Watch(ctx, "data/tb-watch")
	if err != nil {
		return err
	}
	<-w.C // the event xenstored fires when the watch is set up
	fmt.Println("XS watch armed")
	for echoed := 0; echoed < 3; {
		select {
		case <-w.C:
		case <-ctx.Done():
			return fmt.Errorf("watch: no write from dom0: %w", ctx.Err())
		}
		v, err := xenstore.ReadString(ctx, xs, "data/tb-watch")
		if err != nil {
			continue // removed, or not yet written
		}
		if err := xenstore.WriteString(ctx, xs, "data/tb-ack", v); err != nil {
			return err
		}
		fmt.Printf("XS watch fired value %s\n", v)
		echoed++
	}
	if err := w.Close(ctx); err != nil {
		return err
	}

	// 3. A conflicting transaction.
	tw, err := xs.Watch(ctx, "data/tb-tx")
	if err != nil {
		return err
	}
	<-tw.C
	attempts := 0
	var wrote uint64
	err = xs.Transact(ctx, func(tx *xenstore.Tx) error {
		attempts++
		b, err := tx.Read(ctx, "data/tb-tx")
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("data/tb-tx %q: %w", b, err)
		}
		if attempts == 1 {
			fmt.Printf("XS tx open value %d\n", n)
			select {
			case <-tw.C: // dom0 changed it behind the transaction's back
			case <-time.After(30 * time.Second):
				return errors.New("dom0 did not change data/tb-tx")
			}
		}
		wrote = n + 1
		return tx.Write(ctx, "data/tb-tx", []byte(strconv.FormatUint(wrote, 10)))
	})
	tw.Close(ctx)
	if err != nil {
		return fmt.Errorf("transaction: %w", err)
	}
	fmt.Printf("XS tx committed attempts %d value %d\n", attempts, wrote)
	fmt.Println("XS done")
	return nil
}

// xsEscape renders a value as xenstore-ls does (xenstore_client.c
// sanitise_value): backslash doubled, control and non-ASCII bytes as
// octal \ooo, except \t \n \r, which keep their C escapes.
func xsEscape(v []byte) string {
	var b strings.Builder
	for _, c := range v {
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
