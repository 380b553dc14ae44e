package layout

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// start_info_t for x86_64 (xen/include/public/xen.h), 1168 bytes.
const (
	siMagic       = 0
	siNrPages     = 32
	siSharedInfo  = 40
	siFlags       = 48
	siStoreMFN    = 56
	siStoreEvtchn = 64
	siConsoleMFN  = 72
	siConsoleEvt  = 80
	siPTBase      = 88
	siNrPTFrames  = 96
	siMFNList     = 104
	siModStart    = 112
	siModLen      = 120
	siCmdline     = 128
	siFirstP2MPFN = 1152
	siNrP2MFrames = 1160
	// StartInfoSize is sizeof(start_info_t) on x86_64.
	StartInfoSize = 1168
	// MaxCmdline is MAX_GUEST_CMDLINE; the last byte stays NUL.
	MaxCmdline = 1024
)

// StartInfoMagic is the start_info magic of a 64-bit PV guest (the guest
// type libxenguest copies in).
const StartInfoMagic = "xen-3.0-x86_64"

// StartInfo returns the start_info page (4096 bytes, the rest zero) as
// start_info_x86_64 fills it, with the store and console MFNs and event
// channels of Options: the executor maps those MFNs at StorePFN and
// ConsolePFN.
func (l *Layout) StartInfo() []byte {
	p := make([]byte, PageSize)
	le := binary.LittleEndian
	copy(p[siMagic:siMagic+31], StartInfoMagic)
	le.PutUint64(p[siNrPages:], l.Options.NrPages)
	le.PutUint64(p[siSharedInfo:], l.Options.SharedInfoMA)
	le.PutUint32(p[siFlags:], l.Flags)
	le.PutUint64(p[siStoreMFN:], l.Options.StoreMFN)
	le.PutUint32(p[siStoreEvtchn:], l.Options.StoreEvtchn)
	le.PutUint64(p[siConsoleMFN:], l.Options.ConsoleMFN)
	le.PutUint32(p[siConsoleEvt:], l.Options.ConsoleEvtchn)
	le.PutUint64(p[siPTBase:], l.PTBase)
	le.PutUint64(p[siNrPTFrames:], l.NrPTFrames)
	le.PutUint64(p[siMFNList:], l.MFNList)
	le.PutUint64(p[siModStart:], l.ModStart)
	le.PutUint64(p[siModLen:], l.ModLen)
	// strncpy(cmd_line, cmdline, 1024) then cmd_line[1023] = 0: stops at
	// a NUL in the string, keeps at most 1023 bytes.
	cmd := l.Options.Cmdline
	if i := strings.IndexByte(cmd, 0); i >= 0 {
		cmd = cmd[:i]
	}
	copy(p[siCmdline:siCmdline+MaxCmdline-1], cmd)
	le.PutUint64(p[siFirstP2MPFN:], l.FirstP2MPFN)
	le.PutUint64(p[siNrP2MFrames:], l.NrP2MFrames)
	return p
}

// Entry is the vCPU state at the kernel's entry (vcpu_x86_64): RIP, RSP
// the top of the boot stack, RSI the start_info address.
type Entry struct {
	RIP, RSP, RSI uint64
	PTBasePFN     uint64 // CR3 is the MFN of this PFN (the L4), pinned
}

// Entry returns the registers the kernel starts with.
func (l *Layout) Entry() Entry {
	return Entry{
		RIP:       l.Image.Entry,
		RSP:       l.Image.VirtBase + (l.BootStackPFN+1)*PageSize,
		RSI:       l.Image.VirtBase + l.StartInfoPFN*PageSize,
		PTBasePFN: l.PageTables.PFN,
	}
}

// Summary is a canonical text form of the layout, one key=value per line
// in a fixed order, numbers in hex: what a test bed can print from what
// Xen really built (start_info, the entry registers, the M2P of the store
// and console MFNs) and compare line by line.
func (l *Layout) Summary() string {
	var b strings.Builder
	kv := func(k string, v uint64) { fmt.Fprintf(&b, "%s=%#x\n", k, v) }
	e := l.Entry()
	kv("virt_base", l.Image.VirtBase)
	kv("nr_pages", l.Options.NrPages)
	kv("kernel_pad_pages", l.KernelPadPages)
	kv("kernel_vstart", l.Kernel.VStart)
	kv("kernel_vend", l.Kernel.VEnd)
	kv("kernel_pfn", l.Kernel.PFN)
	kv("kernel_pages", l.Kernel.Pages)
	kv("initrd_pfn", l.Initrd.PFN)
	kv("initrd_pages", l.Initrd.Pages)
	kv("mod_start", l.ModStart)
	kv("mod_len", l.ModLen)
	kv("mfn_list", l.MFNList)
	kv("p2m_pfn", l.P2M.PFN)
	kv("p2m_pages", l.P2M.Pages)
	kv("start_info_pfn", l.StartInfoPFN)
	kv("store_pfn", l.StorePFN)
	kv("console_pfn", l.ConsolePFN)
	kv("pt_base", l.PTBase)
	kv("pt_pfn", l.PageTables.PFN)
	kv("nr_pt_frames", l.NrPTFrames)
	for lvl := levels; lvl >= 1; lvl-- {
		lv := l.Mappings[0].Levels[lvl-1]
		kv(fmt.Sprintf("l%d_pfn", lvl), lv.PFN)
		kv(fmt.Sprintf("l%d_tables", lvl), lv.Tables)
	}
	kv("bootstack_pfn", l.BootStackPFN)
	kv("virt_alloc_end", l.VirtAllocEnd)
	kv("virt_pgtab_end", l.VirtPgtabEnd)
	kv("pfn_alloc_end", l.PFNAllocEnd)
	kv("first_p2m_pfn", l.FirstP2MPFN)
	kv("nr_p2m_frames", l.NrP2MFrames)
	if len(l.Mappings) > 1 {
		for lvl := levels - 1; lvl >= 1; lvl-- {
			lv := l.Mappings[1].Levels[lvl-1]
			kv(fmt.Sprintf("p2m_l%d_pfn", lvl), lv.PFN)
			kv(fmt.Sprintf("p2m_l%d_tables", lvl), lv.Tables)
		}
	}
	kv("flags", uint64(l.Flags))
	kv("rip", e.RIP)
	kv("rsp", e.RSP)
	kv("rsi", e.RSI)
	if l.HypercallPFN != Unset {
		kv("hypercall_pfn", l.HypercallPFN)
	}
	return b.String()
}
