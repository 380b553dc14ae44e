package xen

import "encoding/binary"

// StartInfoSize is sizeof(start_info_t) on x86_64 (xen.h).
const StartInfoSize = 1168

// MaxGuestCmdline is the size of start_info.cmd_line, NUL included
// (xen.h MAX_GUEST_CMDLINE).
const MaxGuestCmdline = 1024

// StartInfoMagic is the magic Xen writes for a 64-bit PV guest. The
// layout below is only valid for it.
const StartInfoMagic = "xen-3.0-x86_64"

// Offsets in struct start_info (xen.h, x86_64: unsigned long and
// xen_pfn_t are 8 bytes). Checked against gcc in startinfo_test.go.
const (
	siMagic         = 0
	siMagicLen      = 32
	siNrPages       = 32
	siSharedInfo    = 40
	siFlags         = 48
	siStoreMFN      = 56
	siStoreEvtchn   = 64
	siConsoleMFN    = 72 // console.domU.mfn (dom0: console.dom0.info_off)
	siConsoleEvtchn = 80 // console.domU.evtchn
	siPTBase        = 88
	siNrPTFrames    = 96
	siMFNList       = 104
	siModStart      = 112
	siModLen        = 120
	siCmdLine       = 128
	siFirstP2MPFN   = 1152
	siNrP2MFrames   = 1160
)

// Errors from ParseStartInfo.
const (
	ErrStartInfoShort   = Error("xen: start_info shorter than 1168 bytes")
	ErrStartInfoMagic   = Error("xen: start_info magic is not " + StartInfoMagic)
	ErrStartInfoCmdline = Error("xen: start_info command line is not NUL-terminated")
)

// StartInfo is struct start_info (xen.h), the page whose virtual address
// a PV guest finds in RSI at entry and which a chainloader writes for the
// next kernel. The console fields are the domU member of the union.
type StartInfo struct {
	Magic         string // "xen-3.0-x86_64"
	NrPages       uint64 // pages allocated to the domain
	SharedInfo    uint64 // MACHINE address of shared_info
	Flags         uint32 // SIF*
	StoreMFN      MFN    // xenstore ring page
	StoreEvtchn   Port
	ConsoleMFN    MFN // console ring page (console.domU.mfn)
	ConsoleEvtchn Port
	PTBase        uint64 // virtual address of the L4 table
	NrPTFrames    uint64 // bootstrap page-table frames
	MFNList       uint64 // virtual address of the P2M array
	ModStart      uint64 // virtual address (or PFN with SIFModStartPFN) of the module
	ModLen        uint64 // module size in bytes
	CmdLine       string // at most MaxGuestCmdline-1 bytes
	FirstP2MPFN   uint64 // first PFN of the initial P2M (INIT_P2M case)
	NrP2MFrames   uint64
}

// ParseStartInfo decodes a start_info page. The input is only as trusted
// as its source (a chainloader hands the next kernel one it built), so
// strings must be NUL-terminated within their arrays.
func ParseStartInfo(b []byte) (StartInfo, error) {
	if len(b) < StartInfoSize {
		return StartInfo{}, ErrStartInfoShort
	}
	magic, ok := cString(b[siMagic : siMagic+siMagicLen])
	if !ok || magic != StartInfoMagic {
		return StartInfo{}, ErrStartInfoMagic
	}
	cmd, ok := cString(b[siCmdLine : siCmdLine+MaxGuestCmdline])
	if !ok {
		return StartInfo{}, ErrStartInfoCmdline
	}
	le := binary.LittleEndian
	return StartInfo{
		Magic:         magic,
		NrPages:       le.Uint64(b[siNrPages:]),
		SharedInfo:    le.Uint64(b[siSharedInfo:]),
		Flags:         le.Uint32(b[siFlags:]),
		StoreMFN:      MFN(le.Uint64(b[siStoreMFN:])),
		StoreEvtchn:   Port(le.Uint32(b[siStoreEvtchn:])),
		ConsoleMFN:    MFN(le.Uint64(b[siConsoleMFN:])),
		ConsoleEvtchn: Port(le.Uint32(b[siConsoleEvtchn:])),
		PTBase:        le.Uint64(b[siPTBase:]),
		NrPTFrames:    le.Uint64(b[siNrPTFrames:]),
		MFNList:       le.Uint64(b[siMFNList:]),
		ModStart:      le.Uint64(b[siModStart:]),
		ModLen:        le.Uint64(b[siModLen:]),
		CmdLine:       cmd,
		FirstP2MPFN:   le.Uint64(b[siFirstP2MPFN:]),
		NrP2MFrames:   le.Uint64(b[siNrP2MFrames:]),
	}, nil
}

// Marshal encodes s as the 1168 bytes of a start_info page. Padding is
// zero. Magic and CmdLine are cut to fit their arrays with the NUL
// terminator (31 and 1023 bytes) and end at an embedded NUL, exactly as
// the guest would read them back; callers that must not lose bytes check
// the lengths first.
func (s StartInfo) Marshal() []byte {
	b := make([]byte, StartInfoSize)
	putCString(b[siMagic:siMagic+siMagicLen], s.Magic)
	le := binary.LittleEndian
	le.PutUint64(b[siNrPages:], s.NrPages)
	le.PutUint64(b[siSharedInfo:], s.SharedInfo)
	le.PutUint32(b[siFlags:], s.Flags)
	le.PutUint64(b[siStoreMFN:], uint64(s.StoreMFN))
	le.PutUint32(b[siStoreEvtchn:], uint32(s.StoreEvtchn))
	le.PutUint64(b[siConsoleMFN:], uint64(s.ConsoleMFN))
	le.PutUint32(b[siConsoleEvtchn:], uint32(s.ConsoleEvtchn))
	le.PutUint64(b[siPTBase:], s.PTBase)
	le.PutUint64(b[siNrPTFrames:], s.NrPTFrames)
	le.PutUint64(b[siMFNList:], s.MFNList)
	le.PutUint64(b[siModStart:], s.ModStart)
	le.PutUint64(b[siModLen:], s.ModLen)
	putCString(b[siCmdLine:siCmdLine+MaxGuestCmdline], s.CmdLine)
	le.PutUint64(b[siFirstP2MPFN:], s.FirstP2MPFN)
	le.PutUint64(b[siNrP2MFrames:], s.NrP2MFrames)
	return b
}

// cString returns the bytes of b before the first NUL, and false if b has
// no NUL.
func cString(b []byte) (string, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), true
		}
	}
	return "", false
}

// putCString copies s into dst, cut at its first NUL and to len(dst)-1
// bytes; the rest of dst is already zero.
func putCString(dst []byte, s string) {
	n := 0
	for n < len(s) && n < len(dst)-1 && s[n] != 0 {
		n++
	}
	copy(dst, s[:n])
}
