package loader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// A small ELF64 writer for tests: PT_LOAD segments, notes in a PT_NOTE
// segment and/or SHT_NOTE sections, an optional __xen_guest section.

type testLoad struct {
	vaddr, paddr uint64
	data         []byte
	memsz        uint64
	flags        uint32
}

type testELF struct {
	class       byte   // default 2 (64-bit)
	machine     uint16 // default EM_X86_64
	entry       uint64
	loads       []testLoad
	ptNotes     []byte // notes in a PT_NOTE segment
	ptNoteOff0  bool   // write that PT_NOTE with p_offset 0
	secNotes    []byte // notes in an SHT_NOTE section
	xenGuest    string // __xen_guest section contents
	extraPhdrs  int    // claim more program headers than written
	phentsize   uint16
	noSections  bool
	truncatedAt int
}

func note(name string, typ uint32, desc []byte) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)+1))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = append(b, name...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b = append(b, desc...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func xnum(typ uint32, v uint64) []byte {
	return note("Xen", typ, binary.LittleEndian.AppendUint64(nil, v))
}

func xstr(typ uint32, s string) []byte { return note("Xen", typ, append([]byte(s), 0)) }

func notes(n ...[]byte) []byte { return bytes.Join(n, nil) }

func (e testELF) build() []byte {
	le := binary.LittleEndian
	class := e.class
	if class == 0 {
		class = 2
	}
	machine := e.machine
	if machine == 0 {
		machine = emX86_64
	}
	nph := len(e.loads)
	if e.ptNotes != nil {
		nph++
	}
	// Data after headers.
	const ehdr = 64
	dataOff := uint64(ehdr + nph*elf64PhdrLen)
	var data []byte
	place := func(b []byte) uint64 {
		for (dataOff+uint64(len(data)))%16 != 0 {
			data = append(data, 0)
		}
		off := dataOff + uint64(len(data))
		data = append(data, b...)
		return off
	}
	var ph []byte
	for _, l := range e.loads {
		off := place(l.data)
		flags := l.flags
		if flags == 0 {
			flags = 5
		}
		ph = le.AppendUint32(ph, ptLoad)
		ph = le.AppendUint32(ph, flags)
		ph = le.AppendUint64(ph, off)
		ph = le.AppendUint64(ph, l.vaddr)
		ph = le.AppendUint64(ph, l.paddr)
		ph = le.AppendUint64(ph, uint64(len(l.data)))
		ph = le.AppendUint64(ph, max(l.memsz, uint64(len(l.data))))
		ph = le.AppendUint64(ph, 0x1000)
	}
	if e.ptNotes != nil {
		off := place(e.ptNotes)
		if e.ptNoteOff0 {
			off = 0
		}
		ph = le.AppendUint32(ph, ptNote)
		ph = le.AppendUint32(ph, 4)
		ph = le.AppendUint64(ph, off)
		ph = le.AppendUint64(ph, 0)
		ph = le.AppendUint64(ph, 0)
		ph = le.AppendUint64(ph, uint64(len(e.ptNotes)))
		ph = le.AppendUint64(ph, uint64(len(e.ptNotes)))
		ph = le.AppendUint64(ph, 4)
	}
	// Sections: null, [notes], [__xen_guest], .shstrtab.
	type sec struct {
		name       string
		typ        uint32
		off, size  uint64
		nameOffset uint32
	}
	var secs []sec
	if e.secNotes != nil {
		secs = append(secs, sec{name: ".note.xen", typ: shtNote, off: place(e.secNotes), size: uint64(len(e.secNotes))})
	}
	if e.xenGuest != "" {
		b := append([]byte(e.xenGuest), 0)
		secs = append(secs, sec{name: "__xen_guest", typ: 1, off: place(b), size: uint64(len(b))})
	}
	strtab := []byte{0}
	for i := range secs {
		secs[i].nameOffset = uint32(len(strtab))
		strtab = append(append(strtab, secs[i].name...), 0)
	}
	shstrName := uint32(len(strtab))
	strtab = append(strtab, ".shstrtab\x00"...)
	strOff := place(strtab)
	secs = append(secs, sec{typ: 3, off: strOff, size: uint64(len(strtab)), nameOffset: shstrName})
	shoff := place(nil)
	var sh []byte
	sh = append(sh, make([]byte, elf64ShdrLen)...)
	for _, s := range secs {
		b := make([]byte, elf64ShdrLen)
		le.PutUint32(b[0:], s.nameOffset)
		le.PutUint32(b[4:], s.typ)
		le.PutUint64(b[24:], s.off)
		le.PutUint64(b[32:], s.size)
		sh = append(sh, b...)
	}
	h := make([]byte, ehdr)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = class, 1, 1
	le.PutUint16(h[16:], 2)
	le.PutUint16(h[18:], machine)
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[24:], e.entry)
	le.PutUint64(h[32:], ehdr)
	phentsize := e.phentsize
	if phentsize == 0 {
		phentsize = elf64PhdrLen
	}
	le.PutUint16(h[52:], ehdr)
	le.PutUint16(h[54:], phentsize)
	le.PutUint16(h[56:], uint16(nph+e.extraPhdrs))
	if !e.noSections {
		le.PutUint64(h[40:], shoff)
		le.PutUint16(h[58:], elf64ShdrLen)
		le.PutUint16(h[60:], uint16(len(secs)+1))
		le.PutUint16(h[62:], uint16(len(secs)))
	}
	out := append(append(h, ph...), data...)
	if !e.noSections {
		out = append(out, sh...)
	}
	if e.truncatedAt > 0 {
		out = out[:e.truncatedAt]
	}
	return out
}

const linuxBase = 0xffffffff80000000

// linuxNotes are the notes Linux's xen-head.S emits (6.1).
func linuxNotes() []byte {
	return notes(
		xstr(NoteGuestOS, "linux"), xstr(NoteGuestVersion, "2.6"), xstr(NoteXenVersion, "xen-3.0"),
		xnum(NoteVirtBase, linuxBase), xnum(NoteInitP2M, 0x8000000000),
		xnum(NoteEntry, linuxBase+0x1000000+0x40),
		// FEATURES without its NUL inside descsz, as Linux writes it.
		note("Xen", NoteFeatures, []byte("!writable_page_tables|pae_pgdir_above_4gb")),
		note("Xen", NoteSupportedFeatures, []byte{0x01, 0x88, 0, 0}),
		xstr(NotePAEMode, "yes"), xstr(NoteLoader, "generic"),
		note("Xen", NoteSuspendCancel, []byte{1, 0, 0, 0}),
		note("Xen", NoteModStartPFN, []byte{1, 0, 0, 0}),
		xnum(NoteHVStartLow, 0xffff800000000000), xnum(NotePaddrOffset, 0),
	)
}

func linuxELF() testELF {
	return testELF{
		entry: 0x1000000,
		loads: []testLoad{
			{vaddr: linuxBase + 0x1000000, paddr: 0x1000000, data: bytes.Repeat([]byte{0x90}, 0x3000)},
			{vaddr: 0, paddr: 0x1003000, data: []byte("percpu"), memsz: 0x2000, flags: 6},
			{vaddr: linuxBase + 0x1005000, paddr: 0x1005000, data: []byte("init"), memsz: 0x5000, flags: 7},
		},
		ptNotes: linuxNotes(),
	}
}

// gopvgrubNotes are what cmd/mkimage gives our own image.
func gopvgrubNotes(extra ...[]byte) []byte {
	return notes(append([][]byte{
		xstr(NoteGuestOS, "gopvgrub"), xstr(NoteXenVersion, "xen-3.0"), xstr(NoteLoader, "generic"),
		xnum(NoteVirtBase, 0x400000), xnum(NotePaddrOffset, 0x400000), xnum(NoteEntry, 0x401000),
		xnum(NoteHypercallPage, 0x500000),
	}, extra...)...)
}

func gopvgrubELF() testELF {
	return testELF{
		entry: 0x401000,
		loads: []testLoad{
			{vaddr: 0x400000, paddr: 0x400000, data: bytes.Repeat([]byte{0xc3}, 0x2000), memsz: 0x2000},
			{vaddr: 0x402000, paddr: 0x402000, data: []byte("data"), memsz: 0x100000, flags: 6},
		},
		ptNotes: gopvgrubNotes(),
	}
}

func TestXenParams(t *testing.T) {
	lin := linuxELF()
	got, err := ParseKernelBytes(lin.build(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Params
	checks := []struct {
		name      string
		got, want any
	}{
		{"source", p.Source, "PT_NOTE"},
		{"guest os", p.GuestOS, "linux"},
		{"xen version", p.XenVersion, "xen-3.0"},
		{"loader", p.Loader, "generic"},
		{"features", p.Features, "!writable_page_tables|pae_pgdir_above_4gb"},
		{"required", p.FeaturesRequired, uint32(1 << 0)},
		// FEATURES gives bits 0 and 4, SUPPORTED_FEATURES 0x8801.
		{"supported", p.FeaturesSupported, uint32(0x8801 | 1<<4)},
		{"virt base", p.VirtBase, uint64(linuxBase)},
		{"paddr offset", p.PaddrOffset, uint64(0)},
		{"init p2m", p.InitP2M, uint64(0x8000000000)},
		{"mod start pfn", p.ModStartPFN, true},
		{"suspend cancel", p.SuspendCancel, true},
		{"hypercall page", p.HypercallPage, Unset},
		{"entry", p.Entry, uint64(linuxBase + 0x1000040)},
		// pstart 0x1000000 (lowest p_paddr), pend 0x100a000.
		{"kstart", p.KStart, uint64(linuxBase + 0x1000000)},
		{"kend", p.KEnd, uint64(linuxBase + 0x100a000)},
		{"container", got.Container, "ELF"},
		{"notes", len(p.Notes), 14},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if !got.HasNote(NoteInitP2M) || got.HasNote(NoteHypercallPage) {
		t.Error("HasNote wrong")
	}

	g, err := ParseKernelBytes(gopvgrubELF().build(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	gp := g.Params
	if gp.VirtBase != 0x400000 || gp.VirtOffset != 0 || gp.KStart != 0x400000 || gp.KEnd != 0x502000 ||
		gp.HypercallPage != 0x500000 || gp.InitP2M != Unset || gp.ModStartPFN {
		t.Errorf("gopvgrub params: %+v", gp)
	}
}

// TestNoteSources: PT_NOTE first; SHT_NOTE only without Xen notes in
// PT_NOTE (a PT_NOTE at offset 0 does not count); __xen_guest last.
func TestNoteSources(t *testing.T) {
	base := gopvgrubELF()

	sec := base
	sec.ptNotes = notes(note("GNU", 3, []byte("build-id")))
	sec.secNotes = gopvgrubNotes()

	off0 := base
	off0.ptNoteOff0 = true
	off0.secNotes = gopvgrubNotes(xstr(NoteGuestVersion, "from section"))

	both := base
	both.secNotes = notes(xstr(NoteGuestOS, "ignored"))

	legacy := base
	legacy.ptNotes = nil
	legacy.xenGuest = "GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0x400000,HYPERCALL_PAGE=0x100,LOADER=generic"

	for _, tc := range []struct {
		name, source, guestOS string
		img                   testELF
	}{
		{"PT_NOTE", "PT_NOTE", "gopvgrub", base},
		{"SHT_NOTE fallback", "SHT_NOTE", "gopvgrub", sec},
		{"PT_NOTE at offset 0 skipped", "SHT_NOTE", "gopvgrub", off0},
		{"PT_NOTE wins", "PT_NOTE", "gopvgrub", both},
		{"__xen_guest", "__xen_guest", "linux", legacy},
	} {
		k, err := ParseKernelBytes(tc.img.build(), 1<<20)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if k.Params.Source != tc.source || k.Params.GuestOS != tc.guestOS {
			t.Errorf("%s: source %q guest %q", tc.name, k.Params.Source, k.Params.GuestOS)
		}
	}
	// Legacy defaults: PADDR_OFFSET = VIRT_BASE, HYPERCALL_PAGE is a page
	// number relative to VIRT_BASE.
	k, _ := ParseKernelBytes(legacy.build(), 1<<20)
	if k.Params.PaddrOffset != 0x400000 || k.Params.HypercallPage != 0x500000 {
		t.Errorf("legacy: paddr offset %#x hypercall %#x", k.Params.PaddrOffset, k.Params.HypercallPage)
	}
}

func TestNumericNotes(t *testing.T) {
	for _, tc := range []struct {
		desc []byte
		want uint64
	}{
		{[]byte{0x12}, 0x12},
		{[]byte{0x34, 0x12}, 0x1234},
		{[]byte{0x78, 0x56, 0x34, 0x12}, 0x12345678},
		{[]byte{1, 0, 0, 0, 0, 0, 0, 0x80}, 0x8000000000000001},
		{[]byte{1, 2, 3}, 0}, // libelf reads other sizes as 0
		{nil, 0},
	} {
		if got := noteNumber(tc.desc); got != tc.want {
			t.Errorf("noteNumber(% x) = %#x, want %#x", tc.desc, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"0x400000", 0x400000}, {"4194304", 4194304}, {"010", 8}, {"0x", 0},
		{"12abc", 12}, {"", 0}, {"0xffffffffffffffffff", ^uint64(0)}, {" +7", 7},
	} {
		if got := strtoull(tc.in); got != tc.want {
			t.Errorf("strtoull(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

type badImage struct {
	name string
	img  []byte
	is   error
	msg  string
}

// badImages are malformed or unacceptable images and the errors they give.
func badImages() []badImage {
	mod := func(f func(*testELF)) []byte { e := gopvgrubELF(); f(&e); return e.build() }
	withNotes := func(n ...[]byte) []byte { return mod(func(e *testELF) { e.ptNotes = notes(n...) }) }
	good := gopvgrubNotes()
	full := gopvgrubELF().build()
	// Segment 1's file size (≤ its memory size) past the end of the file.
	pastEnd := bytes.Clone(full)
	binary.LittleEndian.PutUint64(pastEnd[64+elf64PhdrLen+32:], 0x80000)
	return []badImage{
		{"no notes", mod(func(e *testELF) { e.ptNotes = nil }), ErrNotPV, "not built with CONFIG_XEN_PV"},
		{"only other notes", mod(func(e *testELF) { e.ptNotes = note("GNU", 3, []byte("id")) }), ErrNotPV, "no Xen PV notes"},
		{"32-bit", mod(func(e *testELF) { e.class = 1 }), Err32Bit, "x86_64 PV kernels only"},
		{"i386 machine", mod(func(e *testELF) { e.machine = emI386 }), Err32Bit, "32-bit kernel"},
		{"arm64", mod(func(e *testELF) { e.machine = 183 }), ErrBadELF, "machine 183"},
		{"not ELF", []byte("MZ this is not a kernel at all"), ErrNotKernel, "not a kernel"},
		{"empty", nil, ErrNotKernel, "not a kernel"},
		{"truncated header", mod(func(e *testELF) { e.truncatedAt = 40 }), ErrBadELF, "truncated ELF header"},
		{"phdrs past end", mod(func(e *testELF) { e.extraPhdrs = 2000 }), ErrBadELF, "program headers past end"},
		{"small phentsize", mod(func(e *testELF) { e.phentsize = 20 }), ErrBadELF, "program header size"},
		{"wrong loader", withNotes(xstr(NoteGuestOS, "netbsd"), xstr(NoteXenVersion, "xen-3.0"), xstr(NoteLoader, "special")),
			ErrUnsupported, "generic loader or Linux"},
		{"wrong xen version", withNotes(xstr(NoteGuestOS, "linux"), xstr(NoteXenVersion, "xen-2.0")),
			ErrUnsupported, "xen-3.0"},
		{"paddr offset without virt base", withNotes(xstr(NoteGuestOS, "linux"), xstr(NoteXenVersion, "xen-3.0"), xnum(NotePaddrOffset, 0x1000)),
			ErrBadParams, "VIRT_BASE unset"},
		{"entry outside kernel", withNotes(append([][]byte{good}, xnum(NoteEntry, 0x900000))...),
			ErrBadParams, "out of bounds"},
		{"virt base above kernel", withNotes(xstr(NoteGuestOS, "linux"), xstr(NoteXenVersion, "xen-3.0"), xnum(NoteVirtBase, 0x800000), xnum(NotePaddrOffset, 0x800000)),
			ErrBadParams, "out of bounds"},
		{"init p2m inside kernel", withNotes(good, xnum(NoteInitP2M, 0x401000)), ErrBadParams, "INIT_P2M"},
		{"requires dom0", withNotes(good, xstr(NoteFeatures, "!dom0")), ErrUnsupported, "requires Xen feature dom0 which this domain lacks"},
		{"requires translation", withNotes(good, xstr(NoteFeatures, "writable_page_tables|!auto_translated_physmap")),
			ErrUnsupported, "auto_translated_physmap which this domain lacks"},
		{"requires unknown", withNotes(good, xstr(NoteFeatures, "!time_travel")), ErrUnsupported, `"time_travel"`},
		{"bsd symtab", withNotes(good, xstr(NoteBSDSymtab, "yes")), ErrUnsupported, "BSD_SYMTAB"},
		{"truncated note", withNotes(good, []byte{4, 0, 0, 0, 100, 0, 0, 0, 1, 0, 0, 0, 'X', 'e', 'n', 0}), ErrBadELF, "runs past"},
		{"short note header", withNotes(good, []byte{4, 0, 0, 0}), ErrBadELF, "truncated note header"},
		{"huge namesz", withNotes(good, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0, 0, 0}), ErrBadELF, "runs past"},
		{"no loadable segments", mod(func(e *testELF) { e.loads = nil }), ErrBadELF, "no loadable"},
		{"bss-only segment", mod(func(e *testELF) { e.loads[0].data = nil; e.loads[0].memsz = 0x10 }), nil, ""},
		{"wrapping segment", mod(func(e *testELF) { e.loads[1].paddr = ^uint64(0) - 10 }), ErrBadELF, "wraps"},
		{"section headers past end", full[:len(full)-10], ErrBadELF, "section headers past end"},
		{"segment data past end", pastEnd, ErrBadELF, "segment 1 data past end"},
	}
}

// TestBadImages: each malformed or unacceptable image gives its error.
func TestBadImages(t *testing.T) {
	for _, tc := range badImages() {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKernelBytes(tc.img, 1<<20)
			if tc.is == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.is, tc.msg)
			}
		})
	}
}

func TestTooManyNotes(t *testing.T) {
	one := note("Xen", 99, nil)
	e := gopvgrubELF()
	e.ptNotes = append(gopvgrubNotes(), bytes.Repeat(one, maxNotes)...)
	_, err := ParseKernelBytes(e.build(), 64<<20)
	if !errors.Is(err, ErrBadELF) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v", err)
	}
}

// TestLoad places segments by p_paddr, zero-fills to p_memsz and leaves
// the gaps alone.
func TestLoad(t *testing.T) {
	k, err := ParseKernelBytes(linuxELF().build(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if k.ImageSize() != 0xa000 {
		t.Fatalf("image size %#x", k.ImageSize())
	}
	dst := bytes.Repeat([]byte{0xee}, int(k.ImageSize()))
	if err := k.Load(dst); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0xee}, 0xa000)
	copy(want, bytes.Repeat([]byte{0x90}, 0x3000))
	copy(want[0x3000:0x5000], append([]byte("percpu"), make([]byte, 0x2000-6)...))
	copy(want[0x5000:0xa000], append([]byte("init"), make([]byte, 0x5000-4)...))
	if !bytes.Equal(dst, want) {
		t.Fatal("loaded image differs")
	}
	if err := k.Load(make([]byte, 100)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("short buffer: %v", err)
	}
}
