package minios

import "encoding/binary"

// The chainload trampoline: the last code the shim runs. It is written
// into the page that becomes the next kernel's boot stack, which is mapped
// at the same virtual address in the shim's page tables and in the new
// ones, so execution survives the switch of CR3 (xen-pv-abi.md §6.1 step
// 16, §6.4). It is position-independent machine code (RIP-relative loads
// of its parameters from the same page) because nothing else is mapped in
// both hierarchies. Go's assembler cannot emit code meant to run at
// another address, so the bytes are encoded here, each with its mnemonic.
//
// Contract: entered in guest kernel mode with events masked, any RSP, on
// the shim's page tables where this page is mapped at its new address.
// It issues one mmuext_op hypercall — NEW_BASEPTR(new L4) then
// UNPIN_TABLE(old L4) — and, if Xen accepts both, loads RSP, RSI and the
// entry point from the parameter block, zeroes every other general
// register and jumps. If Xen refuses, it executes ud2: with the trap table
// already gone that is a domain crash Xen logs, never a silent hang.

// Offsets in the trampoline page.
const (
	trampOps   = 0x800 // struct mmuext_op[2], 24 bytes each
	trampRSP   = 0x880
	trampRSI   = 0x888
	trampEntry = 0x890
	trampEnd   = 0x898
)

// encodeTrampoline writes the machine code at the start of page and
// returns its length. It writes in place, allocating nothing: the shim
// runs it in kernel mode, where the Go heap is off limits.
func encodeTrampoline(page []byte) int {
	n := 0
	emit := func(b ...byte) { n += copy(page[n:], b) }
	// ripRel emits an instruction whose last 4 bytes are a RIP-relative
	// displacement to the page offset target.
	ripRel := func(target int, prefix ...byte) {
		emit(prefix...)
		binary.LittleEndian.PutUint32(page[n:], uint32(int32(target-(n+4))))
		n += 4
	}
	ripRel(trampOps, 0x48, 0x8d, 0x3d)       // lea rdi, [rip+ops]
	emit(0xbe, 0x02, 0x00, 0x00, 0x00)       // mov esi, 2          (count)
	emit(0x31, 0xd2)                         // xor edx, edx        (pdone = NULL)
	emit(0x41, 0xba, 0xf0, 0x7f, 0x00, 0x00) // mov r10d, 0x7ff0    (DOMID_SELF)
	emit(0xb8, hcMMUExtOp, 0x00, 0x00, 0x00) // mov eax, 26         (__HYPERVISOR_mmuext_op)
	emit(0x0f, 0x05)                         // syscall             (a hypercall from kernel mode)
	emit(0x48, 0x85, 0xc0)                   // test rax, rax
	emit(0x75, 0x00)                         // jnz fail            (patched below)
	jnz := n - 1
	ripRel(trampRSP, 0x48, 0x8b, 0x25)   // mov rsp, [rip+rsp]
	ripRel(trampRSI, 0x48, 0x8b, 0x35)   // mov rsi, [rip+rsi]
	ripRel(trampEntry, 0x48, 0x8b, 0x05) // mov rax, [rip+entry]
	emit(0x31, 0xdb)                     // xor ebx, ebx
	emit(0x31, 0xc9)                     // xor ecx, ecx
	emit(0x31, 0xd2)                     // xor edx, edx
	emit(0x31, 0xff)                     // xor edi, edi
	emit(0x31, 0xed)                     // xor ebp, ebp
	emit(0x45, 0x31, 0xc0)               // xor r8d, r8d
	emit(0x45, 0x31, 0xc9)               // xor r9d, r9d
	emit(0x45, 0x31, 0xd2)               // xor r10d, r10d
	emit(0x45, 0x31, 0xdb)               // xor r11d, r11d
	emit(0x45, 0x31, 0xe4)               // xor r12d, r12d
	emit(0x45, 0x31, 0xed)               // xor r13d, r13d
	emit(0x45, 0x31, 0xf6)               // xor r14d, r14d
	emit(0x45, 0x31, 0xff)               // xor r15d, r15d
	emit(0xff, 0xe0)                     // jmp rax
	page[jnz] = byte(n - (jnz + 1))
	emit(0x0f, 0x0b) // fail: ud2
	emit(0xeb, 0xfc) // jmp fail
	return n
}

// trampolineParams are the values the trampoline reads from its page.
type trampolineParams struct {
	NewL4MFN, OldL4MFN uint64
	RSP, RSI, Entry    uint64
}

// writeTrampoline fills page (4096 bytes, the future boot stack) with the
// code and its parameter block.
func writeTrampoline(page []byte, p trampolineParams) {
	encodeTrampoline(page)
	le := binary.LittleEndian
	// struct mmuext_op { unsigned int cmd; union arg1 (mfn); union arg2; }
	le.PutUint32(page[trampOps:], mmuextNewBaseptr)
	le.PutUint64(page[trampOps+8:], p.NewL4MFN)
	le.PutUint32(page[trampOps+24:], mmuextUnpin)
	le.PutUint64(page[trampOps+32:], p.OldL4MFN)
	le.PutUint64(page[trampRSP:], p.RSP)
	le.PutUint64(page[trampRSI:], p.RSI)
	le.PutUint64(page[trampEntry:], p.Entry)
}
