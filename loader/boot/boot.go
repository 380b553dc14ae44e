// Package boot executes a boot layout (package loader/layout) inside the
// running domain: the chainload, or "kexec", of the next PV kernel
// (xen-pv-abi.md §6). It follows PV-GRUB's P2M-permutation strategy: the
// next kernel's memory is built in fresh frames the loader is not using,
// and those frames are then renamed, in the P2M list the kernel receives
// and in Xen's M2P, to the PFNs the layout gives them; the live console
// and xenstore rings are renamed to their new PFNs the same way. Nothing
// is copied at the last moment and the running loader is never
// overwritten.
//
// Everything here is pure Go against the Machine interface; the shim
// (package minios, through xen/pv) supplies the frames and performs the
// final switch, which needs kernel mode. Tests run it against a simulated
// machine that walks the page tables it produced.
package boot

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/gopvgrub/gopvgrub/loader"
	"github.com/gopvgrub/gopvgrub/loader/layout"
)

// Machine is the running domain, as the loader needs it.
type Machine interface {
	// P2M returns the current pfn→mfn table (nr_pages entries).
	P2M() ([]uint64, error)
	// Alloc returns n zeroed pages that nothing else uses, mapped
	// writable, and their machine frames.
	Alloc(n int) (mem []byte, mfns []uint64, err error)
	// Free gives back what Alloc returned, when Prepare fails after it.
	Free(mem []byte) error
	// Jump hands the domain over; it returns only when something failed
	// before the point of no return.
	Jump(j *Jump) error
}

// Domain is what the domain hands on to the next kernel: taken from the
// loader's own start_info.
type Domain struct {
	NrPages                    uint64
	StoreMFN, ConsoleMFN       uint64
	StoreEvtchn, ConsoleEvtchn uint32
	SharedInfoMA               uint64
	Flags                      uint32
}

// Jump is the prepared hand-over, in the new layout's numbering.
type Jump struct {
	P2M          []uint64 // new pfn → mfn, nr_pages entries
	Window       []byte   // the image, as Machine.Alloc returned it
	Tables       []uint64 // PFNs of every page-table page
	L4PFN        uint64
	BootStackPFN uint64
	BootStackVA  uint64
	Entry        layout.Entry
}

// ErrNoMemory: the next kernel's layout does not fit (the layout's own
// sentinel, so that either check matches).
var ErrNoMemory = layout.ErrNoMemory

// Kernel is the kernel as Prepare needs it: *loader.Kernel, which loads
// itself into the window (decompressing as it goes if it came from
// loader.ParseKernelStream).
type Kernel interface {
	// ImageSize is the size of the loaded image, KEnd - KStart.
	ImageSize() uint64
	LayoutImage() layout.Image
	// Load writes the image into dst, ImageSize bytes of fresh zeroed
	// pages.
	Load(dst []byte) error
}

// Initrd is the initrd as Prepare takes it: its size, which the layout
// needs first, and a function that writes exactly that many bytes into
// the window, so that the initrd is never held in memory a second time.
type Initrd struct {
	Size  uint64
	Write func(dst []byte) error // dst is Size bytes; nil if Size is 0
}

// InitrdBytes is an initrd already in memory (nil: none).
func InitrdBytes(b []byte) Initrd {
	return Initrd{Size: uint64(len(b)), Write: func(dst []byte) error {
		copy(dst, b)
		return nil
	}}
}

// InitrdPart is one file of an initrd made of several: Size bytes read
// from R, whose size the layout needed before it is read.
type InitrdPart struct {
	Name string
	Size uint64
	R    io.Reader
}

// InitrdParts is an initrd made of parts back to back, as GRUB loads
// several initrd files (Linux unpacks one archive after the other), read
// straight into the window. Each part must hold exactly Size bytes.
func InitrdParts(parts []InitrdPart) Initrd {
	var size uint64
	for _, p := range parts {
		size += p.Size
	}
	return Initrd{Size: size, Write: func(dst []byte) error {
		for _, p := range parts {
			part := dst[:p.Size]
			dst = dst[p.Size:]
			if n, err := io.ReadFull(p.R, part); err != nil {
				return fmt.Errorf("%s: %d of %d bytes: %w", p.Name, n, p.Size, err)
			}
			var one [1]byte
			if n, _ := p.R.Read(one[:]); n > 0 {
				return fmt.Errorf("%s: more than its size, %d bytes", p.Name, p.Size)
			}
		}
		return nil
	}}
}

// Prepared is a built image, ready for Machine.Jump.
type Prepared struct {
	Layout *layout.Layout
	Jump   *Jump
	// Pages is how many fresh pages the image took.
	Pages int
}

// Prepare lays out kernel, initrd and cmdline for dom, builds the image
// in fresh frames from m and returns the hand-over. The kernel and the
// initrd are written straight into those frames; if anything fails after
// they are allocated, they are given back.
func Prepare(m Machine, dom Domain, k Kernel, initrd Initrd, cmdline string) (*Prepared, error) {
	lay, err := layout.Plan(k.LayoutImage(), layout.Options{
		NrPages:       dom.NrPages,
		InitrdSize:    initrd.Size,
		Cmdline:       cmdline,
		StoreMFN:      dom.StoreMFN,
		ConsoleMFN:    dom.ConsoleMFN,
		StoreEvtchn:   dom.StoreEvtchn,
		ConsoleEvtchn: dom.ConsoleEvtchn,
		SharedInfoMA:  dom.SharedInfoMA,
		Flags:         dom.Flags,
	})
	if err != nil {
		return nil, fmt.Errorf("boot: layout: %w", err)
	}
	// Every PFN the new page tables map must be a fresh frame: the
	// allocated region and the rest of the initial mapping up to its
	// 4 MiB boundary (mapped writable by the builder, so it must not hold
	// one of the loader's own page tables).
	n := lay.PFNAllocEnd
	if end := (lay.VirtPgtabEnd - lay.Image.VirtBase) / layout.PageSize; end > n {
		n = end
	}
	if n > dom.NrPages {
		return nil, fmt.Errorf("boot: %w: the boot layout needs %d MiB, the domain has %d MiB",
			ErrNoMemory, n>>8, dom.NrPages>>8)
	}
	old, err := m.P2M()
	if err != nil {
		return nil, fmt.Errorf("boot: read the P2M: %w", err)
	}
	if uint64(len(old)) != dom.NrPages {
		return nil, fmt.Errorf("boot: P2M has %d entries, domain has %d pages", len(old), dom.NrPages)
	}
	mem, fresh, err := m.Alloc(int(n))
	if err != nil {
		return nil, fmt.Errorf("boot: %w: %d MiB for the kernel, initrd and page tables: %v",
			ErrNoMemory, n>>8, err)
	}
	p, err := build(lay, n, dom, old, mem, fresh, k, initrd)
	if err != nil {
		if ferr := m.Free(mem); ferr != nil {
			err = fmt.Errorf("%w (and giving back its memory: %v)", err, ferr)
		}
		return nil, err
	}
	return p, nil
}

// build writes the image into mem, the fresh frames.
func build(lay *layout.Layout, n uint64, dom Domain, old []uint64, mem []byte, fresh []uint64, k Kernel, initrd Initrd) (*Prepared, error) {
	if len(fresh) != int(n) || len(mem) != int(n)*layout.PageSize {
		return nil, fmt.Errorf("boot: allocator returned %d frames / %d bytes for %d pages", len(fresh), len(mem), n)
	}
	p2m, err := Permute(old, fresh, map[uint64]uint64{lay.ConsolePFN: dom.ConsoleMFN, lay.StorePFN: dom.StoreMFN})
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	page := func(pfn uint64) []byte { return mem[pfn*layout.PageSize:] }

	if err := k.Load(page(lay.Kernel.PFN)[:k.ImageSize()]); err != nil {
		return nil, fmt.Errorf("boot: load kernel: %w", err)
	}
	if lay.HypercallPFN != layout.Unset {
		copy(page(lay.HypercallPFN)[:layout.PageSize], loader.HypercallPage())
	}
	if initrd.Size > 0 {
		// The layout sized the initrd's pages from Size.
		if err := initrd.Write(page(lay.Initrd.PFN)[:initrd.Size]); err != nil {
			return nil, fmt.Errorf("boot: load initrd: %w", err)
		}
	}
	// The P2M list the kernel finds at mfn_list.
	list := page(lay.P2M.PFN)
	for pfn, mfn := range p2m {
		binary.LittleEndian.PutUint64(list[pfn*8:], mfn)
	}
	copy(page(lay.StartInfoPFN), lay.StartInfo())
	tps := lay.TablePages()
	tables := make([]uint64, len(tps))
	var terr error
	lookup := func(pfn uint64) uint64 {
		if pfn >= uint64(len(p2m)) {
			terr = fmt.Errorf("boot: page table maps PFN %#x beyond the domain", pfn)
			return 0
		}
		return p2m[pfn]
	}
	for i, tp := range tps {
		ents, err := lay.PageTable(i, lookup)
		if err != nil {
			return nil, fmt.Errorf("boot: page table %d: %w", i, err)
		}
		if terr != nil {
			return nil, terr
		}
		dst := page(tp.PFN)
		for j, e := range ents {
			binary.LittleEndian.PutUint64(dst[j*8:], e)
		}
		tables[i] = tp.PFN
	}
	e := lay.Entry()
	return &Prepared{
		Layout: lay,
		Pages:  int(n),
		Jump: &Jump{
			P2M:          p2m,
			Window:       mem,
			Tables:       tables,
			L4PFN:        e.PTBasePFN,
			BootStackPFN: lay.BootStackPFN,
			BootStackVA:  lay.Image.VirtBase + lay.BootStackPFN*layout.PageSize,
			Entry:        e,
		},
	}, nil
}

// Permute returns the P2M the next kernel gets: target PFN t < len(fresh)
// is backed by fresh[t], each PFN in pins by its given MFN (the live
// console and xenstore rings), and every other MFN of old is moved to a
// PFN that one of those left — so the result is a permutation of old.
// This is PV-GRUB's kexec_allocate and do_exchange (xen-pv-abi.md §6.1).
func Permute(old, fresh []uint64, pins map[uint64]uint64) ([]uint64, error) {
	if len(fresh) > len(old) {
		return nil, fmt.Errorf("permute: %d fresh frames for %d pages", len(fresh), len(old))
	}
	pos := make(map[uint64]uint64, len(old))
	for pfn, mfn := range old {
		if _, dup := pos[mfn]; dup {
			return nil, fmt.Errorf("permute: MFN %#x appears twice in the P2M", mfn)
		}
		pos[mfn] = uint64(pfn)
	}
	isFresh := make(map[uint64]bool, len(fresh))
	for _, mfn := range fresh {
		if _, ok := pos[mfn]; !ok {
			return nil, fmt.Errorf("permute: fresh MFN %#x is not the domain's", mfn)
		}
		if isFresh[mfn] {
			return nil, fmt.Errorf("permute: fresh MFN %#x given twice", mfn)
		}
		isFresh[mfn] = true
	}
	for pfn, mfn := range pins {
		if pfn >= uint64(len(old)) {
			return nil, fmt.Errorf("permute: pinned PFN %#x beyond the domain", pfn)
		}
		if _, ok := pos[mfn]; !ok {
			return nil, fmt.Errorf("permute: pinned MFN %#x is not the domain's", mfn)
		}
		if isFresh[mfn] {
			return nil, fmt.Errorf("permute: pinned MFN %#x is also a fresh frame", mfn)
		}
	}
	p := append([]uint64(nil), old...)
	place := func(t, mfn uint64) {
		s := pos[mfn]
		if s == t {
			return
		}
		p[t], p[s] = p[s], p[t]
		pos[p[t]], pos[p[s]] = t, s
	}
	for t, mfn := range fresh {
		if _, pinned := pins[uint64(t)]; !pinned {
			place(uint64(t), mfn)
		}
	}
	for pfn, mfn := range pins {
		place(pfn, mfn)
	}
	return p, nil
}
