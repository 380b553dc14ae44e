package xendump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/loader/layout"
	"github.com/gopvgrub/gopvgrub/xen"
)

type scenario struct {
	name   string
	img    layout.Image
	mib    uint64
	initrd uint64
}

// scenarios cover a mapped initrd (with a size that is not whole pages),
// none, and an unmapped one with the P2M at INIT_P2M.
var scenarios = []scenario{
	{"gopvgrub-64M-initrd", gopvgrub, 64, 16<<20 + 123},
	{"gopvgrub-128M", gopvgrub, 128, 0},
	{"linux-2G-initrd", linux, 2048, 40<<20 + 5},
}

// golden writes and re-reads the golden file of a toolstack that built
// exactly what Plan says.
func golden(t *testing.T, sc scenario, opts ...Option) (*layout.Layout, []byte) {
	t.Helper()
	l, d := planDump(t, sc.img, domain(sc.mib, sc.initrd))
	var b bytes.Buffer
	if err := WriteGolden(&b, d, sc.img, sc.initrd, opts...); err != nil {
		t.Fatal(err)
	}
	return l, b.Bytes()
}

func parse(t *testing.T, text []byte) *Dump {
	t.Helper()
	d, err := Parse(bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCompareSelf(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			l, text := golden(t, sc)
			r, err := CompareGolden(parse(t, text))
			if err != nil {
				t.Fatal(err)
			}
			if !r.OK() || r.Fields != 20 || r.Tables != len(l.TablePages()) {
				t.Fatalf("%s: %v", r.Summary(), r.Mismatches)
			}
			if want := fmt.Sprintf("OK 20 fields, %d tables", len(l.TablePages())); r.Summary() != want {
				t.Errorf("summary %q, want %q", r.Summary(), want)
			}
			// Compare with the image given directly agrees.
			if r, err := Compare(parse(t, text), sc.img, sc.initrd); err != nil || !r.OK() {
				t.Errorf("Compare: %v %v", err, r.Mismatches)
			}
		})
	}
}

// corruption changes a dump the way a toolstack that built something else
// would; want is the one mismatch Compare must report.
type corruption struct {
	name string
	mut  func(d *Dump)
	want string
}

func siCorruption(f siField) (corruption, bool) {
	c := corruption{name: "start_info." + f.name, want: "start_info." + f.name}
	at := f.off
	switch f.name {
	case "nr_pages", "shared_info", "store_mfn", "store_evtchn", "console.mfn", "console.evtchn":
		return c, false // inputs: see TestInputFields
	case "magic":
		c.mut = func(d *Dump) { d.StartInfo[at+4] = '4' } // "xen-4.0-x86_64"
	case "cmd_line":
		// Bytes after the terminator; the command line itself is an input.
		c.mut = func(d *Dump) { d.StartInfo[at+xen.MaxGuestCmdline-1] = 'x' }
	case "flags":
		c.mut = func(d *Dump) { d.StartInfo[at] ^= sifModStartPFN }
	default:
		if f.kind == 'p' {
			c.mut = func(d *Dump) { d.StartInfo[at] = 0xaa }
		} else {
			c.mut = func(d *Dump) { d.StartInfo[at] ^= 1 }
		}
	}
	return c, true
}

// TestCorruptions: every kind of difference a toolstack could show is
// reported, by name, and alone.
func TestCorruptions(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			l, text := golden(t, sc)
			d0 := parse(t, text)
			var cs []corruption
			for _, f := range siFields {
				if c, ok := siCorruption(f); ok {
					cs = append(cs, c)
				}
			}
			cs = append(cs,
				corruption{"map_end", func(d *Dump) { d.MapEnd += 4 << 20 }, "map_end"},
				corruption{"map_end unaligned", func(d *Dump) { d.MapEnd-- }, "map_end"},
			)
			for i, tb := range d0.Tables {
				name := fmt.Sprintf("table pfn %#x (L%d) hash", tb.PFN, tb.Level)
				cs = append(cs, corruption{name, func(d *Dump) { d.Tables[i].Hash ^= 1 << (i % 64) }, name})
			}
			last := d0.Tables[len(d0.Tables)-1]
			cs = append(cs,
				corruption{"level", func(d *Dump) { d.Tables[len(d.Tables)-1].Level = 2 }, fmt.Sprintf("table pfn %#x level: toolstack L2, plan L1", last.PFN)},
				corruption{"missing table", func(d *Dump) { d.Tables = d.Tables[:len(d.Tables)-1] }, fmt.Sprintf("table pfn %#x: toolstack none, plan L1", last.PFN)},
				corruption{"extra table", func(d *Dump) {
					d.Tables = append(d.Tables, Table{PFN: l.PFNAllocEnd + 7, Level: 1, Hash: last.Hash})
				}, fmt.Sprintf("table pfn %#x: toolstack L1, plan none", l.PFNAllocEnd+7)},
			)
			for _, c := range cs {
				d := parse(t, text)
				c.mut(d)
				r, err := CompareGolden(d)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if len(r.Mismatches) != 1 || !strings.HasPrefix(r.Mismatches[0].String(), c.want) {
					t.Errorf("%s: %v, want one mismatch %q", c.name, r.Mismatches, c.want)
				}
				if r.OK() || r.Summary() != "FAIL 1 mismatches" {
					t.Errorf("%s: summary %q", c.name, r.Summary())
				}
			}
			// A changed table PFN is a missing and an extra table.
			d := parse(t, text)
			d.Tables[1].PFN = l.PFNAllocEnd + 9
			if r, _ := CompareGolden(d); len(r.Mismatches) != 2 {
				t.Errorf("moved table: %v", r.Mismatches)
			}
		})
	}
}

// TestMismatchText: what a reader of the report sees.
func TestMismatchText(t *testing.T) {
	l, text := golden(t, scenarios[0])
	// One hex digit of the L4's hash, changed in the golden text.
	i := bytes.Index(text, []byte("LAYOUT pt 0 "))
	j := i + bytes.IndexByte(text[i:], '\n') - 1
	text[j] ^= 1
	d := parse(t, text)
	le := binary.LittleEndian
	le.PutUint64(d.StartInfo[xen.SIOffModLen:], l.ModLen+1)
	copy(d.StartInfo[xen.SIOffCmdLine+100:], "junk")
	r, err := CompareGolden(d)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range r.Mismatches {
		got = append(got, m.String())
	}
	want := []string{
		fmt.Sprintf("start_info.mod_len: toolstack %#x, plan %#x", l.ModLen+1, l.ModLen),
		`start_info.cmd_line: toolstack "console=hvc0 gopvgrub.selftest=layout` + strings.Repeat(`\x00`, 100-37) + `junk", plan "console=hvc0 gopvgrub.selftest=layout"`,
		fmt.Sprintf("table pfn %#x (L4) hash: toolstack 0x%016x, plan 0x%016x", d.Tables[0].PFN, d.Tables[0].Hash, d.Tables[0].Hash^1),
	}
	if !slices.Equal(got, want) {
		t.Errorf("mismatches:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestInputFields: what Xen copies from the domain's configuration is an
// input to the plan, so a dump with other values is a different domain,
// not a mismatch; more memory moves everything after the P2M.
func TestInputFields(t *testing.T) {
	_, text := golden(t, scenarios[0])
	for _, off := range []int{xen.SIOffSharedInfo, xen.SIOffStoreMFN, xen.SIOffStoreEvtchn, xen.SIOffConsoleMFN, xen.SIOffConsoleEvtchn, xen.SIOffCmdLine} {
		d := parse(t, text)
		d.StartInfo[off] ^= 0x10
		if r, err := CompareGolden(d); err != nil || !r.OK() {
			t.Errorf("offset %d: %v %v", off, err, r.Mismatches)
		}
	}
	d := parse(t, text)
	le := binary.LittleEndian
	le.PutUint64(d.StartInfo[xen.SIOffNrPages:], 4*le.Uint64(d.StartInfo[xen.SIOffNrPages:]))
	r, err := CompareGolden(d)
	if err != nil || r.OK() {
		t.Fatalf("4x memory: %v %v", err, r)
	}
	found := false
	for _, m := range r.Mismatches {
		found = found || m.Field == "start_info.pt_base"
	}
	if !found {
		t.Errorf("4x memory: %v", r.Mismatches)
	}
}

// TestModLenRule: 4.17.0–4.17.4 round a mapped initrd's mod_len up to
// pages; an unmapped one is whole pages under every release.
func TestModLenRule(t *testing.T) {
	sc := scenarios[0]
	l, d := planDump(t, sc.img, domain(sc.mib, sc.initrd))
	rounded := l.Initrd.Pages * layout.PageSize
	if rounded == l.ModLen {
		t.Fatal("test initrd is whole pages")
	}
	binary.LittleEndian.PutUint64(d.StartInfo[xen.SIOffModLen:], rounded)
	for _, c := range []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"default", nil, false},
		{"pages", []Option{WithModLen(ModLenPages)}, true},
		{"4.17.4", []Option{XenPatch(4)}, true},
		{"4.17.5", []Option{XenPatch(5)}, false},
		{"last wins", []Option{XenPatch(1), WithModLen(ModLenExact)}, false},
	} {
		r, err := Compare(d, sc.img, sc.initrd, c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK() != c.ok || (!c.ok && (len(r.Mismatches) != 1 || r.Mismatches[0].Field != "start_info.mod_len")) {
			t.Errorf("%s: %v", c.name, r.Mismatches)
		}
	}
	// The golden records the rule.
	var b bytes.Buffer
	if err := WriteGolden(&b, d, sc.img, sc.initrd, XenPatch(3)); err != nil {
		t.Fatal(err)
	}
	g := parse(t, b.Bytes())
	if g.Golden.ModLen != ModLenPages {
		t.Errorf("golden rule %v", g.Golden.ModLen)
	}
	if r, err := CompareGolden(g); err != nil || !r.OK() || r.ModLen != ModLenPages {
		t.Errorf("golden: %v %+v", err, r)
	}

	// MOD_START_PFN: whole pages either way.
	sc = scenarios[2]
	_, d = planDump(t, sc.img, domain(sc.mib, sc.initrd))
	for _, rule := range []ModLenRule{ModLenExact, ModLenPages} {
		if r, err := Compare(d, sc.img, sc.initrd, WithModLen(rule)); err != nil || !r.OK() {
			t.Errorf("unmapped initrd, %v: %v %v", rule, err, r.Mismatches)
		}
	}
}

func TestCompareErrors(t *testing.T) {
	_, d := planDump(t, gopvgrub, domain(64, 0))
	if _, err := CompareGolden(d); !errors.Is(err, ErrNoGolden) {
		t.Errorf("no golden: %v", err)
	}
	// A domain too small for the plan.
	small := *d
	small.StartInfo = bytes.Clone(d.StartInfo)
	binary.LittleEndian.PutUint64(small.StartInfo[xen.SIOffNrPages:], 8<<8)
	if _, err := Compare(&small, gopvgrub, 0); !errors.Is(err, layout.ErrNoMemory) || !strings.Contains(err.Error(), "xendump: plan") {
		t.Errorf("8 MiB: %v", err)
	}
	if _, err := Compare(d, layout.Image{VirtBase: 1}, 0); !errors.Is(err, layout.ErrBadImage) {
		t.Errorf("bad image: %v", err)
	}
	bad := *d
	bad.Tables = append(slices.Clone(d.Tables), Table{PFN: 1, Level: 9})
	if _, err := Compare(&bad, gopvgrub, 0); err == nil {
		t.Error("level 9: no error")
	}
	// A plan with more tables than a dump may list is refused rather than
	// hashed for minutes.
	huge := *d
	huge.StartInfo = bytes.Clone(d.StartInfo)
	binary.LittleEndian.PutUint64(huge.StartInfo[xen.SIOffNrPages:], 1<<36)
	if _, err := Compare(&huge, gopvgrub, 0); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("huge: %v", err)
	}
}

// goldenDir holds recorded runs under Xen 4.17: each a dump from the
// e2e layout test plus its LAYOUT image line (gopvgrub layout-check
// -golden writes them).
const goldenDir = "testdata/xen-4.17"

// TestGoldenFiles re-checks every recorded run: the plan must match what
// Xen 4.17 really built, exactly.
func TestGoldenFiles(t *testing.T) {
	entries, err := os.ReadDir(goldenDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		switch {
		case strings.HasSuffix(e.Name(), ".txt"):
			files = append(files, filepath.Join(goldenDir, e.Name()))
		case e.Name() != "README.md":
			t.Errorf("%s/%s: not a golden file (*.txt)", goldenDir, e.Name())
		}
	}
	if len(files) == 0 {
		t.Skipf("no recorded Xen 4.17 runs in %s yet: the e2e layout test records them with gopvgrub layout-check -golden", goldenDir)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			d := parse(t, text)
			if d.Xen != (Version{4, 17}) {
				t.Errorf("recorded under Xen %v, not 4.17", d.Xen)
			}
			r, err := CompareGolden(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range r.Mismatches {
				t.Error(m)
			}
			t.Log(r.Summary())
		})
	}
}
