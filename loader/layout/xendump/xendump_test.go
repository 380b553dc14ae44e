package xendump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/gopvgrub/gopvgrub/loader/layout"
	"github.com/gopvgrub/gopvgrub/xen"
)

// The kernels of package layout's tests: Debian 12's vmlinux as libelf
// sees it (INIT_P2M, MOD_START_PFN) and an 8 MiB gopvgrub image (mapped
// initrd, P2M in the boot region).
var (
	linux = layout.Image{
		VirtBase: 0xffffffff80000000, KStart: 0xffffffff81000000, KEnd: 0xffffffff84a00000,
		Entry: 0xffffffff830791c0, HypercallPage: layout.Unset, InitP2M: 0x8000000000, ModStartPFN: true,
	}
	gopvgrub = layout.Image{
		VirtBase: 0x400000, KStart: 0x400000, KEnd: 0xc00000,
		Entry: 0x401000, HypercallPage: 0x500000, InitP2M: layout.Unset,
	}
)

// domain is what xl would give a test domain.
func domain(mib, initrd uint64) layout.Options {
	return layout.Options{
		NrPages: mib << 8, InitrdSize: initrd, Cmdline: "console=hvc0 gopvgrub.selftest=layout",
		StoreMFN: 0x12345, StoreEvtchn: 1, ConsoleMFN: 0x12344, ConsoleEvtchn: 2, SharedInfoMA: 0xbfe67000,
	}
}

// planDump is the dump of a toolstack that built exactly what Plan says.
func planDump(t testing.TB, img layout.Image, o layout.Options) (*layout.Layout, *Dump) {
	t.Helper()
	l, err := layout.Plan(img, o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := FromLayout(l)
	if err != nil {
		t.Fatal(err)
	}
	d.Xen = Version{4, 17}
	return l, d
}

func dumpText(t testing.TB, d *Dump) string {
	t.Helper()
	var b strings.Builder
	if _, err := d.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// console dresses a dump as console output: \r\n line ends and other
// lines around and between its lines.
func console(dump string) string {
	var b strings.Builder
	b.WriteString("Xen PV console\r\n[    0.000] gopvgrub: layout self-test\r\nLAYOUTS are printed below\r\n")
	for i, line := range strings.SplitAfter(dump, "\n") {
		if line == "" {
			continue
		}
		b.WriteString(strings.TrimSuffix(line, "\n") + "\r\n")
		if i%3 == 1 {
			b.WriteString(" LAYOUT pt 0 (indented: not a dump line)\r\n")
		}
	}
	b.WriteString("selftest: done\r\n")
	return b.String()
}

func TestParseConsole(t *testing.T) {
	_, d := planDump(t, gopvgrub, domain(64, 16<<20+123))
	got, err := Parse(strings.NewReader(console(dumpText(t, d))))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Errorf("parsed %+v\nwant %+v", got, d)
	}
	// The L4 first, then L3, L2 and the L1s.
	if len(got.Tables) != 17 || got.Tables[0].Level != 4 || got.Tables[16].Level != 1 {
		t.Errorf("tables %+v", got.Tables)
	}
	// A dump without a final newline, and one with \n only.
	text := dumpText(t, d)
	for _, in := range []string{strings.TrimSuffix(text, "\n"), text} {
		if _, err := Parse(strings.NewReader(in)); err != nil {
			t.Error(err)
		}
	}
}

// TestTableOrder: with INIT_P2M the P2M list's L3, L2 and L1 come after
// the boot region's in PFN order, but the guest lists tables by level.
func TestTableOrder(t *testing.T) {
	l, d := planDump(t, linux, domain(2048, 40<<20))
	var levels []int
	for _, tb := range d.Tables {
		levels = append(levels, tb.Level)
	}
	want := []int{4, 3, 3, 2, 2}
	if !reflect.DeepEqual(levels[:5], want) || levels[len(levels)-1] != 1 {
		t.Errorf("levels %v", levels)
	}
	// The boot region maps 0xffff80000000 (masked), the P2M list
	// 0x8000000000: the P2M's L3 comes first.
	if p2mL3 := l.Mappings[1].Levels[2].PFN; d.Tables[1].PFN != p2mL3 {
		t.Errorf("first L3 is pfn %#x, want the P2M's %#x", d.Tables[1].PFN, p2mL3)
	}
}

func TestParseErrors(t *testing.T) {
	_, d := planDump(t, gopvgrub, domain(64, 0))
	good := dumpText(t, d)
	lines := strings.Split(strings.TrimSuffix(good, "\n"), "\n")
	join := func(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
	without := func(prefix string) string {
		var out []string
		for _, l := range lines {
			if !strings.HasPrefix(l, prefix) {
				out = append(out, l)
			}
		}
		return join(out...)
	}
	replace := func(prefix, with string) string {
		var out []string
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				l = with
			}
			out = append(out, l)
		}
		return join(out...)
	}
	si := strings.TrimPrefix(lines[1], "LAYOUT si ")
	pt := func(s string) string { return replace("LAYOUT pt 3 ", s) }
	image := "LAYOUT image virt_base=0x400000 kstart=0x400000 kend=0xc00000 entry=0x401000 hypercall=0x500000 init_p2m=0xffffffffffffffff mod_start_pfn=0 initrd_size=0"
	tests := []struct {
		name string
		in   string
		is   error
		msg  string
	}{
		{"empty", "", ErrNoDump, ""},
		{"no layout lines", "hello\r\nLAYOUTxen 4.17\nlayout xen 4.17\n", ErrNoDump, ""},
		{"cut before done", join(lines[:len(lines)-1]...), ErrIncomplete, "no LAYOUT done"},
		{"cut after xen", join(lines[0]), ErrIncomplete, "no LAYOUT si"},
		{"guest failed", join(lines[0], lines[1], "LAYOUT FAIL more than 512 initial page tables"), ErrIncomplete, "reported LAYOUT FAIL more than 512"},
		{"cut inside si", lines[0] + "\n" + lines[1][:1000], ErrFormat, "lowercase hex"},
		{"cut inside pt", join(lines[:6]...) + lines[6][:20], ErrFormat, "pt"},
		{"no map_end", without("LAYOUT map_end"), ErrIncomplete, "map_end"},
		{"no si", without("LAYOUT si"), ErrIncomplete, "no LAYOUT si"},
		{"no xen", without("LAYOUT xen"), ErrFormat, "before LAYOUT xen"},
		{"xen twice", lines[0] + "\n" + good, ErrFormat, "second LAYOUT xen"},
		{"si twice", replace("LAYOUT map_end", lines[1]), ErrFormat, "second LAYOUT si"},
		{"second dump", good + good, ErrFormat, "after LAYOUT done"},
		{"bad version", replace("LAYOUT xen", "LAYOUT xen 4"), ErrFormat, "version"},
		{"bad version 2", replace("LAYOUT xen", "LAYOUT xen 4.x"), ErrFormat, "version"},
		{"uppercase si", replace("LAYOUT si", "LAYOUT si "+strings.ToUpper(si)), ErrFormat, "lowercase"},
		{"si not hex", replace("LAYOUT si", "LAYOUT si zz"+si[2:]), ErrFormat, "si"},
		{"si too long", replace("LAYOUT si", "LAYOUT si "+si+"00"), ErrFormat, "si"},
		{"map_end no 0x", replace("LAYOUT map_end", "LAYOUT map_end 1000000"), ErrFormat, "map_end"},
		{"map_end two", replace("LAYOUT map_end", "LAYOUT map_end 0x1 0x2"), ErrFormat, "map_end"},
		{"pt index skipped", pt("LAYOUT pt 4 pfn=0x1 level=1 hash=0x0000000000000000"), ErrFormat, "want index 3"},
		{"pt level 5", pt("LAYOUT pt 3 pfn=0x1 level=5 hash=0x0000000000000000"), ErrFormat, "level"},
		{"pt level 0", pt("LAYOUT pt 3 pfn=0x1 level=0 hash=0x0000000000000000"), ErrFormat, "level"},
		{"pt short hash", pt("LAYOUT pt 3 pfn=0x1 level=1 hash=0x1234"), ErrFormat, "hash"},
		{"pt order", pt("LAYOUT pt 3 level=1 pfn=0x1 hash=0x0000000000000000"), ErrFormat, "order"},
		{"pt extra", pt("LAYOUT pt 3 pfn=0x1 level=1 hash=0x0000000000000000 x"), ErrFormat, "pt"},
		{"pt pfn twice", pt(strings.Replace(lines[5], "pt 2", "pt 3", 1)), ErrFormat, "twice"},
		{"unknown", replace("LAYOUT map_end", "LAYOUT frob 1"), ErrFormat, `unknown LAYOUT "frob"`},
		{"done args", replace("LAYOUT done", "LAYOUT done now"), ErrFormat, "done"},
		{"image twice", good + image + "\n" + image + "\n", ErrFormat, "second LAYOUT image"},
		{"image key", good + image + " x=1\n", ErrFormat, `unknown "x=1"`},
		{"image missing key", good + strings.Replace(image, " entry=0x401000", "", 1) + "\n", ErrFormat, "no entry"},
		{"image dup key", good + image + " kend=0x1\n", ErrFormat, "kend twice"},
		{"image mod_start_pfn", good + strings.Replace(image, "mod_start_pfn=0", "mod_start_pfn=2", 1) + "\n", ErrFormat, "mod_start_pfn"},
		{"image initrd_size", good + strings.Replace(image, "initrd_size=0", "initrd_size=-1", 1) + "\n", ErrFormat, "initrd_size"},
		{"image address", good + strings.Replace(image, "kstart=0x400000", "kstart=400000", 1) + "\n", ErrFormat, "kstart"},
		{"image mod_len", good + image + " mod_len=round\n", ErrFormat, "mod_len"},
		{"long layout line", good + "LAYOUT " + strings.Repeat("x", 5000) + "\n", ErrFormat, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in))
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.is, tc.msg)
			}
		})
	}
	// Read errors are wrapped.
	errBroken := errors.New("console gone")
	_, err := Parse(io.MultiReader(strings.NewReader(lines[0]+"\n"), iotest.ErrReader(errBroken)))
	if !errors.Is(err, errBroken) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("read error: %v", err)
	}
}

// TestParseOversized: huge console lines that are not dump lines are
// skipped wherever they are; too many tables are refused.
func TestParseOversized(t *testing.T) {
	_, d := planDump(t, gopvgrub, domain(64, 0))
	text := dumpText(t, d)
	junk := strings.Repeat("k", 1<<20)
	i := strings.Index(text, "LAYOUT map_end")
	in := junk + "\n" + text[:i] + junk + "\r\n" + text[i:] + junk
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Error("dump around long lines differs")
	}

	var b strings.Builder
	head := text[:strings.Index(text, "LAYOUT pt ")]
	b.WriteString(head)
	for i := range MaxTables + 1 {
		fmt.Fprintf(&b, "LAYOUT pt %d pfn=%#x level=1 hash=0x0000000000000000\n", i, i)
	}
	b.WriteString("LAYOUT done\n")
	if _, err := Parse(strings.NewReader(b.String())); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many tables: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	_, d := planDump(t, linux, domain(512, 40<<20))
	d.Golden = &Golden{Image: linux, InitrdSize: 40 << 20, ModLen: ModLenPages}
	text := dumpText(t, d)
	if !strings.HasSuffix(text, "LAYOUT done\nLAYOUT image virt_base=0xffffffff80000000 kstart=0xffffffff81000000 kend=0xffffffff84a00000 "+
		"entry=0xffffffff830791c0 hypercall=0xffffffffffffffff init_p2m=0x8000000000 mod_start_pfn=1 initrd_size=41943040 mod_len=pages\n") {
		t.Errorf("golden text ends:\n%s", text[len(text)-300:])
	}
	got, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Errorf("round trip: %+v\nwant %+v", got, d)
	}
	// The image line may come first too.
	i := strings.Index(text, "LAYOUT image")
	if got, err = Parse(strings.NewReader(text[i:] + text[:i])); err != nil || !reflect.DeepEqual(got, d) {
		t.Errorf("image line first: %v", err)
	}
	// WriteTo refuses what Parse would.
	bad := *d
	bad.StartInfo = bad.StartInfo[:100]
	if _, err := bad.WriteTo(io.Discard); err == nil {
		t.Error("short start_info written")
	}
	bad = *d
	bad.Tables = append([]Table{d.Tables[0]}, d.Tables...)
	if _, err := bad.WriteTo(io.Discard); err == nil {
		t.Error("duplicate table written")
	}
}

// fnv1a64 is FNV-1a 64 from its definition, to check HashTable against.
func fnv1a64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func TestHashTable(t *testing.T) {
	m2p := func(mfn uint64) uint64 { return mfn - 0x10000 }
	for _, c := range []struct{ e, want uint64 }{
		{0, 0},
		{0x10123066, 0},                           // not present
		{0x10123067, 0x123007},                    // A and D cleared
		{0x8000000010123021, 0x8000000000123001},  // NX kept
		{0x7ff0000010123fff, 0x123f9f},            // bits 52–62 dropped
		{0x10000001 | 0xabc<<12, 0xabc<<12 | 0x1}, // frame translated
		{0xfff0000000000001 | 0x10000<<12, 0x8000000000000001}, // mfn 0x10000 is pfn 0
	} {
		if got := NormalizeEntry(c.e, m2p); got != c.want {
			t.Errorf("NormalizeEntry(%#x) = %#x, want %#x", c.e, got, c.want)
		}
	}
	entries := make([]uint64, 512)
	entries[0] = 0x10123067
	entries[511] = 0x10456023
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint64(b[0:], 0x123007)
	binary.LittleEndian.PutUint64(b[511*8:], 0x456003)
	if got, want := HashTable(entries, m2p), fnv1a64(b); got != want {
		t.Errorf("HashTable = %#x, want %#x", got, want)
	}
}

// TestHashIndependentOfMFNs: the tables a toolstack builds with real
// machine frames, with Accessed/Dirty set by the CPU since, hash as the
// plan's tables built with PFNs.
func TestHashIndependentOfMFNs(t *testing.T) {
	p2m := func(pfn uint64) uint64 { return 3*pfn + 0x10000 }
	m2p := func(mfn uint64) uint64 { return (mfn - 0x10000) / 3 }
	for _, img := range []layout.Image{gopvgrub, linux} {
		l, d := planDump(t, img, domain(512, 40<<20))
		byPFN := map[uint64]Table{}
		for _, tb := range d.Tables {
			byPFN[tb.PFN] = tb
		}
		for i, tp := range l.TablePages() {
			e, err := l.PageTable(i, p2m)
			if err != nil {
				t.Fatal(err)
			}
			for j := range e {
				if e[j]&1 != 0 && j%2 == 0 {
					e[j] |= 0x60
				}
			}
			if h := HashTable(XenView(tp.Level, e), m2p); h != byPFN[tp.PFN].Hash {
				t.Fatalf("table pfn %#x: hash %#x with MFNs, %#x with PFNs", tp.PFN, h, byPFN[tp.PFN].Hash)
			}
		}
	}
}

// TestXenView: what Xen changes in a validated table, and nothing else.
func TestXenView(t *testing.T) {
	in := make([]uint64, 512)
	for i := range in {
		in[i] = uint64(i)<<12 | 0x23
	}
	in[3] = 0x5000 | 0x22 // not present: left alone
	for _, c := range []struct {
		level int
		want  func(i int, e uint64) uint64
	}{
		{1, func(i int, e uint64) uint64 {
			if e&1 == 0 {
				return e
			}
			return e | 4
		}},
		{2, func(_ int, e uint64) uint64 { return e }},
		{4, func(i int, e uint64) uint64 {
			if i >= 256 && i <= 271 {
				return 0
			}
			return e
		}},
	} {
		out := XenView(c.level, in)
		for i := range in {
			if w := c.want(i, in[i]); out[i] != w {
				t.Fatalf("L%d entry %d: %#x, want %#x", c.level, i, out[i], w)
			}
		}
	}
	if in[0] != 0x23 {
		t.Fatal("XenView changed its input")
	}
}

func TestModLenRuleFor(t *testing.T) {
	for _, c := range []struct {
		v     Version
		patch int
		want  ModLenRule
	}{
		{Version{4, 17}, 0, ModLenPages},
		{Version{4, 17}, 4, ModLenPages},
		{Version{4, 17}, 5, ModLenExact},
		{Version{4, 17}, 7, ModLenExact},
		{Version{4, 17}, -1, ModLenExact},
		{Version{4, 19}, 0, ModLenExact},
	} {
		if got := ModLenRuleFor(c.v, c.patch); got != c.want {
			t.Errorf("%v.%d: %v, want %v", c.v, c.patch, got, c.want)
		}
	}
}

// TestSIFieldsCover: the named fields and padding tile start_info.
func TestSIFieldsCover(t *testing.T) {
	at := 0
	for _, f := range siFields {
		if f.off != at || f.size <= 0 {
			t.Fatalf("%s at %d+%d, want offset %d", f.name, f.off, f.size, at)
		}
		at += f.size
	}
	if at != xen.StartInfoSize {
		t.Errorf("fields end at %d", at)
	}
	if !bytes.Equal([]byte(siFields[len(siFields)-1].name), []byte("nr_p2m_frames")) {
		t.Error("last field")
	}
}
