package loader

import (
	"encoding/binary"
	"fmt"
)

// A small ELF64 reader of our own rather than debug/elf: Xen's libelf
// has its own tolerance rules (a PT_NOTE with offset 0 is skipped, a broken
// section table only loses the fallbacks, strings may run past a note's
// descsz into its padding) and every one of them has to match, on input
// that is hostile, with no allocation that the input sizes.

// ELF constants we use.
const (
	elfClass32   = 1
	elfClass64   = 2
	elfDataLSB   = 1
	emI386       = 3
	emX86_64     = 62
	ptLoad       = 1
	ptNote       = 4
	shtNote      = 7
	pfMask       = 7 // PF_X|PF_W|PF_R
	elf64EhdrLen = 64
	elf64PhdrLen = 56
	elf64ShdrLen = 64
)

// Segment is an ELF program header.
type Segment struct {
	Type, Flags   uint32
	Offset        uint64
	Vaddr, Paddr  uint64
	Filesz, Memsz uint64
	Align         uint64
	Loadable      bool // PT_LOAD with any of R/W/X: what Xen loads
}

type section struct {
	name         uint32
	typ          uint32
	offset, size uint64
}

// elfData is an ELF file as the parser reads it: the whole file in
// memory (memELF), or the parts of a decompressing stream it asked for
// (sparseELF, stream.go).
type elfData interface {
	// size is the file's size; false while it is not known (a stream
	// not read to its end). Checks against the size wait until it is.
	size() (uint64, bool)
	// at returns the file's bytes [off, off+n), fewer only where the
	// file ends, or an *errNeed while a stream has not kept them.
	at(off, n uint64) ([]byte, error)
	// want asks a stream to keep [off, off+n) for an at to come, so that
	// what a loop will read is fetched in one pass.
	want(off, n uint64)
}

// memELF is a file in memory.
type memELF []byte

func (b memELF) size() (uint64, bool) { return uint64(len(b)), true }

func (b memELF) at(off, n uint64) ([]byte, error) {
	if off >= uint64(len(b)) {
		return nil, nil
	}
	return b[off : off+min(n, uint64(len(b))-off)], nil
}

func (memELF) want(off, n uint64) {}

// errNeed: the parser needs bytes a stream has not kept (yet).
type errNeed struct{ off, n uint64 }

func (e *errNeed) Error() string {
	return fmt.Sprintf("internal: bytes [%#x, +%#x) of the vmlinux not kept", e.off, e.n)
}

// elfFile is a parsed ELF64 little-endian header with its program
// headers; the section headers are read when needed.
type elfFile struct {
	data     elfData
	machine  uint16
	entry    uint64
	phdrs    []Segment
	shoff    uint64
	shentsz  uint64
	shnum    uint64
	shdrs    []section // nil until sections
	shstrndx uint16
}

func parseELFHeader(d elfData) (*elfFile, error) {
	b, err := d.at(0, elf64EhdrLen)
	if err != nil {
		return nil, err
	}
	if len(b) < 16 || string(b[:4]) != "\x7fELF" {
		return nil, fmt.Errorf("%w: not an ELF file", ErrNotKernel)
	}
	switch b[4] {
	case elfClass64:
	case elfClass32:
		return nil, Err32Bit
	default:
		return nil, fmt.Errorf("%w: ELF class %d", ErrBadELF, b[4])
	}
	if b[5] != elfDataLSB {
		return nil, fmt.Errorf("%w: big-endian ELF", ErrBadELF)
	}
	if len(b) < elf64EhdrLen {
		return nil, fmt.Errorf("%w: truncated ELF header", ErrBadELF)
	}
	le := binary.LittleEndian
	f := &elfFile{data: d}
	f.machine = le.Uint16(b[18:])
	switch f.machine {
	case emX86_64:
	case emI386:
		return nil, Err32Bit
	default:
		return nil, fmt.Errorf("%w: ELF machine %d, not x86_64", ErrBadELF, f.machine)
	}
	f.entry = le.Uint64(b[24:])
	phoff, shoff := le.Uint64(b[32:]), le.Uint64(b[40:])
	phentsize, phnum := uint64(le.Uint16(b[54:])), uint64(le.Uint16(b[56:]))
	shentsize, shnum := uint64(le.Uint16(b[58:])), uint64(le.Uint16(b[60:]))
	f.shstrndx = le.Uint16(b[62:])
	size, known := d.size()

	// libelf's elf_init checks: both tables lie inside the file. A
	// stream checks the section table once its size is known; the
	// program headers it reads now.
	if phnum > 0 {
		if phentsize < elf64PhdrLen {
			return nil, fmt.Errorf("%w: program header size %d", ErrBadELF, phentsize)
		}
		if known && (phoff > size || phentsize*phnum > size-phoff) {
			return nil, fmt.Errorf("%w: program headers past end of file", ErrBadELF)
		}
	}
	if shnum > 0 {
		if shentsize < elf64ShdrLen {
			return nil, fmt.Errorf("%w: section header size %d", ErrBadELF, shentsize)
		}
		if known && (shoff > size || shentsize*shnum > size-shoff) {
			return nil, fmt.Errorf("%w: section headers past end of file", ErrBadELF)
		}
	}
	f.shoff, f.shentsz, f.shnum = shoff, shentsize, shnum
	var tbl []byte
	if phnum > 0 {
		if tbl, err = d.at(phoff, phentsize*phnum); err != nil {
			return nil, err
		}
		if uint64(len(tbl)) < phentsize*phnum {
			return nil, fmt.Errorf("%w: program headers past end of file", ErrBadELF)
		}
	}
	f.phdrs = make([]Segment, phnum)
	for i := range f.phdrs {
		p := tbl[uint64(i)*phentsize:]
		s := Segment{
			Type:   le.Uint32(p[0:]),
			Flags:  le.Uint32(p[4:]),
			Offset: le.Uint64(p[8:]),
			Vaddr:  le.Uint64(p[16:]),
			Paddr:  le.Uint64(p[24:]),
			Filesz: le.Uint64(p[32:]),
			Memsz:  le.Uint64(p[40:]),
			Align:  le.Uint64(p[48:]),
		}
		s.Loadable = s.Type == ptLoad && s.Flags&pfMask != 0
		f.phdrs[i] = s
	}
	return f, nil
}

// sections returns the section headers, reading them the first time:
// only the fallbacks to PT_NOTE need them.
func (f *elfFile) sections() ([]section, error) {
	if f.shdrs != nil || f.shnum == 0 {
		return f.shdrs, nil
	}
	tbl, err := f.data.at(f.shoff, f.shentsz*f.shnum)
	if err != nil {
		return nil, err
	}
	if uint64(len(tbl)) < f.shentsz*f.shnum {
		return nil, fmt.Errorf("%w: section headers past end of file", ErrBadELF)
	}
	le := binary.LittleEndian
	shdrs := make([]section, f.shnum)
	for i := range shdrs {
		p := tbl[uint64(i)*f.shentsz:]
		shdrs[i] = section{
			name:   le.Uint32(p[0:]),
			typ:    le.Uint32(p[4:]),
			offset: le.Uint64(p[24:]),
			size:   le.Uint64(p[32:]),
		}
	}
	f.shdrs = shdrs
	return shdrs, nil
}

// sectionByName finds a section by name through the section string table,
// or returns false (also when the string table is unusable).
func (f *elfFile) sectionByName(name string) (section, bool, error) {
	shdrs, err := f.sections()
	if err != nil {
		return section{}, false, err
	}
	if int(f.shstrndx) >= len(shdrs) || f.shstrndx == 0 {
		return section{}, false, nil
	}
	strtab := shdrs[f.shstrndx]
	const maxName = 256
	for _, s := range shdrs[1:] {
		if off := strtab.offset + uint64(s.name); off >= strtab.offset {
			f.data.want(off, maxName+1)
		}
	}
	for _, s := range shdrs[1:] {
		off := strtab.offset + uint64(s.name)
		if off < strtab.offset { // overflow
			continue
		}
		str, ok, err := cString(f.data, off, maxName)
		if err != nil {
			return section{}, false, err
		}
		if ok && str == name {
			return s, true, nil
		}
	}
	return section{}, false, nil
}

// cString reads a NUL-terminated string at off in the file of at most
// max bytes (excluding the NUL); false if it runs off the end or is too
// long.
func cString(d elfData, off uint64, max int) (string, bool, error) {
	b, err := d.at(off, uint64(max)+1)
	if err != nil {
		return "", false, err
	}
	s, ok := cStringBytes(b, 0, max)
	return s, ok, nil
}

// cStringBytes is cString in b.
func cStringBytes(b []byte, off uint64, max int) (string, bool) {
	if off >= uint64(len(b)) {
		return "", false
	}
	end := min(uint64(len(b)), off+uint64(max)+1)
	for i := off; i < end; i++ {
		if b[i] == 0 {
			return string(b[off:i]), true
		}
	}
	return "", false
}

// loadBounds returns the lowest p_paddr and the highest p_paddr+p_memsz of
// the loadable segments (libelf's elf_parse_binary: placement follows the
// physical addresses, not the virtual ones). A stream checks that the
// segments' data lies inside the file once its size is known.
func (f *elfFile) loadBounds() (pstart, pend uint64, err error) {
	size, known := f.data.size()
	pstart, pend = ^uint64(0), 0
	n := 0
	for i, s := range f.phdrs {
		if !s.Loadable {
			continue
		}
		n++
		end := s.Paddr + s.Memsz
		if end < s.Paddr {
			return 0, 0, fmt.Errorf("%w: segment %d wraps the address space", ErrBadELF, i)
		}
		if s.Filesz > s.Memsz {
			return 0, 0, fmt.Errorf("%w: segment %d: file size %#x > memory size %#x", ErrBadELF, i, s.Filesz, s.Memsz)
		}
		if known && (s.Offset > size || s.Filesz > size-s.Offset) {
			return 0, 0, fmt.Errorf("%w: segment %d data past end of file", ErrBadELF, i)
		}
		pstart = min(pstart, s.Paddr)
		pend = max(pend, end)
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("%w: no loadable segments", ErrBadELF)
	}
	return pstart, pend, nil
}
