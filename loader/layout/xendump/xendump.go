// Package xendump checks package layout against what Xen's toolstack
// really builds. A test kernel booted directly by `xl create` prints, on
// its console, the start_info page it was given, the end of its initial
// mapping and a hash of every initial page-table page:
//
//	LAYOUT xen <major>.<minor>
//	LAYOUT si <1168 bytes of start_info, lowercase hex>
//	LAYOUT map_end 0x<hex>
//	LAYOUT pt <i> pfn=0x<hex> level=<1..4> hash=0x<16 hex digits>
//	LAYOUT done
//
// Parse reads that out of the console output, and Compare plans the same
// boot with layout.Plan and reports every difference by name.
//
// A golden file is a dump plus the line
//
//	LAYOUT image virt_base=0x.. kstart=0x.. kend=0x.. entry=0x.. hypercall=0x.. init_p2m=0x.. mod_start_pfn=<0|1> initrd_size=<n> [mod_len=pages]
//
// which records the kernel's parameters and the initrd size, so that a
// recorded run can be re-checked without the image (CompareGolden).
//
// Page-table hashes are FNV-1a 64 over the 512 entries, each 8 bytes
// little-endian after NormalizeEntry: machine frames become PFNs, so the
// hash does not depend on which MFNs Xen happened to give the domain.
//
// The guest reads its tables after Xen validated them, and Xen changes
// two things (XenView): it adds _PAGE_USER to every present L1 entry of a
// 64-bit PV guest, whose kernel runs in ring 3 (xen/arch/x86/pv/mm.h
// adjust_guest_l1e), and it fills the L4's hypervisor slots 256–271 with
// its own mappings (init_xen_l4_slots). The guest hashes the L4 without
// those slots; the plan's tables pass through XenView before hashing.
package xendump

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/gopvgrub/gopvgrub/loader/layout"
	"github.com/gopvgrub/gopvgrub/xen"
)

// Errors, for errors.Is.
var (
	// ErrNoDump: the input holds no LAYOUT line at all.
	ErrNoDump = errors.New("no layout dump")
	// ErrIncomplete: a dump started but a line is missing (the console
	// output was cut off, or the guest died while printing).
	ErrIncomplete = errors.New("incomplete layout dump")
	// ErrFormat: a LAYOUT line is garbled, repeated or out of place.
	ErrFormat = errors.New("malformed layout dump")
)

// Limits on what Parse accepts from a console log.
const (
	// MaxTables bounds the pt lines: 65536 tables map 128 GiB, far more
	// than any test boot.
	MaxTables = 1 << 16
	// maxLine bounds a LAYOUT line; the si line is 2346 bytes. Longer
	// lines that are not LAYOUT lines are skipped, whatever their size.
	maxLine = 4096
)

const prefix = "LAYOUT "

// Version is the Xen version a dump was taken under.
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Table is one initial page-table page as the guest found it.
type Table struct {
	PFN   uint64
	Level int    // 1 = L1 … 4 = L4
	Hash  uint64 // HashTable of its entries
}

// Golden is the extra line of a golden file: what Compare needs besides
// the dump.
type Golden struct {
	Image      layout.Image
	InitrdSize uint64
	ModLen     ModLenRule
}

// Dump is one parsed layout dump.
type Dump struct {
	Xen       Version
	StartInfo []byte // xen.StartInfoSize bytes
	MapEnd    uint64
	Tables    []Table // in dump order: L4, L3s, L2s, L1s
	Golden    *Golden // nil unless the input had a LAYOUT image line
}

// ModLenRule is how the toolstack reports a mapped initrd's mod_len.
type ModLenRule int

const (
	// ModLenExact: the initrd's size (Xen 4.17.5+, and layout's rule).
	ModLenExact ModLenRule = iota
	// ModLenPages: rounded up to whole pages (Xen 4.17.0–4.17.4).
	ModLenPages
)

func (r ModLenRule) String() string {
	switch r {
	case ModLenExact:
		return "exact"
	case ModLenPages:
		return "pages"
	}
	return fmt.Sprintf("ModLenRule(%d)", int(r))
}

// ModLenRuleFor returns the rule of Xen v.patch. Only 4.17's history is
// known (see package layout): other versions get layout's exact rule.
func ModLenRuleFor(v Version, patch int) ModLenRule {
	if v == (Version{4, 17}) && patch >= 0 && patch <= 4 {
		return ModLenPages
	}
	return ModLenExact
}

// NormalizeEntry is a page-table entry with what the hash must not
// depend on taken out: a non-present entry is 0; otherwise the machine
// frame becomes m2p's PFN, and Accessed and Dirty (which the CPU may set
// after boot) and bits 52–62 are cleared.
func NormalizeEntry(e uint64, m2p func(mfn uint64) uint64) uint64 {
	if e&1 == 0 {
		return 0
	}
	const frame = 0x000ffffffffff000
	return m2p((e&frame)>>12)<<12 | e&(0x8000000000000fff&^0x60)
}

// Xen's reserved L4 slots in a 64-bit PV guest's L4
// (ROOT_PAGETABLE_FIRST_XEN_SLOT..LAST_XEN_SLOT).
const (
	FirstXenSlot = 256
	LastXenSlot  = 271
)

// pageUser is _PAGE_USER.
const pageUser = 0x4

// XenView returns the entries of a table of the given level as a guest
// reads them once Xen has validated the table the builder wrote: present
// L1 entries gain _PAGE_USER, and an L4's hypervisor slots are left out
// (zero), as the guest leaves them out of its hash.
func XenView(level int, entries []uint64) []uint64 {
	out := slices.Clone(entries)
	for i, e := range out {
		switch {
		case level == 1 && e&1 != 0:
			out[i] = e | pageUser
		case level == 4 && i >= FirstXenSlot && i <= LastXenSlot:
			out[i] = 0
		}
	}
	return out
}

// HashTable is the FNV-1a 64 hash of a table page's normalised entries.
func HashTable(entries []uint64, m2p func(mfn uint64) uint64) uint64 {
	h := fnv.New64a()
	b := make([]byte, 8*len(entries))
	for i, e := range entries {
		binary.LittleEndian.PutUint64(b[8*i:], NormalizeEntry(e, m2p))
	}
	h.Write(b)
	return h.Sum64()
}

func identity(pfn uint64) uint64 { return pfn }

// FromLayout is the dump a toolstack that built exactly l would produce
// (Xen version left zero): for tests, and as the reference for a dump.
func FromLayout(l *layout.Layout) (*Dump, error) {
	pages := l.TablePages()
	if len(pages) > MaxTables {
		return nil, fmt.Errorf("xendump: layout has %d page tables, more than %d", len(pages), MaxTables)
	}
	d := &Dump{StartInfo: l.StartInfo()[:xen.StartInfoSize], MapEnd: l.VirtPgtabEnd}
	from := make(map[uint64]uint64, len(pages))
	for i, tp := range pages {
		e, err := l.PageTable(i, identity)
		if err != nil {
			return nil, fmt.Errorf("xendump: table %d: %w", i, err)
		}
		d.Tables = append(d.Tables, Table{PFN: tp.PFN, Level: tp.Level, Hash: HashTable(XenView(tp.Level, e), identity)})
		from[tp.PFN] = tp.From
	}
	// The guest lists tables by level, then by the address they map.
	slices.SortStableFunc(d.Tables, func(a, b Table) int {
		if a.Level != b.Level {
			return b.Level - a.Level
		}
		return cmp.Compare(from[a.PFN], from[b.PFN])
	})
	return d, nil
}

// Parse reads a dump out of console output: LAYOUT lines (a trailing \r
// is ignored), anything else skipped. Exactly one dump must be there,
// complete through LAYOUT done; the guest's "LAYOUT FAIL <why>" is an
// ErrIncomplete.
func Parse(r io.Reader) (*Dump, error) {
	p := parser{}
	br := bufio.NewReaderSize(r, maxLine)
	for n := 1; ; n++ {
		line, long, err := readLine(br)
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("xendump: read line %d: %w", n, err)
		}
		// Other lines are console noise, whatever their length.
		if bytes.HasPrefix(line, []byte(prefix)) {
			if long {
				return nil, fmt.Errorf("xendump: line %d: %w: LAYOUT line longer than %d bytes", n, ErrFormat, maxLine)
			}
			if perr := p.line(string(bytes.TrimRight(line, " \t\r"))); perr != nil {
				return nil, fmt.Errorf("xendump: line %d: %w", n, perr)
			}
		}
		if err == io.EOF {
			break
		}
	}
	if err := p.finish(); err != nil {
		return nil, fmt.Errorf("xendump: %w", err)
	}
	return &p.d, nil
}

// readLine returns the next line without its \n, or its first maxLine
// bytes and long = true (the rest is consumed).
func readLine(br *bufio.Reader) (line []byte, long bool, err error) {
	line, err = br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		line = slices.Clone(line)
		for err == bufio.ErrBufferFull {
			_, err = br.ReadSlice('\n')
		}
		if err == io.EOF {
			err = nil // the long line ends the input; the next call sees EOF
		}
		return line, true, err
	}
	return bytes.TrimSuffix(line, []byte("\n")), false, err
}

type parser struct {
	d                      Dump
	started, haveSI, done  bool
	haveMapEnd, haveGolden bool
	seenAny                bool
	pfns                   map[uint64]bool
}

func (p *parser) line(s string) error {
	if !strings.HasPrefix(s, prefix) {
		return nil
	}
	p.seenAny = true
	f := strings.Fields(s[len(prefix):])
	if len(f) == 0 {
		return fmt.Errorf("%w: empty LAYOUT line", ErrFormat)
	}
	kw, args := f[0], f[1:]
	if kw == "image" {
		if p.haveGolden {
			return fmt.Errorf("%w: second LAYOUT image", ErrFormat)
		}
		g, err := parseGolden(args)
		if err != nil {
			return err
		}
		p.d.Golden, p.haveGolden = g, true
		return nil
	}
	if kw == "FAIL" {
		// The guest's own "could not dump" line.
		return fmt.Errorf("%w: the guest reported LAYOUT FAIL %s", ErrIncomplete, strings.Join(args, " "))
	}
	if p.done {
		return fmt.Errorf("%w: LAYOUT %s after LAYOUT done (a second dump?)", ErrFormat, kw)
	}
	if kw != "xen" && !p.started {
		return fmt.Errorf("%w: LAYOUT %s before LAYOUT xen", ErrFormat, kw)
	}
	switch kw {
	case "xen":
		if p.started {
			return fmt.Errorf("%w: second LAYOUT xen", ErrFormat)
		}
		if len(args) != 1 {
			return fmt.Errorf("%w: LAYOUT xen wants <major>.<minor>", ErrFormat)
		}
		maj, min, ok := strings.Cut(args[0], ".")
		a, err1 := strconv.ParseUint(maj, 10, 16)
		b, err2 := strconv.ParseUint(min, 10, 16)
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("%w: Xen version %q", ErrFormat, args[0])
		}
		p.d.Xen, p.started = Version{int(a), int(b)}, true
	case "si":
		if p.haveSI {
			return fmt.Errorf("%w: second LAYOUT si", ErrFormat)
		}
		if len(args) != 1 || len(args[0]) != 2*xen.StartInfoSize || strings.ToLower(args[0]) != args[0] {
			return fmt.Errorf("%w: LAYOUT si wants %d lowercase hex digits", ErrFormat, 2*xen.StartInfoSize)
		}
		si, err := hex.DecodeString(args[0])
		if err != nil {
			return fmt.Errorf("%w: LAYOUT si: %v", ErrFormat, err)
		}
		p.d.StartInfo, p.haveSI = si, true
	case "map_end":
		if p.haveMapEnd {
			return fmt.Errorf("%w: second LAYOUT map_end", ErrFormat)
		}
		if len(args) != 1 {
			return fmt.Errorf("%w: LAYOUT map_end wants one address", ErrFormat)
		}
		v, err := hexNum(args[0], 0)
		if err != nil {
			return fmt.Errorf("%w: map_end: %v", ErrFormat, err)
		}
		p.d.MapEnd, p.haveMapEnd = v, true
	case "pt":
		return p.table(args)
	case "done":
		if len(args) != 0 {
			return fmt.Errorf("%w: LAYOUT done takes no arguments", ErrFormat)
		}
		p.done = true
	default:
		return fmt.Errorf("%w: unknown LAYOUT %q", ErrFormat, kw)
	}
	return nil
}

func (p *parser) table(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("%w: LAYOUT pt wants <i> pfn= level= hash=", ErrFormat)
	}
	i, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil || i != uint64(len(p.d.Tables)) {
		return fmt.Errorf("%w: LAYOUT pt %q, want index %d", ErrFormat, args[0], len(p.d.Tables))
	}
	if len(p.d.Tables) >= MaxTables {
		return fmt.Errorf("%w: more than %d page tables", ErrFormat, MaxTables)
	}
	var t Table
	pfn, ok1 := strings.CutPrefix(args[1], "pfn=")
	lvl, ok2 := strings.CutPrefix(args[2], "level=")
	hash, ok3 := strings.CutPrefix(args[3], "hash=")
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("%w: LAYOUT pt %d: want pfn=, level=, hash= in that order", ErrFormat, i)
	}
	if t.PFN, err = hexNum(pfn, 0); err != nil {
		return fmt.Errorf("%w: LAYOUT pt %d: pfn: %v", ErrFormat, i, err)
	}
	if len(lvl) != 1 || lvl[0] < '1' || lvl[0] > '4' {
		return fmt.Errorf("%w: LAYOUT pt %d: level %q", ErrFormat, i, lvl)
	}
	t.Level = int(lvl[0] - '0')
	if t.Hash, err = hexNum(hash, 16); err != nil {
		return fmt.Errorf("%w: LAYOUT pt %d: hash: %v", ErrFormat, i, err)
	}
	if p.pfns[t.PFN] {
		return fmt.Errorf("%w: LAYOUT pt %d: pfn %#x listed twice", ErrFormat, i, t.PFN)
	}
	if p.pfns == nil {
		p.pfns = map[uint64]bool{}
	}
	p.pfns[t.PFN] = true
	p.d.Tables = append(p.d.Tables, t)
	return nil
}

func (p *parser) finish() error {
	if !p.seenAny {
		return ErrNoDump
	}
	missing := func(what string) error { return fmt.Errorf("%w: no LAYOUT %s", ErrIncomplete, what) }
	switch {
	case !p.started:
		return missing("xen")
	case !p.haveSI:
		return missing("si")
	case !p.haveMapEnd:
		return missing("map_end")
	case !p.done:
		return missing("done (output cut off after " + strconv.Itoa(len(p.d.Tables)) + " tables?)")
	}
	return nil
}

// hexNum parses "0x<hex>", with exactly digits digits if digits > 0.
func hexNum(s string, digits int) (uint64, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || h == "" || (digits > 0 && len(h) != digits) {
		return 0, fmt.Errorf("%q is not a 0x-prefixed hex number", s)
	}
	return strconv.ParseUint(h, 16, 64)
}

var goldenKeys = []string{"virt_base", "kstart", "kend", "entry", "hypercall", "init_p2m", "mod_start_pfn", "initrd_size"}

func parseGolden(args []string) (*Golden, error) {
	kv := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || (!slices.Contains(goldenKeys, k) && k != "mod_len") {
			return nil, fmt.Errorf("%w: LAYOUT image: unknown %q", ErrFormat, a)
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("%w: LAYOUT image: %s twice", ErrFormat, k)
		}
		kv[k] = v
	}
	g := &Golden{}
	var err error
	addr := func(k string, dst *uint64) {
		if err == nil {
			if *dst, err = hexNum(kv[k], 0); err != nil {
				err = fmt.Errorf("%w: LAYOUT image: %s: %v", ErrFormat, k, err)
			}
		}
	}
	for _, k := range goldenKeys {
		if _, ok := kv[k]; !ok {
			return nil, fmt.Errorf("%w: LAYOUT image: no %s", ErrFormat, k)
		}
	}
	addr("virt_base", &g.Image.VirtBase)
	addr("kstart", &g.Image.KStart)
	addr("kend", &g.Image.KEnd)
	addr("entry", &g.Image.Entry)
	addr("hypercall", &g.Image.HypercallPage)
	addr("init_p2m", &g.Image.InitP2M)
	if err != nil {
		return nil, err
	}
	switch kv["mod_start_pfn"] {
	case "0":
	case "1":
		g.Image.ModStartPFN = true
	default:
		return nil, fmt.Errorf("%w: LAYOUT image: mod_start_pfn %q", ErrFormat, kv["mod_start_pfn"])
	}
	if g.InitrdSize, err = strconv.ParseUint(kv["initrd_size"], 10, 64); err != nil {
		return nil, fmt.Errorf("%w: LAYOUT image: initrd_size: %v", ErrFormat, err)
	}
	switch v, ok := kv["mod_len"]; {
	case !ok || v == "exact":
	case v == "pages":
		g.ModLen = ModLenPages
	default:
		return nil, fmt.Errorf("%w: LAYOUT image: mod_len %q", ErrFormat, v)
	}
	return g, nil
}

// validate checks what Parse guarantees, for dumps built by hand.
func (d *Dump) validate() error {
	if len(d.StartInfo) != xen.StartInfoSize {
		return fmt.Errorf("xendump: start_info of %d bytes, want %d", len(d.StartInfo), xen.StartInfoSize)
	}
	if len(d.Tables) > MaxTables {
		return fmt.Errorf("xendump: %d page tables, more than %d", len(d.Tables), MaxTables)
	}
	seen := make(map[uint64]bool, len(d.Tables))
	for i, t := range d.Tables {
		if t.Level < 1 || t.Level > 4 {
			return fmt.Errorf("xendump: table %d: level %d", i, t.Level)
		}
		if seen[t.PFN] {
			return fmt.Errorf("xendump: table %d: pfn %#x listed twice", i, t.PFN)
		}
		seen[t.PFN] = true
	}
	if d.Golden != nil && d.Golden.ModLen != ModLenExact && d.Golden.ModLen != ModLenPages {
		return fmt.Errorf("xendump: golden: %v", d.Golden.ModLen)
	}
	return nil
}

// WriteTo writes d in the dump format (Parse reads it back), with the
// LAYOUT image line last if d.Golden is set.
func (d *Dump) WriteTo(w io.Writer) (int64, error) {
	if err := d.validate(); err != nil {
		return 0, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "LAYOUT xen %s\n", d.Xen)
	fmt.Fprintf(&b, "LAYOUT si %s\n", hex.EncodeToString(d.StartInfo))
	fmt.Fprintf(&b, "LAYOUT map_end %#x\n", d.MapEnd)
	for i, t := range d.Tables {
		fmt.Fprintf(&b, "LAYOUT pt %d pfn=%#x level=%d hash=0x%016x\n", i, t.PFN, t.Level, t.Hash)
	}
	b.WriteString("LAYOUT done\n")
	if g := d.Golden; g != nil {
		msp := 0
		if g.Image.ModStartPFN {
			msp = 1
		}
		fmt.Fprintf(&b, "LAYOUT image virt_base=%#x kstart=%#x kend=%#x entry=%#x hypercall=%#x init_p2m=%#x mod_start_pfn=%d initrd_size=%d",
			g.Image.VirtBase, g.Image.KStart, g.Image.KEnd, g.Image.Entry, g.Image.HypercallPage, g.Image.InitP2M, msp, g.InitrdSize)
		// Only the non-default rule is written, so most goldens keep the
		// plain line.
		if g.ModLen != ModLenExact {
			fmt.Fprintf(&b, " mod_len=%s", g.ModLen)
		}
		b.WriteString("\n")
	}
	n, err := io.WriteString(w, b.String())
	if err != nil {
		err = fmt.Errorf("xendump: write: %w", err)
	}
	return int64(n), err
}

// WriteGolden writes d as a golden file for a run of img with an initrd
// of initrdSize bytes, under the mod_len rule that opts select.
func WriteGolden(w io.Writer, d *Dump, img layout.Image, initrdSize uint64, opts ...Option) error {
	c := config(d, opts)
	g := *d
	g.Golden = &Golden{Image: img, InitrdSize: initrdSize, ModLen: c.modLen}
	_, err := g.WriteTo(w)
	return err
}
