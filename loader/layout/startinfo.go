package layout

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/gopvgrub/gopvgrub/xen"
)

// start_info_t for x86_64: the offsets are package xen's (SIOff*, checked
// against gcc there and in this package's tests).
const (
	// StartInfoSize is sizeof(start_info_t) on x86_64.
	StartInfoSize = xen.StartInfoSize
	// MaxCmdline is MAX_GUEST_CMDLINE; the last byte stays NUL.
	MaxCmdline = xen.MaxGuestCmdline
)

// StartInfoMagic is the start_info magic of a 64-bit PV guest (the guest
// type libxenguest copies in).
const StartInfoMagic = xen.StartInfoMagic

// StartInfo returns the start_info page (4096 bytes, the rest zero) as
// start_info_x86_64 fills it, with the store and console MFNs and event
// channels of Options: the executor maps those MFNs at StorePFN and
// ConsolePFN.
func (l *Layout) StartInfo() []byte {
	p := make([]byte, PageSize)
	le := binary.LittleEndian
	copy(p[xen.SIOffMagic:xen.SIOffMagic+31], StartInfoMagic)
	le.PutUint64(p[xen.SIOffNrPages:], l.Options.NrPages)
	le.PutUint64(p[xen.SIOffSharedInfo:], l.Options.SharedInfoMA)
	le.PutUint32(p[xen.SIOffFlags:], l.Flags)
	le.PutUint64(p[xen.SIOffStoreMFN:], l.Options.StoreMFN)
	le.PutUint32(p[xen.SIOffStoreEvtchn:], l.Options.StoreEvtchn)
	le.PutUint64(p[xen.SIOffConsoleMFN:], l.Options.ConsoleMFN)
	le.PutUint32(p[xen.SIOffConsoleEvtchn:], l.Options.ConsoleEvtchn)
	le.PutUint64(p[xen.SIOffPTBase:], l.PTBase)
	le.PutUint64(p[xen.SIOffNrPTFrames:], l.NrPTFrames)
	le.PutUint64(p[xen.SIOffMFNList:], l.MFNList)
	le.PutUint64(p[xen.SIOffModStart:], l.ModStart)
	le.PutUint64(p[xen.SIOffModLen:], l.ModLen)
	// strncpy(cmd_line, cmdline, 1024) then cmd_line[1023] = 0: stops at
	// a NUL in the string, keeps at most 1023 bytes.
	cmd := l.Options.Cmdline
	if i := strings.IndexByte(cmd, 0); i >= 0 {
		cmd = cmd[:i]
	}
	copy(p[xen.SIOffCmdLine:xen.SIOffCmdLine+MaxCmdline-1], cmd)
	le.PutUint64(p[xen.SIOffFirstP2MPFN:], l.FirstP2MPFN)
	le.PutUint64(p[xen.SIOffNrP2MFrames:], l.NrP2MFrames)
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
