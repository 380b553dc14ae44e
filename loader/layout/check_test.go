package layout

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
)

// testP2M is a pfn→mfn mapping that is not the identity, so a table entry
// that used a PFN where an MFN belongs is caught.
func testP2M(pfn uint64) uint64 { return 3*pfn + 0x10000 }

func testM2P(mfn uint64) (uint64, bool) {
	if mfn < 0x10000 || (mfn-0x10000)%3 != 0 {
		return 0, false
	}
	return (mfn - 0x10000) / 3, true
}

// checkTables builds every page table of l with testP2M and walks them:
// every page of [VIRT_BASE, virt_pgtab_end) and of the INIT_P2M list must
// translate to its PFN's MFN, with L1 flags 0x23 (0x21 for page-table
// pages) and 0x67 above; nothing else may be mapped; each table is
// referenced exactly once. It also checks the padding rules: the mapping
// ends on a 4 MiB boundary, at least 512 KiB past the boot stack.
func checkTables(t *testing.T, l *Layout) {
	t.Helper()
	pages := l.TablePages()
	tables := map[uint64][]uint64{}
	levelOf := map[uint64]int{}
	for i, tp := range pages {
		e, err := l.PageTable(i, testP2M)
		if err != nil {
			t.Fatal(err)
		}
		if len(e) != 512 {
			t.Fatalf("table %d has %d entries", i, len(e))
		}
		tables[tp.PFN] = e
		levelOf[tp.PFN] = tp.Level
	}
	if _, err := l.PageTable(len(pages), testP2M); err == nil {
		t.Error("PageTable past the last table: no error")
	}
	// Table pages, computed from the segments rather than IsTablePFN.
	isTable := func(pfn uint64) bool {
		if pfn >= l.PageTables.PFN && pfn < l.PageTables.PFN+l.NrPTFrames {
			return true
		}
		first := l.P2M.PFN + l.P2M.Pages - l.P2MTablePages
		return l.P2MTablePages > 0 && pfn >= first && pfn < l.P2M.PFN+l.P2M.Pages
	}
	if uint64(len(pages)) != l.NrPTFrames+l.P2MTablePages {
		t.Fatalf("%d table pages, want %d + %d", len(pages), l.NrPTFrames, l.P2MTablePages)
	}
	for _, tp := range pages {
		if !isTable(tp.PFN) {
			t.Fatalf("table pfn %#x outside the table segments", tp.PFN)
		}
	}
	if pages[0].PFN != l.PageTables.PFN || pages[0].Level != 4 {
		t.Fatalf("first table is %+v, want the L4 at pt_base", pages[0])
	}

	// Walk every present entry from the L4 down; record what each L1
	// entry maps.
	refs := map[uint64]int{}
	mapped := map[uint64]uint64{} // VA (48-bit) → pfn
	var walk func(pfn uint64, level int, base uint64)
	walk = func(pfn uint64, level int, base uint64) {
		span := uint64(1) << (12 + 9*(level-1))
		for i, e := range tables[pfn] {
			if e == 0 {
				continue
			}
			va := base + uint64(i)*span
			child, ok := testM2P(e >> 12)
			if !ok {
				t.Fatalf("L%d entry %d of pfn %#x: mfn %#x is not in the p2m", level, i, pfn, e>>12)
			}
			flags := e & 0xfff
			if level > 1 {
				if flags != ProtUpper {
					t.Fatalf("L%d entry flags %#x, want 0x67", level, flags)
				}
				if levelOf[child] != level-1 {
					t.Fatalf("L%d entry points at pfn %#x (level %d)", level, child, levelOf[child])
				}
				refs[child]++
				walk(child, level-1, va)
				continue
			}
			want := uint64(ProtL1)
			if isTable(child) {
				want = ProtL1RO
			}
			if flags != want {
				t.Fatalf("L1 entry for va %#x (pfn %#x): flags %#x, want %#x", va, child, flags, want)
			}
			mapped[va] = child
		}
	}
	walk(l.PageTables.PFN, 4, 0)
	for _, tp := range pages[1:] {
		if refs[tp.PFN] != 1 {
			t.Errorf("table pfn %#x (L%d) referenced %d times", tp.PFN, tp.Level, refs[tp.PFN])
		}
	}

	// Exactly the boot region and the INIT_P2M list are mapped.
	vb := l.Image.VirtBase
	want := map[uint64]uint64{}
	for va := vb; va < l.VirtPgtabEnd; va += PageSize {
		want[va&vaddrMask] = (va - vb) / PageSize
	}
	if len(l.Mappings) > 1 {
		for i := uint64(0); i < l.P2M.Pages-l.P2MTablePages; i++ {
			want[(l.MFNList+i*PageSize)&vaddrMask] = l.P2M.PFN + i
		}
	}
	if len(mapped) != len(want) {
		t.Errorf("%d pages mapped, want %d", len(mapped), len(want))
	}
	for va, pfn := range want {
		if got, ok := mapped[va]; !ok || got != pfn {
			t.Fatalf("va %#x maps pfn %#x (present %v), want %#x", va, got, ok, pfn)
		}
	}

	// Padding rules (xen.h "start-of-day memory layout").
	if l.VirtPgtabEnd%(4*mib) != 0 {
		t.Errorf("virt_pgtab_end %#x not 4 MiB aligned", l.VirtPgtabEnd)
	}
	if l.BootStackPFN != l.PageTables.PFN+l.NrPTFrames {
		t.Errorf("boot stack at %#x, tables end at %#x", l.BootStackPFN, l.PageTables.PFN+l.NrPTFrames)
	}
	if l.VirtPgtabEnd-l.VirtAllocEnd < 512*1024 {
		t.Errorf("only %#x bytes after the boot stack", l.VirtPgtabEnd-l.VirtAllocEnd)
	}
	if l.VirtAllocEnd != vb+(l.BootStackPFN+1)*PageSize {
		t.Errorf("virt_alloc_end %#x", l.VirtAllocEnd)
	}
	if l.PFNAllocEnd > l.Options.NrPages {
		t.Errorf("pfn_alloc_end %#x beyond %#x pages", l.PFNAllocEnd, l.Options.NrPages)
	}
}

// TestStartInfoLayout checks StartInfo against start_info_t as gcc lays
// it out from the Xen headers (libxen-dev's /usr/include/xen/xen.h).
func TestStartInfoLayout(t *testing.T) {
	testassets.NeedTools(t, "gcc")
	if _, err := os.Stat("/usr/include/xen/xen.h"); err != nil {
		testassets.Missing(t, "/usr/include/xen/xen.h (libxen-dev)")
	}
	dir := t.TempDir()
	src := `#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#define F(f) printf(#f " %zu\n", offsetof(start_info_t, f))
int main(void) {
	F(magic); F(nr_pages); F(shared_info); F(flags); F(store_mfn); F(store_evtchn);
	F(console.domU.mfn); F(console.domU.evtchn); F(pt_base); F(nr_pt_frames);
	F(mfn_list); F(mod_start); F(mod_len); F(cmd_line); F(first_p2m_pfn); F(nr_p2m_frames);
	printf("size %zu\n", sizeof(start_info_t));
	return 0;
}
`
	if err := os.WriteFile(filepath.Join(dir, "si.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "si")
	if out, err := exec.Command("gcc", "-D__XEN_INTERFACE_VERSION__=0x00040e00", "-o", bin, filepath.Join(dir, "si.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	off := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		n, _ := strconv.Atoi(f[1])
		off[f[0]] = n
	}
	if off["size"] != StartInfoSize {
		t.Errorf("sizeof(start_info_t) = %d, we use %d", off["size"], StartInfoSize)
	}

	l, err := Plan(linux, Options{
		NrPages: 512 << 8, InitrdSize: 40 * mib, Cmdline: "root=/dev/xvda1 " + strings.Repeat("x", 2000),
		StoreMFN: 0x1234567, StoreEvtchn: 1, ConsoleMFN: 0x89abcde, ConsoleEvtchn: 2, SharedInfoMA: 0xfeed000,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := l.StartInfo()
	if len(p) != PageSize {
		t.Fatalf("start_info page of %d bytes", len(p))
	}
	le := binary.LittleEndian
	u64 := func(f string) uint64 { return le.Uint64(p[off[f]:]) }
	u32 := func(f string) uint64 { return uint64(le.Uint32(p[off[f]:])) }
	for _, c := range []struct {
		field     string
		got, want uint64
	}{
		{"nr_pages", u64("nr_pages"), 512 << 8},
		{"shared_info", u64("shared_info"), 0xfeed000},
		{"flags", u32("flags"), 8},
		{"store_mfn", u64("store_mfn"), 0x1234567},
		{"store_evtchn", u32("store_evtchn"), 1},
		{"console mfn", u64("console.domU.mfn"), 0x89abcde},
		{"console evtchn", u32("console.domU.evtchn"), 2},
		{"pt_base", u64("pt_base"), 0xffffffff84a03000},
		{"nr_pt_frames", u64("nr_pt_frames"), 41},
		{"mfn_list", u64("mfn_list"), 0x8000000000},
		{"mod_start", u64("mod_start"), 0x4c00},
		{"mod_len", u64("mod_len"), 40 * mib},
		{"first_p2m_pfn", u64("first_p2m_pfn"), l.P2M.PFN},
		{"nr_p2m_frames", u64("nr_p2m_frames"), l.P2M.Pages},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.field, c.got, c.want)
		}
	}
	if got := string(p[off["magic"] : off["magic"]+15]); got != "xen-3.0-x86_64\x00" {
		t.Errorf("magic %q", got)
	}
	cmd := p[off["cmd_line"] : off["cmd_line"]+1024]
	if string(cmd[:16]) != "root=/dev/xvda1 " || cmd[1022] != 'x' || cmd[1023] != 0 {
		t.Errorf("cmd_line not truncated to 1023 bytes: % x", cmd[1018:])
	}
	for _, b := range p[StartInfoSize:] {
		if b != 0 {
			t.Fatal("bytes after start_info_t are not zero")
		}
	}
}
