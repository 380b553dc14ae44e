package loader

import "encoding/binary"

// Hypercall page template (xen-pv-abi.md §3.1). Filling a kernel's
// HYPERCALL_PAGE is privileged (XEN_DOMCTL_hypercall_init), so a
// chainloader writes the stubs itself, byte for byte what Xen writes for
// a 64-bit PV guest (xen/arch/x86/pv/hypercall.c): 128 slots of 32 bytes,
// slot i
//
//	push %rcx; push %r11; mov $i,%eax; syscall; pop %r11; pop %rcx; ret
//
// except slot 23 (iret), which is jumped to and never returns:
//
//	push %rcx; push %r11; push %rax; mov $23,%eax; syscall
//
// The rest of each slot is 0xcc (int3), as Xen fills the page first.
const (
	hypercallSlots    = 128
	hypercallSlotSize = 32
	hypercallIret     = 23
)

// HypercallPage returns the 4096 bytes Xen would put in a 64-bit PV
// kernel's hypercall page.
func HypercallPage() []byte {
	p := make([]byte, hypercallSlots*hypercallSlotSize)
	for i := range p {
		p[i] = 0xcc
	}
	for i := 0; i < hypercallSlots; i++ {
		s := p[i*hypercallSlotSize:]
		if i == hypercallIret {
			copy(s, []byte{0x51, 0x41, 0x53, 0x50, 0xb8, 0, 0, 0, 0, 0x0f, 0x05})
			binary.LittleEndian.PutUint32(s[5:], uint32(i))
			continue
		}
		copy(s, []byte{0x51, 0x41, 0x53, 0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3})
		binary.LittleEndian.PutUint32(s[4:], uint32(i))
	}
	return p
}
