// Package pvimage turns the output of the standard Go linker into a kernel
// image that Xen's PV domain builder accepts as `kernel=`.
//
// The Go linker cannot emit custom ELF notes, so this post-link step does
// what the toolstack needs (xen/include/public/elfnote.h; libelf in
// xen/common/libelf):
//
//   - adds a PT_NOTE program header pointing at Xen notes appended to the
//     file (GUEST_OS, XEN_VERSION "xen-3.0", LOADER "generic", ENTRY,
//     VIRT_BASE = PADDR_OFFSET = the image base, so the builder maps PFN 0 at
//     the image's first page and leaves VA 0 unmapped for nil-pointer faults);
//   - drops the section headers and everything outside the loadable
//     segments (symbols, DWARF): the unstripped ELF stays the build artefact
//     for addr2line;
//   - trims the trailing large BSS objects (crypto/internal/fips140/drbg.memory
//     is 32 MiB in Go 1.26) from the RW segment's p_memsz, because Xen's
//     loader allocates and zeroes every byte of p_memsz before the kernel
//     runs. The trimmed range is written into minios.lazyBSS, and the shim
//     backs it with demand-zero pages, as Linux would.
//
// It is written by hand because it is a few dozen lines of debug/elf and
// encoding/binary; no library edits ELF program headers.
package pvimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Xen ELF note types (xen/include/public/elfnote.h).
const (
	NoteEntry       = 1
	NoteVirtBase    = 3
	NotePaddrOffset = 4
	NoteXenVersion  = 5
	NoteGuestOS     = 6
	NoteGuestVer    = 7
	NoteLoader      = 8
)

// LazyBSSSymbol is the shim variable that receives the trimmed BSS range.
const LazyBSSSymbol = "github.com/gopvgrub/gopvgrub/minios.lazyBSS"

// LazyBSSMagic is the initial value of lazyBSS[0]: it puts the variable in
// .noptrdata (so it has file bytes to patch) and lets us check we patch the
// right bytes.
const LazyBSSMagic = 0x5353426c617a7921

// Options control Build.
type Options struct {
	GuestOS      string // default "gopvgrub"
	GuestVersion string // default "0"
	// TrimBSS is the smallest trailing BSS object worth demand paging
	// (0 = do not trim).
	TrimBSS uint64
	// LazySymbol names the [2]uint64 that receives the trimmed range
	// (default LazyBSSSymbol).
	LazySymbol string
}

// Note is one Xen note as written.
type Note struct {
	Type uint32
	Desc []byte
}

// Info describes what Build did.
type Info struct {
	Entry, VirtBase uint64
	Notes           []Note
	// LazyStart, LazyEnd is the page-aligned range removed from p_memsz
	// (empty when nothing was trimmed).
	LazyStart, LazyEnd uint64
}

const (
	phdrSize  = 56
	elfHdrLen = 64
	pageSize  = 4096
)

// Build returns the PV image made from a Go-linked static ELF.
func Build(in []byte, opt Options) ([]byte, *Info, error) {
	if opt.GuestOS == "" {
		opt.GuestOS = "gopvgrub"
	}
	if opt.GuestVersion == "" {
		opt.GuestVersion = "0"
	}
	if opt.LazySymbol == "" {
		opt.LazySymbol = LazyBSSSymbol
	}
	f, err := elf.NewFile(bytes.NewReader(in))
	if err != nil {
		return nil, nil, fmt.Errorf("pvimage: %w", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return nil, nil, errors.New("pvimage: not a static x86-64 executable")
	}
	var loads []*elf.Prog
	var phdrProg *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			loads = append(loads, p)
		case elf.PT_PHDR:
			phdrProg = p
		case elf.PT_INTERP, elf.PT_DYNAMIC:
			return nil, nil, errors.New("pvimage: dynamically linked (build with CGO_ENABLED=0)")
		}
	}
	if len(loads) == 0 {
		return nil, nil, errors.New("pvimage: no loadable segments")
	}
	base := loads[0].Vaddr
	if loads[0].Off != 0 || base%pageSize != 0 {
		return nil, nil, errors.New("pvimage: first PT_LOAD must map the file header page")
	}
	for _, p := range loads {
		if p.Paddr != p.Vaddr {
			return nil, nil, fmt.Errorf("pvimage: segment at %#x has p_paddr != p_vaddr", p.Vaddr)
		}
	}
	info := &Info{Entry: f.Entry, VirtBase: base}

	// The new file: everything up to the end of the last loadable byte.
	var end uint64
	for _, p := range loads {
		if e := p.Off + p.Filesz; e > end {
			end = e
		}
	}
	if end > uint64(len(in)) {
		return nil, nil, errors.New("pvimage: segment past end of file")
	}
	phoff := binary.LittleEndian.Uint64(in[32:40])
	phnum := int(binary.LittleEndian.Uint16(in[56:58]))
	newPhEnd := phoff + uint64(phnum+1)*phdrSize
	if newPhEnd > loads[0].Filesz || newPhEnd > lowestContent(f) {
		return nil, nil, errors.New("pvimage: no room for another program header")
	}
	out := make([]byte, end, end+512)
	copy(out, in[:end])
	// The section headers usually sit right after the program headers,
	// inside the loaded header page: clear them, they no longer describe
	// anything.
	shoff := binary.LittleEndian.Uint64(in[40:48])
	shsize := uint64(binary.LittleEndian.Uint16(in[58:60])) * uint64(binary.LittleEndian.Uint16(in[60:62]))
	if shoff >= newPhEnd-phdrSize && shoff < end {
		clearTo := shoff + shsize
		if lc := lowestContent(f); clearTo > lc {
			clearTo = lc
		}
		for i := shoff; i < clearTo; i++ {
			out[i] = 0
		}
	}
	binary.LittleEndian.PutUint64(out[40:48], 0) // e_shoff
	binary.LittleEndian.PutUint16(out[58:60], 0) // e_shentsize
	binary.LittleEndian.PutUint16(out[60:62], 0) // e_shnum
	binary.LittleEndian.PutUint16(out[62:64], 0) // e_shstrndx

	// Trim the large trailing BSS objects.
	if opt.TrimBSS > 0 {
		if err := trimBSS(f, in, out, loads, opt.TrimBSS, opt.LazySymbol, info); err != nil {
			return nil, nil, err
		}
	}

	// Append the notes, 8-aligned.
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	info.Notes = []Note{
		{NoteGuestOS, cstr(opt.GuestOS)},
		{NoteGuestVer, cstr(opt.GuestVersion)},
		{NoteXenVersion, cstr("xen-3.0")},
		{NoteLoader, cstr("generic")},
		{NoteVirtBase, u64(base)},
		{NotePaddrOffset, u64(base)},
		{NoteEntry, u64(f.Entry)},
	}
	noteOff := uint64(len(out))
	for _, n := range info.Notes {
		out = appendNote(out, "Xen", n.Type, n.Desc)
	}
	noteLen := uint64(len(out)) - noteOff

	// The new PT_NOTE header goes after the existing ones.
	ph := out[phoff+uint64(phnum)*phdrSize : newPhEnd]
	le := binary.LittleEndian
	le.PutUint32(ph[0:], uint32(elf.PT_NOTE))
	le.PutUint32(ph[4:], uint32(elf.PF_R))
	le.PutUint64(ph[8:], noteOff)
	le.PutUint64(ph[16:], 0) // not loaded
	le.PutUint64(ph[24:], 0)
	le.PutUint64(ph[32:], noteLen)
	le.PutUint64(ph[40:], 0)
	le.PutUint64(ph[48:], 4)
	le.PutUint16(out[56:58], uint16(phnum+1))
	if phdrProg != nil {
		for i := 0; i < phnum; i++ {
			h := out[phoff+uint64(i)*phdrSize:]
			if elf.ProgType(le.Uint32(h)) == elf.PT_PHDR {
				le.PutUint64(h[32:], uint64(phnum+1)*phdrSize)
				le.PutUint64(h[40:], uint64(phnum+1)*phdrSize)
			}
		}
	}
	return out, info, nil
}

// lowestContent is the lowest file offset of any section or non-header
// segment data: the program header table must not grow into it.
func lowestContent(f *elf.File) uint64 {
	low := ^uint64(0)
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NULL && s.Type != elf.SHT_NOBITS && s.Offset > 0 && s.Offset < low {
			low = s.Offset
		}
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD && p.Type != elf.PT_PHDR && p.Off > 0 && p.Filesz > 0 && p.Off < low {
			low = p.Off
		}
	}
	return low
}

// trimBSS shrinks the RW segment's p_memsz so that it stops before the
// trailing run of BSS symbols of at least min bytes, and records the range
// in minios.lazyBSS.
func trimBSS(f *elf.File, in, out []byte, loads []*elf.Prog, min uint64, lazySym string, info *Info) error {
	syms, err := f.Symbols()
	if err != nil {
		return nil // stripped input: nothing to find
	}
	var rw *elf.Prog
	rwIndex := -1
	for i, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_W != 0 {
			rw, rwIndex = p, i
		}
	}
	if rw == nil || rw.Memsz <= rw.Filesz {
		return nil
	}
	segEnd := rw.Vaddr + rw.Memsz
	bssStart := rw.Vaddr + rw.Filesz
	var inBSS []elf.Symbol
	for _, s := range syms {
		if s.Value >= bssStart && s.Value < segEnd && s.Size > 0 {
			inBSS = append(inBSS, s)
		}
	}
	sort.Slice(inBSS, func(i, j int) bool { return inBSS[i].Value < inBSS[j].Value })
	cut := segEnd
	for i := len(inBSS) - 1; i >= 0; i-- {
		s := inBSS[i]
		if s.Size < min || s.Value+s.Size < cut-pageSize {
			break
		}
		cut = s.Value
	}
	start := (cut + pageSize - 1) &^ (pageSize - 1)
	stop := (segEnd + pageSize - 1) &^ (pageSize - 1)
	if cut == segEnd || stop-start < min {
		return nil
	}
	// Find the patch target before changing anything.
	var lazy *elf.Symbol
	for i := range syms {
		if syms[i].Name == lazySym {
			lazy = &syms[i]
		}
	}
	if lazy == nil {
		return fmt.Errorf("pvimage: BSS has %d trailing bytes to trim but %s is missing (does the image import minios?)", stop-start, lazySym)
	}
	off, ok := fileOffset(loads, lazy.Value, 16)
	if !ok {
		return fmt.Errorf("pvimage: %s is not in initialised data", lazySym)
	}
	le := binary.LittleEndian
	if le.Uint64(in[off:]) != LazyBSSMagic {
		return fmt.Errorf("pvimage: %s does not hold the expected magic", lazySym)
	}
	le.PutUint64(out[off:], start)
	le.PutUint64(out[off+8:], stop)
	// p_memsz now ends at the page boundary, so Xen still zeroes the
	// partial page holding the data before the cut.
	h := out[binary.LittleEndian.Uint64(in[32:40])+uint64(rwIndex)*phdrSize:]
	le.PutUint64(h[40:], start-rw.Vaddr)
	info.LazyStart, info.LazyEnd = start, stop
	return nil
}

func fileOffset(loads []*elf.Prog, va, n uint64) (uint64, bool) {
	for _, p := range loads {
		if va >= p.Vaddr && va+n <= p.Vaddr+p.Filesz {
			return p.Off + (va - p.Vaddr), true
		}
	}
	return 0, false
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	return b
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendNote appends one ELF note: namesz, descsz, type, name, desc, each
// of name and desc padded to 4 bytes.
func appendNote(b []byte, name string, typ uint32, desc []byte) []byte {
	var h [12]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(name)+1))
	binary.LittleEndian.PutUint32(h[4:], uint32(len(desc)))
	binary.LittleEndian.PutUint32(h[8:], typ)
	b = append(b, h[:]...)
	b = pad4(append(b, cstr(name)...))
	return pad4(append(b, desc...))
}

// ReadNotes returns the notes named name from the PT_NOTE segments of an
// ELF image (used by tests and by `mkimage -check`).
func ReadNotes(img []byte, name string) ([]Note, error) {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, err
	}
	var notes []Note
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE || p.Off == 0 {
			continue
		}
		if p.Off+p.Filesz > uint64(len(img)) {
			return nil, errors.New("pvimage: note segment past end of file")
		}
		d := img[p.Off : p.Off+p.Filesz]
		for len(d) >= 12 {
			namesz := uint64(binary.LittleEndian.Uint32(d[0:]))
			descsz := uint64(binary.LittleEndian.Uint32(d[4:]))
			typ := binary.LittleEndian.Uint32(d[8:])
			nameEnd := 12 + (namesz+3)&^3
			descEnd := nameEnd + (descsz+3)&^3
			if namesz > uint64(len(d)) || descsz > uint64(len(d)) || descEnd > uint64(len(d)) {
				return nil, errors.New("pvimage: truncated note")
			}
			if namesz > 0 && string(d[12:12+namesz-1]) == name {
				notes = append(notes, Note{typ, append([]byte(nil), d[nameEnd:nameEnd+descsz]...)})
			}
			d = d[descEnd:]
		}
	}
	return notes, nil
}
