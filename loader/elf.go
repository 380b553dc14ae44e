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

// elfFile is a parsed ELF64 little-endian header with its tables.
type elfFile struct {
	data     []byte
	machine  uint16
	entry    uint64
	phdrs    []Segment
	shdrs    []section
	shstrndx uint16
}

func parseELFHeader(b []byte) (*elfFile, error) {
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
	f := &elfFile{data: b}
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
	size := uint64(len(b))

	// libelf's elf_init checks: both tables lie inside the file.
	if phnum > 0 {
		if phentsize < elf64PhdrLen {
			return nil, fmt.Errorf("%w: program header size %d", ErrBadELF, phentsize)
		}
		if phoff > size || phentsize*phnum > size-phoff {
			return nil, fmt.Errorf("%w: program headers past end of file", ErrBadELF)
		}
	}
	if shnum > 0 {
		if shentsize < elf64ShdrLen {
			return nil, fmt.Errorf("%w: section header size %d", ErrBadELF, shentsize)
		}
		if shoff > size || shentsize*shnum > size-shoff {
			return nil, fmt.Errorf("%w: section headers past end of file", ErrBadELF)
		}
	}
	f.phdrs = make([]Segment, phnum)
	for i := range f.phdrs {
		p := b[phoff+uint64(i)*phentsize:]
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
	f.shdrs = make([]section, shnum)
	for i := range f.shdrs {
		p := b[shoff+uint64(i)*shentsize:]
		f.shdrs[i] = section{
			name:   le.Uint32(p[0:]),
			typ:    le.Uint32(p[4:]),
			offset: le.Uint64(p[24:]),
			size:   le.Uint64(p[32:]),
		}
	}
	return f, nil
}

// sectionByName finds a section by name through the section string table,
// or returns false (also when the string table is unusable).
func (f *elfFile) sectionByName(name string) (section, bool) {
	if int(f.shstrndx) >= len(f.shdrs) || f.shstrndx == 0 {
		return section{}, false
	}
	strtab := f.shdrs[f.shstrndx]
	for _, s := range f.shdrs[1:] {
		off := strtab.offset + uint64(s.name)
		if off < strtab.offset { // overflow
			continue
		}
		str, ok := cString(f.data, off, 256)
		if ok && str == name {
			return s, true
		}
	}
	return section{}, false
}

// cString reads a NUL-terminated string at off in b of at most max bytes
// (excluding the NUL); false if it runs off the end or is too long.
func cString(b []byte, off uint64, max int) (string, bool) {
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
// physical addresses, not the virtual ones).
func (f *elfFile) loadBounds() (pstart, pend uint64, err error) {
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
		if s.Offset > uint64(len(f.data)) || s.Filesz > uint64(len(f.data))-s.Offset {
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
