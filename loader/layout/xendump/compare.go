package xendump

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/gopvgrub/gopvgrub/loader/layout"
	"github.com/gopvgrub/gopvgrub/xen"
)

// sifModStartPFN is SIF_MOD_START_PFN: the builder sets it, so it is an
// output of the plan, not an input.
const sifModStartPFN = 8

// Option adjusts Compare to the Xen release the dump came from.
type Option func(*cfg)

type cfg struct {
	modLen  ModLenRule
	patch   int
	byPatch bool
}

// WithModLen sets the mod_len rule directly.
func WithModLen(r ModLenRule) Option { return func(c *cfg) { c.modLen, c.byPatch = r, false } }

// XenPatch gives the patch level of the dump's Xen (the dump only says
// major.minor); the mod_len rule follows from ModLenRuleFor.
func XenPatch(patch int) Option { return func(c *cfg) { c.patch, c.byPatch = patch, true } }

func config(d *Dump, opts []Option) cfg {
	var c cfg
	for _, o := range opts {
		o(&c)
	}
	if c.byPatch {
		c.modLen = ModLenRuleFor(d.Xen, c.patch)
	}
	return c
}

// Mismatch is one field where the toolstack and the plan differ.
type Mismatch struct {
	Field           string // "start_info.mod_len", "map_end", "table pfn 0x823 hash", …
	Toolstack, Plan string
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s: toolstack %s, plan %s", m.Field, m.Toolstack, m.Plan)
}

// Result is the outcome of Compare.
type Result struct {
	Mismatches []Mismatch // empty when the plan matches
	Fields     int        // start_info fields (padding included) and map_end compared
	Tables     int        // page-table pages compared: those of the dump and the plan
	ModLen     ModLenRule // the rule the plan's mod_len followed
	Layout     *layout.Layout
}

// OK reports whether nothing differed.
func (r *Result) OK() bool { return len(r.Mismatches) == 0 }

// Summary is "OK <n> fields, <m> tables" or "FAIL <k> mismatches".
func (r *Result) Summary() string {
	if r.OK() {
		return fmt.Sprintf("OK %d fields, %d tables", r.Fields, r.Tables)
	}
	return fmt.Sprintf("FAIL %d mismatches", len(r.Mismatches))
}

// siField is a start_info field; kind 's' string, 'n' little-endian
// number, 'p' padding.
type siField struct {
	name      string
	off, size int
	kind      byte
}

// siFields cover all xen.StartInfoSize bytes (checked in the tests).
var siFields = func() []siField {
	named := []siField{
		{"magic", xen.SIOffMagic, xen.SIOffMagicLen, 's'},
		{"nr_pages", xen.SIOffNrPages, 8, 'n'},
		{"shared_info", xen.SIOffSharedInfo, 8, 'n'},
		{"flags", xen.SIOffFlags, 4, 'n'},
		{"store_mfn", xen.SIOffStoreMFN, 8, 'n'},
		{"store_evtchn", xen.SIOffStoreEvtchn, 4, 'n'},
		{"console.mfn", xen.SIOffConsoleMFN, 8, 'n'},
		{"console.evtchn", xen.SIOffConsoleEvtchn, 4, 'n'},
		{"pt_base", xen.SIOffPTBase, 8, 'n'},
		{"nr_pt_frames", xen.SIOffNrPTFrames, 8, 'n'},
		{"mfn_list", xen.SIOffMFNList, 8, 'n'},
		{"mod_start", xen.SIOffModStart, 8, 'n'},
		{"mod_len", xen.SIOffModLen, 8, 'n'},
		{"cmd_line", xen.SIOffCmdLine, xen.MaxGuestCmdline, 's'},
		{"first_p2m_pfn", xen.SIOffFirstP2MPFN, 8, 'n'},
		{"nr_p2m_frames", xen.SIOffNrP2MFrames, 8, 'n'},
	}
	var all []siField
	at := 0
	for _, f := range named {
		if f.off > at {
			all = append(all, siField{fmt.Sprintf("padding[%d:%d]", at, f.off), at, f.off - at, 'p'})
		}
		all = append(all, f)
		at = f.off + f.size
	}
	return all
}()

func (f siField) format(b []byte) string {
	v := b[f.off : f.off+f.size]
	switch f.kind {
	case 'n':
		if f.size == 4 {
			return fmt.Sprintf("%#x", binary.LittleEndian.Uint32(v))
		}
		return fmt.Sprintf("%#x", binary.LittleEndian.Uint64(v))
	case 's':
		// Trailing NULs only: bytes after the terminator must show.
		return fmt.Sprintf("%q", bytes.TrimRight(v, "\x00"))
	}
	return fmt.Sprintf("% x", v)
}

// options are the inputs of the plan as the dumped start_info gives them.
func options(si []byte, initrdSize uint64) layout.Options {
	le := binary.LittleEndian
	cmd := si[xen.SIOffCmdLine : xen.SIOffCmdLine+xen.MaxGuestCmdline]
	if i := bytes.IndexByte(cmd, 0); i >= 0 {
		cmd = cmd[:i]
	}
	return layout.Options{
		NrPages:       le.Uint64(si[xen.SIOffNrPages:]),
		InitrdSize:    initrdSize,
		Cmdline:       string(cmd),
		StoreMFN:      le.Uint64(si[xen.SIOffStoreMFN:]),
		ConsoleMFN:    le.Uint64(si[xen.SIOffConsoleMFN:]),
		StoreEvtchn:   le.Uint32(si[xen.SIOffStoreEvtchn:]),
		ConsoleEvtchn: le.Uint32(si[xen.SIOffConsoleEvtchn:]),
		SharedInfoMA:  le.Uint64(si[xen.SIOffSharedInfo:]),
		Flags:         le.Uint32(si[xen.SIOffFlags:]) &^ sifModStartPFN,
	}
}

// Compare plans the boot the dump records — img with an initrd of
// initrdSize bytes (for a gzip initrd under Xen ≤ 4.18, the size the
// toolstack loaded: see package layout) in a domain with the dumped
// start_info's memory, rings, shared_info, flags and command line — and
// reports every difference: each start_info field, map_end, which PFNs
// hold tables of which level, and each table's hash. The fields Xen
// copies from its inputs (nr_pages, shared_info, store and console,
// cmd_line up to its NUL, flags other than SIF_MOD_START_PFN) can only
// differ in their representation.
func Compare(d *Dump, img layout.Image, initrdSize uint64, opts ...Option) (*Result, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	c := config(d, opts)
	l, err := layout.Plan(img, options(d.StartInfo, initrdSize))
	if err != nil {
		return nil, fmt.Errorf("xendump: plan: %w", err)
	}
	if n := l.NrPTFrames + l.P2MTablePages; n > MaxTables {
		return nil, fmt.Errorf("xendump: the plan has %d page tables, more than a dump may list (%d)", n, MaxTables)
	}
	r := &Result{ModLen: c.modLen, Layout: l}
	add := func(field, ts, plan string) { r.Mismatches = append(r.Mismatches, Mismatch{field, ts, plan}) }

	want := l.StartInfo()[:xen.StartInfoSize]
	if c.modLen == ModLenPages && l.InitrdMapped {
		binary.LittleEndian.PutUint64(want[xen.SIOffModLen:], l.Initrd.Pages*layout.PageSize)
	}
	for _, f := range siFields {
		r.Fields++
		if !bytes.Equal(d.StartInfo[f.off:f.off+f.size], want[f.off:f.off+f.size]) {
			add("start_info."+f.name, f.format(d.StartInfo), f.format(want))
		}
	}
	r.Fields++
	if d.MapEnd != l.VirtPgtabEnd {
		add("map_end", fmt.Sprintf("%#x", d.MapEnd), fmt.Sprintf("%#x", l.VirtPgtabEnd))
	}

	got := make(map[uint64]Table, len(d.Tables))
	for _, t := range d.Tables {
		got[t.PFN] = t
	}
	planned := map[uint64]bool{}
	for i, tp := range l.TablePages() {
		planned[tp.PFN] = true
		r.Tables++
		name := fmt.Sprintf("table pfn %#x", tp.PFN)
		t, ok := got[tp.PFN]
		switch {
		case !ok:
			add(name, "none", fmt.Sprintf("L%d", tp.Level))
			continue
		case t.Level != tp.Level:
			add(name+" level", fmt.Sprintf("L%d", t.Level), fmt.Sprintf("L%d", tp.Level))
			continue
		}
		e, err := l.PageTable(i, identity)
		if err != nil {
			return nil, fmt.Errorf("xendump: plan table %d: %w", i, err)
		}
		if h := HashTable(XenView(tp.Level, e), identity); h != t.Hash {
			add(fmt.Sprintf("%s (L%d) hash", name, tp.Level), fmt.Sprintf("0x%016x", t.Hash), fmt.Sprintf("0x%016x", h))
		}
	}
	var extra []Table
	for _, t := range d.Tables {
		if !planned[t.PFN] {
			extra = append(extra, t)
		}
	}
	slices.SortFunc(extra, func(a, b Table) int { return cmp.Compare(a.PFN, b.PFN) })
	for _, t := range extra {
		r.Tables++
		add(fmt.Sprintf("table pfn %#x", t.PFN), fmt.Sprintf("L%d", t.Level), "none")
	}
	return r, nil
}

// ErrNoGolden: CompareGolden was given a dump without a LAYOUT image line.
var ErrNoGolden = errors.New("dump has no LAYOUT image line")

// CompareGolden re-checks a golden file: Compare with the image, initrd
// size and mod_len rule it records.
func CompareGolden(d *Dump) (*Result, error) {
	if d.Golden == nil {
		return nil, fmt.Errorf("xendump: %w", ErrNoGolden)
	}
	g := d.Golden
	return Compare(d, g.Image, g.InitrdSize, WithModLen(g.ModLen))
}
