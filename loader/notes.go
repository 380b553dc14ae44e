package loader

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Xen ELF note types (xen/include/public/elfnote.h).
const (
	NoteInfo              = 0
	NoteEntry             = 1
	NoteHypercallPage     = 2
	NoteVirtBase          = 3
	NotePaddrOffset       = 4
	NoteXenVersion        = 5
	NoteGuestOS           = 6
	NoteGuestVersion      = 7
	NoteLoader            = 8
	NotePAEMode           = 9
	NoteFeatures          = 10
	NoteBSDSymtab         = 11
	NoteHVStartLow        = 12
	NoteL1MFNValid        = 13
	NoteSuspendCancel     = 14
	NoteInitP2M           = 15
	NoteModStartPFN       = 16
	NoteSupportedFeatures = 17
	NotePhys32Entry       = 18
	NotePhys32Reloc       = 19
)

// noteKinds says how libelf reads each note it knows (libelf-dominfo.c);
// other types are ignored.
var noteKinds = map[uint32]struct {
	name string
	kind byte // 'n' number, 's' string, '-' presence only
}{
	NoteEntry:             {"ENTRY", 'n'},
	NoteHypercallPage:     {"HYPERCALL_PAGE", 'n'},
	NoteVirtBase:          {"VIRT_BASE", 'n'},
	NotePaddrOffset:       {"PADDR_OFFSET", 'n'},
	NoteXenVersion:        {"XEN_VERSION", 's'},
	NoteGuestOS:           {"GUEST_OS", 's'},
	NoteGuestVersion:      {"GUEST_VERSION", 's'},
	NoteLoader:            {"LOADER", 's'},
	NotePAEMode:           {"PAE_MODE", 's'},
	NoteFeatures:          {"FEATURES", 's'},
	NoteBSDSymtab:         {"BSD_SYMTAB", 's'},
	NoteHVStartLow:        {"HV_START_LOW", 'n'},
	NoteL1MFNValid:        {"L1_MFN_VALID", '-'},
	NoteSuspendCancel:     {"SUSPEND_CANCEL", 'n'},
	NoteInitP2M:           {"INIT_P2M", 'n'},
	NoteModStartPFN:       {"MOD_START_PFN", 'n'},
	NoteSupportedFeatures: {"SUPPORTED_FEATURES", 'n'},
	NotePhys32Entry:       {"PHYS32_ENTRY", 'n'},
	NotePhys32Reloc:       {"PHYS32_RELOC", '-'},
}

// NoteName returns the name of a Xen note type ("VIRT_BASE"), or "" if
// libelf does not know it.
func NoteName(typ uint32) string { return noteKinds[typ].name }

// Unset marks an address-valued parameter the image did not give, as
// libelf's UNSET_ADDR.
const Unset = ^uint64(0)

// Xen feature bits (xen/include/public/features.h) that libelf knows by
// name; FEATURES strings may name only these.
var featureNames = map[string]uint{
	"writable_page_tables":       0,
	"writable_descriptor_tables": 1,
	"auto_translated_physmap":    2,
	"supervisor_mode_kernel":     3,
	"pae_pgdir_above_4gb":        4,
	"hvm_callback_vector":        8,
	"dom0":                       11,
}

// Feature bits the loader checks.
const (
	FeatureAutoTranslatedPhysmap = 2
	FeatureDom0                  = 11
)

// FeatureName returns the name of feature bit n, or "feature<n>".
func FeatureName(n uint) string {
	for name, bit := range featureNames {
		if bit == n {
			return name
		}
	}
	return fmt.Sprintf("feature%d", n)
}

// Note is one raw ELF note named "Xen".
type Note struct {
	Type uint32
	Desc []byte
}

// Params are the Xen parameters of a PV kernel image, as libelf's
// elf_dom_parms after elf_xen_parse: address fields are Unset when
// neither the image nor a default gave them.
type Params struct {
	// Source says where the parameters came from: "PT_NOTE",
	// "SHT_NOTE" or "__xen_guest" (legacy string).
	Source string
	Notes  []Note // raw Xen notes, in file order

	GuestOS, GuestVersion, XenVersion, Loader string
	PAEMode, Features                         string
	BSDSymtab                                 bool

	VirtBase      uint64 // VIRT_BASE (default 0)
	PaddrOffset   uint64 // PADDR_OFFSET (default 0, legacy: VIRT_BASE)
	Entry         uint64 // ENTRY (default e_entry)
	HypercallPage uint64 // HYPERCALL_PAGE VA, or Unset
	InitP2M       uint64 // INIT_P2M: VA for the P2M list, or Unset
	HVStartLow    uint64
	// ModStartPFN: the kernel accepts an initrd outside the initial
	// mapping, given by PFN (MOD_START_PFN).
	ModStartPFN   bool
	SuspendCancel bool
	// FeaturesSupported and FeaturesRequired are XENFEAT bitmaps (one
	// 32-bit submap, as Xen has).
	FeaturesSupported, FeaturesRequired uint32

	// Derived by elf_xen_addr_calc_check.
	VirtOffset uint64 // VIRT_BASE - PADDR_OFFSET
	KStart     uint64 // lowest loadable p_paddr + VirtOffset
	KEnd       uint64 // highest p_paddr+p_memsz + VirtOffset
}

// maxNotes bounds the notes scanned over all note areas, as libelf's
// ELF_MAX_TOTAL_NOTE_COUNT.
const maxNotes = 65536

// maxString is libelf's ELF_MAX_STRING_LENGTH.
const maxString = 4096

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// parseNoteArea reads the notes in the file's [start, end) into p and
// returns how many were Xen notes. Strings are read as libelf does: from
// the start of desc up to a NUL, which may lie in the padding after desc
// (Linux's FEATURES note is not NUL-terminated within its descsz) or past
// the area, so the area is read with maxString bytes more.
func (p *Params) parseNoteArea(d elfData, start, end uint64, total *int) (int, error) {
	size, known := d.size()
	if start > end || known && (start > size || end > size) {
		return 0, fmt.Errorf("%w: note area [%#x, %#x) outside the file", ErrBadELF, start, end)
	}
	b, err := d.at(start, satAdd(end-start, maxString+1))
	if err != nil {
		return 0, err
	}
	if uint64(len(b)) < end-start {
		return 0, fmt.Errorf("%w: note area [%#x, %#x) outside the file", ErrBadELF, start, end)
	}
	// Offsets below are relative to start.
	le := binary.LittleEndian
	n := 0
	for off, rend := uint64(0), end-start; off < rend; {
		if *total >= maxNotes {
			return n, fmt.Errorf("%w: more than %d ELF notes", ErrBadELF, maxNotes)
		}
		*total++
		if rend-off < 12 {
			return n, fmt.Errorf("%w: truncated note header at %#x", ErrBadELF, start+off)
		}
		namesz, descsz, typ := uint64(le.Uint32(b[off:])), uint64(le.Uint32(b[off+4:])), le.Uint32(b[off+8:])
		nameOff := off + 12
		descOff := nameOff + align4(namesz)
		next := descOff + align4(descsz)
		if next > rend {
			return n, fmt.Errorf("%w: note at %#x runs past its area", ErrBadELF, start+off)
		}
		off = next
		name := b[nameOff : nameOff+namesz]
		if i := strings.IndexByte(string(name), 0); i >= 0 {
			name = name[:i]
		}
		if string(name) != "Xen" {
			continue
		}
		n++
		desc := b[descOff : descOff+descsz]
		p.Notes = append(p.Notes, Note{Type: typ, Desc: desc})
		if err := p.applyNote(b, typ, descOff, desc); err != nil {
			return n, err
		}
	}
	return n, nil
}

// satAdd is a+b, or the largest uint64 if that overflows.
func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// noteNumber reads a numeric note as libelf: sizes 1, 2, 4 and 8 only,
// anything else reads as 0.
func noteNumber(desc []byte) uint64 {
	switch len(desc) {
	case 1:
		return uint64(desc[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(desc))
	case 4:
		return uint64(binary.LittleEndian.Uint32(desc))
	case 8:
		return binary.LittleEndian.Uint64(desc)
	}
	return 0
}

func (p *Params) applyNote(b []byte, typ uint32, descOff uint64, desc []byte) error {
	k, ok := noteKinds[typ]
	if !ok {
		return nil
	}
	var str string
	var val uint64
	switch k.kind {
	case 's':
		s, ok := cStringBytes(b, descOff, maxString)
		if !ok {
			return nil // libelf ignores a string note it cannot read
		}
		str = s
	case 'n':
		val = noteNumber(desc)
	}
	switch typ {
	case NoteLoader:
		p.Loader = str
	case NoteGuestOS:
		p.GuestOS = str
	case NoteGuestVersion:
		p.GuestVersion = str
	case NoteXenVersion:
		p.XenVersion = str
	case NotePAEMode:
		p.PAEMode = str
	case NoteBSDSymtab:
		p.BSDSymtab = str == "yes"
	case NoteVirtBase:
		p.VirtBase = val
	case NoteEntry:
		p.Entry = val
	case NoteInitP2M:
		p.InitP2M = val
	case NoteModStartPFN:
		p.ModStartPFN = val != 0
	case NotePaddrOffset:
		p.PaddrOffset = val
	case NoteHypercallPage:
		p.HypercallPage = val
	case NoteHVStartLow:
		p.HVStartLow = val
	case NoteSuspendCancel:
		p.SuspendCancel = val != 0
	case NoteFeatures:
		p.Features = str
		return p.parseFeatures(str)
	case NoteSupportedFeatures:
		// elf_note_numeric_array(note, 4, 0): first 32-bit word.
		if len(desc) >= 4 && len(desc)%4 == 0 {
			p.FeaturesSupported |= binary.LittleEndian.Uint32(desc)
		}
	}
	return nil
}

// parseFeatures reads a FEATURES string: names separated by '|', a '!'
// prefix marks a feature the kernel requires. Unknown names are ignored
// unless required (libelf's elf_xen_parse_features).
func (p *Params) parseFeatures(s string) error {
	for _, f := range strings.Split(s, "|") {
		if f == "" {
			continue
		}
		req := strings.HasPrefix(f, "!")
		name := strings.TrimPrefix(f, "!")
		bit, ok := featureNames[name]
		if !ok {
			if req {
				return fmt.Errorf("%w: kernel requires Xen feature %q, which Xen does not know", ErrUnsupported, name)
			}
			continue
		}
		p.FeaturesSupported |= 1 << bit
		if req {
			p.FeaturesRequired |= 1 << bit
		}
	}
	return nil
}

// parseGuestInfo reads the legacy "__xen_guest" section string
// "KEY=VALUE,KEY=VALUE,…" (elf_xen_parse_guest_info): names are cut at 31
// bytes, values at 127, numbers read like strtoull(…, 0).
func (p *Params) parseGuestInfo(s string) error {
	for len(s) > 0 {
		var item string
		item, s, _ = strings.Cut(s, ",")
		name, value, _ := strings.Cut(item, "=")
		name = name[:min(len(name), 31)]
		value = value[:min(len(value), 127)]
		switch name {
		case "LOADER":
			p.Loader = value
		case "GUEST_OS":
			p.GuestOS = value
		case "GUEST_VER":
			p.GuestVersion = value
		case "XEN_VER":
			p.XenVersion = value
		case "PAE":
			p.PAEMode = value
		case "BSD_SYMTAB":
			p.BSDSymtab = true
		case "VIRT_BASE":
			p.VirtBase = strtoull(value)
		case "VIRT_ENTRY":
			p.Entry = strtoull(value)
		case "ELF_PADDR_OFFSET":
			p.PaddrOffset = strtoull(value)
		case "HYPERCALL_PAGE":
			p.HypercallPage = strtoull(value) << 12 // a page number
		case "FEATURES":
			p.Features = value
			if err := p.parseFeatures(value); err != nil {
				return err
			}
		}
	}
	if p.VirtBase != Unset && p.HypercallPage != Unset {
		p.HypercallPage += p.VirtBase
	}
	return nil
}

// strtoull parses the longest prefix of s that C's strtoull(s, NULL, 0)
// accepts: 0x… hex, 0… octal, else decimal; overflow saturates.
func strtoull(s string) uint64 {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	s = strings.TrimPrefix(s, "+")
	base := uint64(10)
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && hexDigit(s[2]) >= 0:
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d := hexDigit(s[i])
		if d < 0 || uint64(d) >= base {
			break
		}
		if v > (^uint64(0)-uint64(d))/base {
			return ^uint64(0)
		}
		v = v*base + uint64(d)
	}
	return v
}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// xenParams finds and checks the Xen parameters of f the way libelf's
// elf_xen_parse does (PV): notes in PT_NOTE segments; only if there are
// none, notes in SHT_NOTE sections; only if still none, the legacy
// __xen_guest string. Then elf_xen_note_check and elf_xen_addr_calc_check.
func xenParams(f *elfFile) (*Params, error) {
	p := &Params{
		VirtBase:      Unset,
		PaddrOffset:   Unset,
		Entry:         Unset,
		HypercallPage: Unset,
		InitP2M:       Unset,
		HVStartLow:    Unset,
	}
	total, found := 0, 0
	// A PT_NOTE with offset 0 comes from old binutils; libelf skips it.
	isNote := func(ph Segment) bool { return ph.Type == ptNote && ph.Offset != 0 }
	// parseAreas asks the reader for every note area first (a stream
	// keeps just those bytes), then parses them in order.
	parseAreas := func(areas [][2]uint64, what string) (int, error) {
		for _, a := range areas {
			if a[0]+a[1] >= a[0] {
				f.data.want(a[0], satAdd(a[1], maxString+1))
			}
		}
		n := 0
		for _, a := range areas {
			end := a[0] + a[1]
			if end < a[0] {
				return n, fmt.Errorf("%w: note %s wraps", ErrBadELF, what)
			}
			k, err := p.parseNoteArea(f.data, a[0], end, &total)
			if err != nil {
				return n, err
			}
			n += k
		}
		return n, nil
	}
	var segs [][2]uint64
	for _, ph := range f.phdrs {
		if isNote(ph) {
			segs = append(segs, [2]uint64{ph.Offset, ph.Filesz})
		}
	}
	n, err := parseAreas(segs, "segment")
	if err != nil {
		return nil, err
	}
	found += n
	if found > 0 {
		p.Source = "PT_NOTE"
	} else {
		shdrs, err := f.sections()
		if err != nil {
			return nil, err
		}
		var secs [][2]uint64
		for i, sh := range shdrs {
			if i != 0 && sh.typ == shtNote {
				secs = append(secs, [2]uint64{sh.offset, sh.size})
			}
		}
		n, err := parseAreas(secs, "section")
		if err != nil {
			return nil, err
		}
		found += n
		if found > 0 {
			p.Source = "SHT_NOTE"
		}
	}
	if found == 0 {
		sh, ok, err := f.sectionByName("__xen_guest")
		if err != nil {
			return nil, err
		}
		if ok {
			s, ok, err := cString(f.data, sh.offset, 1<<16)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("%w: unterminated __xen_guest string", ErrBadELF)
			}
			p.Source = "__xen_guest"
			if err := p.parseGuestInfo(s); err != nil {
				return nil, err
			}
		}
	}
	if p.Source == "" {
		return nil, ErrNotPV
	}

	// elf_xen_note_check.
	if !strings.HasPrefix(p.Loader, "generic") && !strings.HasPrefix(p.GuestOS, "linux") {
		return nil, fmt.Errorf("%w: LOADER %q and GUEST_OS %q: Xen loads only images for the generic loader or Linux", ErrUnsupported, p.Loader, p.GuestOS)
	}
	if !strings.HasPrefix(p.XenVersion, "xen-3.0") {
		return nil, fmt.Errorf("%w: XEN_VERSION %q, Xen loads only images built for xen-3.0", ErrUnsupported, p.XenVersion)
	}

	// elf_xen_addr_calc_check.
	if p.PaddrOffset != Unset && p.VirtBase == Unset {
		return nil, fmt.Errorf("%w: PADDR_OFFSET set but VIRT_BASE unset", ErrBadParams)
	}
	if p.VirtBase == Unset {
		p.VirtBase = 0
	}
	if p.PaddrOffset == Unset {
		p.PaddrOffset = 0
		if p.Source == "__xen_guest" {
			p.PaddrOffset = p.VirtBase
		}
	}
	if p.BSDSymtab {
		return nil, fmt.Errorf("%w: BSD_SYMTAB images", ErrUnsupported)
	}
	pstart, pend, err := f.loadBounds()
	if err != nil {
		return nil, err
	}
	p.VirtOffset = p.VirtBase - p.PaddrOffset
	p.KStart = pstart + p.VirtOffset
	p.KEnd = pend + p.VirtOffset
	if p.Entry == Unset {
		p.Entry = f.entry
	}
	if p.KStart > p.KEnd || p.Entry < p.KStart || p.Entry > p.KEnd || p.VirtBase > p.KStart {
		return nil, fmt.Errorf("%w: kernel [%#x, %#x), entry %#x, VIRT_BASE %#x: start or entry out of bounds",
			ErrBadParams, p.KStart, p.KEnd, p.Entry, p.VirtBase)
	}
	if p.InitP2M != Unset && p.InitP2M >= p.KStart && p.InitP2M < p.KEnd {
		return nil, fmt.Errorf("%w: INIT_P2M %#x inside the kernel", ErrBadParams, p.InitP2M)
	}

	// libxenguest: a domU cannot boot a kernel that requires dom0
	// (xc_dom_parse_elf_kernel) or an auto-translated physmap (meminit_pv:
	// "PV Autotranslate guests no longer supported").
	for _, bit := range []uint{FeatureDom0, FeatureAutoTranslatedPhysmap} {
		if p.FeaturesRequired&(1<<bit) != 0 {
			return nil, fmt.Errorf("%w: kernel requires Xen feature %s which this domain lacks", ErrUnsupported, FeatureName(bit))
		}
	}
	return p, nil
}
