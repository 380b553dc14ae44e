// Package layout computes, as a pure function, the memory a Xen PV x86_64
// kernel finds at its entry point when it is booted directly by Xen's
// toolstack: which pseudo-physical frames (PFNs) and virtual addresses the
// kernel, initrd, P2M list, start_info, xenstore and console pages, page
// tables and boot stack occupy, what the initial page tables contain, and
// the start_info page. A chainloader that reproduces this exactly boots a
// kernel into the same state `xl create` would.
//
// It is our own rendering of libxenguest's x86 PV domain builder
// (tools/libs/guest/xg_dom_core.c xc_dom_build_image and xg_dom_x86.c
// alloc_pgtables_pv, count_pgtables, setup_pgtables_pv, alloc_p2m_list_x86_64,
// alloc_magic_pages_pv, start_info_x86_64, vcpu_x86_64), read at Xen 4.17.7
// and at master; comments name the function each rule comes from. Machine
// frames are not assigned here: page-table contents are a function of a
// pfn→mfn mapping the executor supplies.
//
// Differences between Xen versions that matter to a caller: Xen ≤ 4.18
// decompressed a gzip-compressed initrd before loading it (mod_len is then
// the gzip ISIZE + 16) — pass that size as InitrdSize to mirror it; Xen ≥
// 4.19 (and we) load the initrd verbatim. Xen 4.17.0–4.17.4 reported a mapped
// initrd's mod_len rounded up to whole pages; 4.17.5+ report the exact size.
package layout

import (
	"errors"
	"fmt"
)

// Page geometry of x86_64.
const (
	PageSize  = 4096
	pageShift = 12
	// The builder masks virtual addresses to 48 bits
	// (xg_dom_x86.c VIRT_BITS_X86_64) before computing table indices.
	vaddrMask = 1<<48 - 1
	levels    = 4
	// Entries per table page.
	tableEntries = 512
)

// Entry flags (xg_dom_x86.c alloc_pgtables_x86_64 lvl_prot): L1 entries
// are PRESENT|RW|ACCESSED, without RW for page-table pages; L2–L4 entries
// PRESENT|RW|USER|ACCESSED|DIRTY.
const (
	ProtL1      = 0x23
	ProtL1RO    = 0x21
	ProtUpper   = 0x67
	pteRW       = 0x2
	sifModStart = 8 // SIF_MOD_START_PFN
)

// Unset marks an absent address, as libelf's UNSET_ADDR.
const Unset = ^uint64(0)

// Image is what the layout needs to know about the kernel: its Xen
// parameters after libelf's checks.
type Image struct {
	VirtBase      uint64 // VIRT_BASE
	KStart, KEnd  uint64 // virtual range the loaded image occupies
	Entry         uint64
	HypercallPage uint64 // HYPERCALL_PAGE, or Unset
	InitP2M       uint64 // INIT_P2M, or Unset
	ModStartPFN   bool   // MOD_START_PFN: the initrd may stay unmapped
}

// Options describe the domain and what the executor hands to the kernel.
type Options struct {
	NrPages    uint64 // the domain's memory in pages (start_info.nr_pages)
	InitrdSize uint64 // initrd bytes, 0 for none
	Cmdline    string // at most 1023 bytes are passed
	// The live xenstore and console rings and their event channels: the
	// executor maps these MFNs at the layout's StorePFN and ConsolePFN.
	StoreMFN, ConsoleMFN       uint64
	StoreEvtchn, ConsoleEvtchn uint32
	SharedInfoMA               uint64 // machine address of shared_info
	Flags                      uint32 // SIF_* flags to pass besides SIF_MOD_START_PFN
}

// ErrNoMemory: the domain is too small for the boot layout.
var ErrNoMemory = errors.New("not enough memory")

// ErrBadImage: the image parameters are unusable (unaligned kernel start,
// hypercall page outside the kernel).
var ErrBadImage = errors.New("bad image parameters")

// Segment is a run of pages: PFN and Pages, mapped at [VStart, VEnd) (VEnd
// is VStart + the byte size, not page-rounded).
type Segment struct {
	PFN, Pages   uint64
	VStart, VEnd uint64
}

// Level is the page tables of one level of one mapping: the virtual range
// [From, To] (inclusive) they cover, and Tables pages from PFN on
// (count_pgtables' xc_dom_x86_mapping_lvl).
type Level struct {
	From, To uint64
	PFN      uint64
	Tables   uint64
}

// Mapping is one region the initial page tables map: Area [From, To] from
// PFN Area.PFN on, and its tables per level (0 = L1 … 3 = L4). Mapping 0
// is the boot region from VIRT_BASE; mapping 1, if present, the INIT_P2M
// list, which has its own L1–L3 tables but shares the L4.
type Mapping struct {
	Area   Level
	Levels [levels]Level
}

// Layout is the complete start-of-day plan.
type Layout struct {
	Image   Image
	Options Options

	KernelPadPages uint64 // pages between VIRT_BASE and the kernel
	Kernel         Segment
	Initrd         Segment // Pages 0 if none
	InitrdMapped   bool    // inside the initial mapping (else MOD_START_PFN)
	P2M            Segment // the P2M list; with INIT_P2M also its tables
	P2MTablePages  uint64  // of P2M.Pages, the INIT_P2M page tables
	StartInfoPFN   uint64
	StorePFN       uint64
	ConsolePFN     uint64
	PageTables     Segment // the boot region's tables: L4, L3s, L2s, L1s
	BootStackPFN   uint64
	VirtAllocEnd   uint64 // allocation cursor after the boot stack
	VirtPgtabEnd   uint64 // end of the initial mapping (4 MiB aligned)
	PFNAllocEnd    uint64 // first PFN not allocated by the builder
	Mappings       []Mapping
	HypercallPFN   uint64 // PFN of HYPERCALL_PAGE, or Unset

	// start_info fields that are addresses in the new layout.
	ModStart, ModLen uint64
	MFNList          uint64
	PTBase           uint64
	NrPTFrames       uint64
	FirstP2MPFN      uint64
	NrP2MFrames      uint64
	Flags            uint32
}

// builder is the allocation state of xc_dom_image.
type builder struct {
	total        uint64 // total_pages (= p2m_size, no vNUMA)
	virtAllocEnd uint64
	pfnAllocEnd  uint64
	maps         []Mapping
}

type noMemError struct{ msg string }

func (e *noMemError) Error() string { return e.msg }

// allocPages is xc_dom_chk_alloc_pages.
func (b *builder) allocPages(name string, pages uint64) (uint64, error) {
	if pages > b.total || b.pfnAllocEnd > b.total || pages > b.total-b.pfnAllocEnd {
		return 0, &noMemError{fmt.Sprintf("%s: %#x pages, %#x of %#x free", name, pages, b.total-min(b.pfnAllocEnd, b.total), b.total)}
	}
	pfn := b.pfnAllocEnd
	b.pfnAllocEnd += pages
	b.virtAllocEnd += pages * PageSize
	return pfn, nil
}

// pad is xc_dom_alloc_pad: allocate up to boundary.
func (b *builder) pad(name string, boundary uint64) (uint64, error) {
	if boundary%PageSize != 0 {
		return 0, fmt.Errorf("%w: %s boundary %#x is not page aligned", ErrBadImage, name, boundary)
	}
	if boundary < b.virtAllocEnd {
		return 0, fmt.Errorf("%w: %s boundary %#x below %#x", ErrBadImage, name, boundary, b.virtAllocEnd)
	}
	pages := (boundary - b.virtAllocEnd) / PageSize
	_, err := b.allocPages(name+" padding", pages)
	return pages, err
}

// segment is xc_dom_alloc_segment: pad to start (if non-zero), then
// allocate size bytes of pages.
func (b *builder) segment(name string, start, size uint64) (Segment, error) {
	if start != 0 {
		if _, err := b.pad(name, start); err != nil {
			return Segment{}, err
		}
	}
	if size > b.total*PageSize {
		return Segment{}, &noMemError{fmt.Sprintf("%s: %#x bytes", name, size)}
	}
	pages := (size + PageSize - 1) / PageSize
	vstart := b.virtAllocEnd
	pfn, err := b.allocPages(name, pages)
	if err != nil {
		return Segment{}, err
	}
	return Segment{PFN: pfn, Pages: pages, VStart: vstart, VEnd: vstart + size}, nil
}

// countPgtables is count_pgtables: the tables mapping [from, to] needs,
// given the mappings already made; pfn is the PFN mapped at from.
func (b *builder) countPgtables(from, to, pfn uint64) (Mapping, error) {
	var m Mapping
	if len(b.maps) == 2 {
		return m, fmt.Errorf("too many mappings")
	}
	if to < from {
		return m, fmt.Errorf("%w: mapping [%#x, %#x] wraps", ErrBadImage, from, to)
	}
	if pfnEnd := pfn + (to-from)>>pageShift; pfnEnd >= b.total {
		return m, &noMemError{fmt.Sprintf("initial mapping needs pfn %#x, domain has %#x pages", pfnEnd, b.total)}
	}
	for _, c := range b.maps {
		if from < c.Area.To && to > c.Area.From {
			return m, fmt.Errorf("%w: overlapping mappings", ErrBadImage)
		}
	}
	m.Area.From, m.Area.To = from&vaddrMask, to&vaddrMask
	for l := levels - 1; l >= 0; l-- {
		lv := &m.Levels[l]
		lv.PFN = b.pfnAllocEnd + m.Area.Tables
		if l == levels-1 {
			// One L4, in the first mapping only.
			if len(b.maps) == 0 {
				lv.From, lv.To, lv.Tables = 0, vaddrMask, 1
				m.Area.Tables++
			}
			continue
		}
		// A level-l table covers 2^(12+9(l+1)) bytes.
		bits := uint(pageShift + (l+1)*9)
		mask := uint64(1)<<bits - 1
		lv.From, lv.To = m.Area.From&^mask, m.Area.To|mask
		// Tables an earlier mapping already has at this level are shared.
		for _, c := range b.maps {
			cl := c.Levels[l]
			if cl.From == cl.To {
				continue
			}
			if lv.From >= cl.From && lv.To <= cl.To {
				lv.From, lv.To = 0, 0
				break
			}
			if lv.From >= cl.From && lv.From <= cl.To {
				lv.From = cl.To + 1
			}
			if lv.To >= cl.From && lv.To <= cl.To {
				lv.To = cl.From - 1
			}
		}
		if lv.From < lv.To {
			lv.Tables = (lv.To-lv.From)>>bits + 1
		}
		m.Area.Tables += lv.Tables
	}
	return m, nil
}

// Plan computes the layout libxenguest builds for img in a domain
// described by opts.
func Plan(img Image, opts Options) (*Layout, error) {
	l, err := plan(img, opts)
	var nm *noMemError
	if errors.As(err, &nm) {
		return nil, memoryError(img, opts, nm)
	}
	return l, err
}

func plan(img Image, opts Options) (*Layout, error) {
	if img.KEnd < img.KStart || img.VirtBase > img.KStart {
		return nil, fmt.Errorf("%w: kernel [%#x, %#x) with VIRT_BASE %#x", ErrBadImage, img.KStart, img.KEnd, img.VirtBase)
	}
	// libxenguest does not check this, but an unaligned VIRT_BASE shifts
	// every address off its page and the kernel cannot boot.
	if img.VirtBase%PageSize != 0 {
		return nil, fmt.Errorf("%w: VIRT_BASE %#x is not page aligned", ErrBadImage, img.VirtBase)
	}
	if opts.NrPages == 0 || opts.NrPages > 1<<40 {
		return nil, &noMemError{fmt.Sprintf("domain of %#x pages", opts.NrPages)}
	}
	b := &builder{total: opts.NrPages, virtAllocEnd: img.VirtBase}
	l := &Layout{Image: img, Options: opts, HypercallPFN: Unset}
	var err error

	// xc_dom_build_image: the kernel, padded from VIRT_BASE to its start.
	padFrom := b.virtAllocEnd
	if l.Kernel, err = b.segment("kernel", img.KStart, img.KEnd-img.KStart); err != nil {
		return nil, err
	}
	l.KernelPadPages = (img.KStart - padFrom) / PageSize
	if img.KStart == 0 {
		l.KernelPadPages = 0
	}
	if img.HypercallPage != Unset {
		if img.HypercallPage < img.KStart || img.HypercallPage >= img.KEnd {
			return nil, fmt.Errorf("%w: HYPERCALL_PAGE %#x outside the kernel [%#x, %#x)", ErrBadImage, img.HypercallPage, img.KStart, img.KEnd)
		}
		l.HypercallPFN = (img.HypercallPage - img.VirtBase) >> pageShift
	}

	// The initrd inside the initial mapping, unless the kernel takes it
	// by PFN.
	if opts.InitrdSize > 0 && !img.ModStartPFN {
		if l.Initrd, err = b.segment("initrd", 0, opts.InitrdSize); err != nil {
			return nil, err
		}
		l.InitrdMapped = true
		l.ModStart = l.Initrd.VStart
		l.ModLen = l.Initrd.VEnd - l.Initrd.VStart
	}

	// INIT_P2M is honoured only below VIRT_BASE and page aligned.
	p2mBase := img.InitP2M
	if p2mBase >= img.VirtBase || p2mBase%PageSize != 0 {
		p2mBase = Unset
	}
	// alloc_p2m_list_x86_64: 8 bytes per page, whole pages.
	p2mBytes := (opts.NrPages*8 + PageSize - 1) &^ (PageSize - 1)
	if p2mBase == Unset {
		if l.P2M, err = b.segment("phys2mach", 0, p2mBytes); err != nil {
			return nil, err
		}
		l.MFNList = l.P2M.VStart
	}

	// alloc_magic_pages_pv, in this order.
	if l.StartInfoPFN, err = b.allocPages("start info", 1); err != nil {
		return nil, err
	}
	if l.StorePFN, err = b.allocPages("xenstore", 1); err != nil {
		return nil, err
	}
	if l.ConsolePFN, err = b.allocPages("console", 1); err != nil {
		return nil, err
	}

	// alloc_pgtables_pv: find the smallest 4 MiB-aligned end of the
	// initial mapping that leaves room for its own page tables, the boot
	// stack and 512 KiB of padding, which Linux uses for early
	// allocations.
	const extra = 1 + 512*1024/PageSize
	var m0 Mapping
	var tryEnd uint64
	for pages := uint64(extra); ; {
		// round_up(addr, mask) in xg_dom_x86.c is addr|mask: an end
		// that is already aligned moves up by 4 MiB.
		tryEnd = (b.virtAllocEnd + pages*PageSize) | (1<<22 - 1)
		if tryEnd < b.virtAllocEnd {
			return nil, fmt.Errorf("%w: initial mapping wraps the address space", ErrBadImage)
		}
		if m0, err = b.countPgtables(img.VirtBase, tryEnd, 0); err != nil {
			return nil, err
		}
		pages = m0.Area.Tables + extra
		if b.virtAllocEnd+pages*PageSize <= tryEnd+1 {
			break
		}
	}
	m0.Area.PFN = 0
	b.maps = append(b.maps, m0)
	l.VirtPgtabEnd = tryEnd + 1
	if l.PageTables, err = b.segment("page tables", 0, m0.Area.Tables*PageSize); err != nil {
		return nil, err
	}
	l.PTBase = l.PageTables.VStart
	l.NrPTFrames = m0.Area.Tables

	if l.BootStackPFN, err = b.allocPages("boot stack", 1); err != nil {
		return nil, err
	}
	l.VirtAllocEnd = b.virtAllocEnd

	// Everything the initial tables map is the kernel's.
	if _, err = b.pad("initial mapping", l.VirtPgtabEnd); err != nil {
		return nil, err
	}

	if opts.InitrdSize > 0 && img.ModStartPFN {
		if l.Initrd, err = b.segment("initrd", 0, opts.InitrdSize); err != nil {
			return nil, err
		}
		l.Flags |= sifModStart
		l.ModStart = l.Initrd.PFN
		l.ModLen = l.Initrd.Pages * PageSize
	}

	if p2mBase != Unset {
		// The P2M at INIT_P2M with its own tables after it.
		m1, err := b.countPgtables(p2mBase, p2mBase+p2mBytes-1, b.pfnAllocEnd)
		if err != nil {
			return nil, err
		}
		m1.Area.PFN = b.pfnAllocEnd
		for i := range m1.Levels {
			m1.Levels[i].PFN += p2mBytes >> pageShift
		}
		b.maps = append(b.maps, m1)
		if l.P2M, err = b.segment("phys2mach", 0, p2mBytes+m1.Area.Tables*PageSize); err != nil {
			return nil, err
		}
		l.P2MTablePages = m1.Area.Tables
		l.MFNList = p2mBase
		l.FirstP2MPFN = l.P2M.PFN
		l.NrP2MFrames = l.P2M.Pages
	}
	l.Mappings = b.maps
	l.PFNAllocEnd = b.pfnAllocEnd
	l.Flags |= opts.Flags
	return l, nil
}

// memoryError reports how much memory the layout would need: the
// smallest domain for which Plan succeeds, found by bisection (more pages
// never hurt: the P2M grows by one page per 512).
func memoryError(img Image, opts Options, cause *noMemError) error {
	lo, hi := opts.NrPages, uint64(1)<<40
	if _, err := plan(img, withPages(opts, hi)); err != nil {
		return fmt.Errorf("%w: %s", ErrNoMemory, cause.msg)
	}
	for lo+1 < hi {
		mid := lo + (hi-lo)/2
		if _, err := plan(img, withPages(opts, mid)); err != nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	mib := func(bytes uint64) uint64 { return (bytes + 1<<20 - 1) >> 20 }
	kernel := mib(img.KEnd - img.KStart)
	msg := fmt.Sprintf("kernel %d MiB", kernel)
	if opts.InitrdSize > 0 {
		msg += fmt.Sprintf(" + initrd %d MiB", mib(opts.InitrdSize))
	}
	return fmt.Errorf("%w: %s + page tables and boot data need %d MiB; domain has %d MiB",
		ErrNoMemory, msg, mib(hi*PageSize), opts.NrPages*PageSize>>20)
}

func withPages(o Options, n uint64) Options { o.NrPages = n; return o }
