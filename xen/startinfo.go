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
	SIOffMagic         = 0
	SIOffMagicLen      = 32
	SIOffNrPages       = 32
	SIOffSharedInfo    = 40
	SIOffFlags         = 48
	SIOffStoreMFN      = 56
	SIOffStoreEvtchn   = 64
	SIOffConsoleMFN    = 72 // console.domU.mfn (dom0: console.dom0.info_off)
	SIOffConsoleEvtchn = 80 // console.domU.evtchn
	SIOffPTBase        = 88
	SIOffNrPTFrames    = 96
	SIOffMFNList       = 104
	SIOffModStart      = 112
	SIOffModLen        = 120
	SIOffCmdLine       = 128
	SIOffFirstP2MPFN   = 1152
	SIOffNrP2MFrames   = 1160
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
	magic, ok := cString(b[SIOffMagic : SIOffMagic+SIOffMagicLen])
	if !ok || magic != StartInfoMagic {
		return StartInfo{}, ErrStartInfoMagic
	}
	cmd, ok := cString(b[SIOffCmdLine : SIOffCmdLine+MaxGuestCmdline])
	if !ok {
		return StartInfo{}, ErrStartInfoCmdline
	}
	le := binary.LittleEndian
	return StartInfo{
		Magic:         magic,
		NrPages:       le.Uint64(b[SIOffNrPages:]),
		SharedInfo:    le.Uint64(b[SIOffSharedInfo:]),
		Flags:         le.Uint32(b[SIOffFlags:]),
		StoreMFN:      MFN(le.Uint64(b[SIOffStoreMFN:])),
		StoreEvtchn:   Port(le.Uint32(b[SIOffStoreEvtchn:])),
		ConsoleMFN:    MFN(le.Uint64(b[SIOffConsoleMFN:])),
		ConsoleEvtchn: Port(le.Uint32(b[SIOffConsoleEvtchn:])),
		PTBase:        le.Uint64(b[SIOffPTBase:]),
		NrPTFrames:    le.Uint64(b[SIOffNrPTFrames:]),
		MFNList:       le.Uint64(b[SIOffMFNList:]),
		ModStart:      le.Uint64(b[SIOffModStart:]),
		ModLen:        le.Uint64(b[SIOffModLen:]),
		CmdLine:       cmd,
		FirstP2MPFN:   le.Uint64(b[SIOffFirstP2MPFN:]),
		NrP2MFrames:   le.Uint64(b[SIOffNrP2MFrames:]),
	}, nil
}

// Marshal encodes s as the 1168 bytes of a start_info page. Padding is
// zero. Magic and CmdLine are cut to fit their arrays with the NUL
// terminator (31 and 1023 bytes) and end at an embedded NUL, exactly as
// the guest would read them back; callers that must not lose bytes check
// the lengths first.
func (s StartInfo) Marshal() []byte {
	b := make([]byte, StartInfoSize)
	putCString(b[SIOffMagic:SIOffMagic+SIOffMagicLen], s.Magic)
	le := binary.LittleEndian
	le.PutUint64(b[SIOffNrPages:], s.NrPages)
	le.PutUint64(b[SIOffSharedInfo:], s.SharedInfo)
	le.PutUint32(b[SIOffFlags:], s.Flags)
	le.PutUint64(b[SIOffStoreMFN:], uint64(s.StoreMFN))
	le.PutUint32(b[SIOffStoreEvtchn:], uint32(s.StoreEvtchn))
	le.PutUint64(b[SIOffConsoleMFN:], uint64(s.ConsoleMFN))
	le.PutUint32(b[SIOffConsoleEvtchn:], uint32(s.ConsoleEvtchn))
	le.PutUint64(b[SIOffPTBase:], s.PTBase)
	le.PutUint64(b[SIOffNrPTFrames:], s.NrPTFrames)
	le.PutUint64(b[SIOffMFNList:], s.MFNList)
	le.PutUint64(b[SIOffModStart:], s.ModStart)
	le.PutUint64(b[SIOffModLen:], s.ModLen)
	putCString(b[SIOffCmdLine:SIOffCmdLine+MaxGuestCmdline], s.CmdLine)
	le.PutUint64(b[SIOffFirstP2MPFN:], s.FirstP2MPFN)
	le.PutUint64(b[SIOffNrP2MFrames:], s.NrP2MFrames)
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
