package loader

import (
	"bytes"
	"testing"
)

// TestHypercallPage checks slots against the instruction bytes of
// xen/arch/x86/pv/hypercall.c pv_ring3_init_hypercall_page.
func TestHypercallPage(t *testing.T) {
	p := HypercallPage()
	if len(p) != 4096 {
		t.Fatalf("%d bytes", len(p))
	}
	pad := func(b []byte) []byte { return append(b, bytes.Repeat([]byte{0xcc}, 32-len(b))...) }
	for _, tc := range []struct {
		slot int
		want []byte
	}{
		// push %rcx; push %r11; mov $0,%eax; syscall; pop %r11; pop %rcx; ret
		{0, pad([]byte{0x51, 0x41, 0x53, 0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3})},
		{29, pad([]byte{0x51, 0x41, 0x53, 0xb8, 29, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3})},
		// iret: push %rcx; push %r11; push %rax; mov $23,%eax; syscall
		{23, pad([]byte{0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05})},
		{127, pad([]byte{0x51, 0x41, 0x53, 0xb8, 127, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3})},
	} {
		if got := p[tc.slot*32 : tc.slot*32+32]; !bytes.Equal(got, tc.want) {
			t.Errorf("slot %d: % x\nwant    % x", tc.slot, got, tc.want)
		}
	}
}
