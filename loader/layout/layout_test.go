package layout

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden summaries in testdata/loader/layout")

const mib = 1 << 20

// The kernels of the tests. linux is Debian 12's 6.1 vmlinux as libelf
// sees it (VIRT_BASE 0xffffffff80000000, p_paddr 0x1000000–0x4a00000,
// INIT_P2M at 512 GiB, MOD_START_PFN, no HYPERCALL_PAGE); gopvgrub is an
// 8 MiB Go image linked at 0x400000 with VIRT_BASE = PADDR_OFFSET.
var (
	linux = Image{
		VirtBase: 0xffffffff80000000, KStart: 0xffffffff81000000, KEnd: 0xffffffff84a00000,
		Entry: 0xffffffff830791c0, HypercallPage: Unset, InitP2M: 0x8000000000, ModStartPFN: true,
	}
	gopvgrub = Image{
		VirtBase: 0x400000, KStart: 0x400000, KEnd: 0xc00000,
		Entry: 0x401000, HypercallPage: 0x500000, InitP2M: Unset,
	}
)

// A mapped initrd of 16 MiB + 123 bytes: 0x1001 pages, mod_len exact.
const initrd16 = 16*mib + 123

// Each expectation below is worked out by hand from xc_dom_build_image
// and alloc_pgtables_pv (the derivations are in the comments), not taken
// from Plan's output.
type want struct {
	kernelPFN, kernelPages   uint64
	initrdPFN, initrdPages   uint64
	modStart, modLen         uint64
	mfnList, p2mPFN, p2mPgs  uint64
	startInfo, store, cons   uint64
	ptPFN, nrPT, l1PFN, nrL1 uint64
	bootstack                uint64
	virtAllocEnd, pgtabEnd   uint64
	pfnAllocEnd              uint64
	firstP2M, nrP2M          uint64
	p2mL3, p2mL1Tables       uint64
	flags                    uint32
	rsp, rsi                 uint64
}

func TestPlanGolden(t *testing.T) {
	tests := []struct {
		name   string
		img    Image
		mb     uint64
		initrd uint64
		w      want
	}{
		// Linux, 128 MiB, 40 MiB initrd. Padding VIRT_BASE→kstart is
		// 0x1000 pages, the kernel 0x3a00000 bytes = 0x3a00 pages, so
		// start_info/xenstore/console are 0x4a00–0x4a02 (initrd and P2M
		// come later: MOD_START_PFN, INIT_P2M). Tables: cursor 0x4a03
		// pages past VIRT_BASE, +129 pages → end 0xffffffff84bfffff;
		// 1 L4, 1 L3, 1 L2, L1s for 0x...80000000–0x...84bfffff = 38:
		// 41 tables at 0x4a03, L1s from 0x4a06, stack 0x4a2c, padding to
		// pfn 0x4c00. Initrd 0x2800 pages at 0x4c00 (mod_start a PFN,
		// mod_len whole pages). P2M 0x8000*8 bytes = 0x40 pages at
		// 0x7400 plus its L3, L2, L1: 0x43 frames.
		{"linux-128M-initrd", linux, 128, 40 * mib, want{
			kernelPFN: 0x1000, kernelPages: 0x3a00,
			initrdPFN: 0x4c00, initrdPages: 0x2800, modStart: 0x4c00, modLen: 0x2800000,
			mfnList: 0x8000000000, p2mPFN: 0x7400, p2mPgs: 0x43,
			startInfo: 0x4a00, store: 0x4a01, cons: 0x4a02,
			ptPFN: 0x4a03, nrPT: 41, l1PFN: 0x4a06, nrL1: 38, bootstack: 0x4a2c,
			virtAllocEnd: 0xffffffff84a2d000, pgtabEnd: 0xffffffff84c00000, pfnAllocEnd: 0x7443,
			firstP2M: 0x7400, nrP2M: 0x43, p2mL3: 0x7440, p2mL1Tables: 1, flags: 8,
			rsp: 0xffffffff84a2d000, rsi: 0xffffffff84a00000,
		}},
		// Linux, 512 MiB, no initrd: P2M 0x100 pages + 3 tables at 0x4c00.
		{"linux-512M", linux, 512, 0, want{
			kernelPFN: 0x1000, kernelPages: 0x3a00,
			mfnList: 0x8000000000, p2mPFN: 0x4c00, p2mPgs: 0x103,
			startInfo: 0x4a00, store: 0x4a01, cons: 0x4a02,
			ptPFN: 0x4a03, nrPT: 41, l1PFN: 0x4a06, nrL1: 38, bootstack: 0x4a2c,
			virtAllocEnd: 0xffffffff84a2d000, pgtabEnd: 0xffffffff84c00000, pfnAllocEnd: 0x4d03,
			firstP2M: 0x4c00, nrP2M: 0x103, p2mL3: 0x4d00, p2mL1Tables: 1,
			rsp: 0xffffffff84a2d000, rsi: 0xffffffff84a00000,
		}},
		// Linux, 2 GiB, 40 MiB initrd: the P2M is 4 MiB = 0x400 pages,
		// which takes two L1s: 0x404 frames at 0x7400.
		{"linux-2G-initrd", linux, 2048, 40 * mib, want{
			kernelPFN: 0x1000, kernelPages: 0x3a00,
			initrdPFN: 0x4c00, initrdPages: 0x2800, modStart: 0x4c00, modLen: 0x2800000,
			mfnList: 0x8000000000, p2mPFN: 0x7400, p2mPgs: 0x404,
			startInfo: 0x4a00, store: 0x4a01, cons: 0x4a02,
			ptPFN: 0x4a03, nrPT: 41, l1PFN: 0x4a06, nrL1: 38, bootstack: 0x4a2c,
			virtAllocEnd: 0xffffffff84a2d000, pgtabEnd: 0xffffffff84c00000, pfnAllocEnd: 0x7804,
			firstP2M: 0x7400, nrP2M: 0x404, p2mL3: 0x7800, p2mL1Tables: 2, flags: 8,
			rsp: 0xffffffff84a2d000, rsi: 0xffffffff84a00000,
		}},
		// gopvgrub, 64 MiB: kernel 0x800 pages at pfn 0; P2M 0x4000*8 =
		// 0x20 pages at 0x800 (VA 0xc00000); magic pages 0x820–0x822;
		// cursor 0xc23000 + 129 pages → end 0xffffff: L1s for
		// 0x400000–0xffffff = 6, 9 tables at 0x823, stack 0x82c, padding
		// to 0x1000000 = pfn 0xc00.
		{"gopvgrub-64M", gopvgrub, 64, 0, want{
			kernelPages: 0x800, mfnList: 0xc00000, p2mPFN: 0x800, p2mPgs: 0x20,
			startInfo: 0x820, store: 0x821, cons: 0x822,
			ptPFN: 0x823, nrPT: 9, l1PFN: 0x826, nrL1: 6, bootstack: 0x82c,
			virtAllocEnd: 0xc2d000, pgtabEnd: 0x1000000, pfnAllocEnd: 0xc00,
			rsp: 0xc2d000, rsi: 0xc20000,
		}},
		// gopvgrub, 64 MiB, mapped initrd of 0x1001 pages at 0x800 (VA
		// 0xc00000); P2M at 0x1801; magic 0x1821–0x1823; end 0x1ffffff,
		// 14 L1s, 17 tables at 0x1824, stack 0x1835.
		{"gopvgrub-64M-initrd", gopvgrub, 64, initrd16, want{
			kernelPages: 0x800, initrdPFN: 0x800, initrdPages: 0x1001, modStart: 0xc00000, modLen: initrd16,
			mfnList: 0x1c01000, p2mPFN: 0x1801, p2mPgs: 0x20,
			startInfo: 0x1821, store: 0x1822, cons: 0x1823,
			ptPFN: 0x1824, nrPT: 17, l1PFN: 0x1827, nrL1: 14, bootstack: 0x1835,
			virtAllocEnd: 0x1c36000, pgtabEnd: 0x2000000, pfnAllocEnd: 0x1c00,
			rsp: 0x1c36000, rsi: 0x1c21000,
		}},
		// gopvgrub, 128 MiB: P2M 0x40 pages.
		{"gopvgrub-128M", gopvgrub, 128, 0, want{
			kernelPages: 0x800, mfnList: 0xc00000, p2mPFN: 0x800, p2mPgs: 0x40,
			startInfo: 0x840, store: 0x841, cons: 0x842,
			ptPFN: 0x843, nrPT: 9, l1PFN: 0x846, nrL1: 6, bootstack: 0x84c,
			virtAllocEnd: 0xc4d000, pgtabEnd: 0x1000000, pfnAllocEnd: 0xc00,
			rsp: 0xc4d000, rsi: 0xc40000,
		}},
		// gopvgrub, 128 MiB, initrd: as at 64 MiB with a P2M of 0x40.
		{"gopvgrub-128M-initrd", gopvgrub, 128, initrd16, want{
			kernelPages: 0x800, initrdPFN: 0x800, initrdPages: 0x1001, modStart: 0xc00000, modLen: initrd16,
			mfnList: 0x1c01000, p2mPFN: 0x1801, p2mPgs: 0x40,
			startInfo: 0x1841, store: 0x1842, cons: 0x1843,
			ptPFN: 0x1844, nrPT: 17, l1PFN: 0x1847, nrL1: 14, bootstack: 0x1855,
			virtAllocEnd: 0x1c56000, pgtabEnd: 0x2000000, pfnAllocEnd: 0x1c00,
			rsp: 0x1c56000, rsi: 0x1c41000,
		}},
		// gopvgrub, 512 MiB: P2M 0x100 pages.
		{"gopvgrub-512M", gopvgrub, 512, 0, want{
			kernelPages: 0x800, mfnList: 0xc00000, p2mPFN: 0x800, p2mPgs: 0x100,
			startInfo: 0x900, store: 0x901, cons: 0x902,
			ptPFN: 0x903, nrPT: 9, l1PFN: 0x906, nrL1: 6, bootstack: 0x90c,
			virtAllocEnd: 0xd0d000, pgtabEnd: 0x1000000, pfnAllocEnd: 0xc00,
			rsp: 0xd0d000, rsi: 0xd00000,
		}},
		// gopvgrub, 2 GiB: P2M 0x400 pages to pfn 0xc00; magic
		// 0xc00–0xc02; end 0x13fffff: 8 L1s, 11 tables, stack 0xc0e.
		{"gopvgrub-2G", gopvgrub, 2048, 0, want{
			kernelPages: 0x800, mfnList: 0xc00000, p2mPFN: 0x800, p2mPgs: 0x400,
			startInfo: 0xc00, store: 0xc01, cons: 0xc02,
			ptPFN: 0xc03, nrPT: 11, l1PFN: 0xc06, nrL1: 8, bootstack: 0xc0e,
			virtAllocEnd: 0x100f000, pgtabEnd: 0x1400000, pfnAllocEnd: 0x1000,
			rsp: 0x100f000, rsi: 0x1000000,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Plan(tc.img, Options{NrPages: tc.mb << 8, InitrdSize: tc.initrd})
			if err != nil {
				t.Fatal(err)
			}
			w := tc.w
			var p2mL3, p2mL1 uint64
			if len(l.Mappings) > 1 {
				p2mL3, p2mL1 = l.Mappings[1].Levels[2].PFN, l.Mappings[1].Levels[0].Tables
			}
			e := l.Entry()
			got := want{
				l.Kernel.PFN, l.Kernel.Pages, l.Initrd.PFN, l.Initrd.Pages, l.ModStart, l.ModLen,
				l.MFNList, l.P2M.PFN, l.P2M.Pages, l.StartInfoPFN, l.StorePFN, l.ConsolePFN,
				l.PageTables.PFN, l.NrPTFrames, l.Mappings[0].Levels[0].PFN, l.Mappings[0].Levels[0].Tables,
				l.BootStackPFN, l.VirtAllocEnd, l.VirtPgtabEnd, l.PFNAllocEnd,
				l.FirstP2MPFN, l.NrP2MFrames, p2mL3, p2mL1, l.Flags, e.RSP, e.RSI,
			}
			if got != w {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
			if l.PTBase != tc.img.VirtBase+w.ptPFN*PageSize {
				t.Errorf("pt_base %#x", l.PTBase)
			}
			checkTables(t, l)
			golden(t, tc.name, l.Summary())
		})
	}
}

// golden compares a summary with testdata/loader/layout/<name>.summary
// (reviewed against the hand derivations above; -update rewrites them).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "loader", "layout", name+".summary")
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	wantB, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(wantB) {
		t.Errorf("summary differs from %s:\n%s", path, got)
	}
}

// TestFourMiBQuirk: libxenguest's round_up(x, 4M-1) is x|(4M-1), so an
// end that is already 4 MiB aligned grows by another 4 MiB. A 0x35c-page
// kernel at 64 MiB puts the cursor after the magic pages at
// 0x400000+(0x35c+0x23)*4K; +129 pages is exactly 0x800000, so the
// mapping ends at 0xc00000 with 4 L1s (7 tables).
func TestFourMiBQuirk(t *testing.T) {
	img := gopvgrub
	img.KEnd = 0x400000 + 0x35c*PageSize
	img.HypercallPage = Unset
	l, err := Plan(img, Options{NrPages: 64 << 8})
	if err != nil {
		t.Fatal(err)
	}
	if l.VirtPgtabEnd != 0xc00000 || l.NrPTFrames != 7 || l.Mappings[0].Levels[0].Tables != 4 {
		t.Errorf("virt_pgtab_end %#x, %d tables, %d L1", l.VirtPgtabEnd, l.NrPTFrames, l.Mappings[0].Levels[0].Tables)
	}
	checkTables(t, l)
}

func TestPlanErrors(t *testing.T) {
	unaligned := gopvgrub
	unaligned.KStart += 0x800
	unaligned.VirtBase = 0x400000
	hcOut := gopvgrub
	hcOut.HypercallPage = 0x2000000
	tests := []struct {
		name string
		img  Image
		opts Options
		is   error
		msg  string
	}{
		// Derivation: the mapping must reach pfn 0x4bff (end
		// 0xffffffff84bfffff), then the P2M of N pages needs ceil(N/512)
		// pages + 3 tables: N = 0x4c00 + 42 = 19498 pages = 77 MiB.
		{"linux 64M", linux, Options{NrPages: 64 << 8}, ErrNoMemory,
			"kernel 58 MiB + page tables and boot data need 77 MiB; domain has 64 MiB"},
		// With an initrd the wording names it too.
		{"linux 64M initrd", linux, Options{NrPages: 64 << 8, InitrdSize: 40 * mib}, ErrNoMemory,
			"kernel 58 MiB + initrd 40 MiB + page tables and boot data need"},
		{"gopvgrub 8M", gopvgrub, Options{NrPages: 8 << 8}, ErrNoMemory, "domain has 8 MiB"},
		{"no memory", gopvgrub, Options{}, ErrNoMemory, "domain has 0 MiB"},
		{"unaligned kernel", unaligned, Options{NrPages: 64 << 8}, ErrBadImage, "not page aligned"},
		{"hypercall page outside", hcOut, Options{NrPages: 64 << 8}, ErrBadImage, "HYPERCALL_PAGE"},
		{"unaligned virt base", Image{VirtBase: 98, KStart: 0x400000, KEnd: 0x500000, InitP2M: Unset, HypercallPage: Unset},
			Options{NrPages: 64 << 8}, ErrBadImage, "VIRT_BASE 0x62 is not page aligned"},
		{"kernel below virt base", Image{VirtBase: 0x800000, KStart: 0x400000, KEnd: 0x500000, InitP2M: Unset, HypercallPage: Unset},
			Options{NrPages: 64 << 8}, ErrBadImage, "VIRT_BASE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Plan(tc.img, tc.opts)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.is, tc.msg)
			}
		})
	}
	// One page less than the reported minimum fails, the minimum works.
	if _, err := Plan(linux, Options{NrPages: 19497}); err == nil {
		t.Error("19497 pages: no error")
	}
	if _, err := Plan(linux, Options{NrPages: 19498}); err != nil {
		t.Errorf("19498 pages: %v", err)
	}
}

// TestInitP2MIgnored: INIT_P2M at or above VIRT_BASE, or unaligned, is
// ignored and the P2M goes into the boot region (xc_dom_build_image).
func TestInitP2MIgnored(t *testing.T) {
	for _, p2m := range []uint64{0xffffffffc0000000, 0x8000000800} {
		img := linux
		img.InitP2M = p2m
		l, err := Plan(img, Options{NrPages: 512 << 8})
		if err != nil {
			t.Fatal(err)
		}
		// P2M right after the kernel: pfn 0x4a00, 0x100 pages.
		if len(l.Mappings) != 1 || l.MFNList != 0xffffffff84a00000 || l.P2M.PFN != 0x4a00 || l.FirstP2MPFN != 0 {
			t.Errorf("INIT_P2M %#x: mfn_list %#x p2m pfn %#x", p2m, l.MFNList, l.P2M.PFN)
		}
		checkTables(t, l)
	}
}
