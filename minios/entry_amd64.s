//go:build xenpv

// Kernel-mode entry and exit of the shim. Xen enters the guest kernel here
// at boot, on every SYSCALL the Go program makes in guest user mode, on
// event-channel upcalls and on exceptions (xen-pv-abi.md §3.3, §4).
//
// The Go program and the shim share one address space; the shim runs on
// its own 64 KiB stack (kstack), registered with stack_switch, so every
// entry from user mode lands on an empty kernel stack and one frame is live
// at a time. Events are masked whenever shim code runs.

#include "textflag.h"
#include "asm_amd64.h"

// xenStart is the ELF entry point (ENTRY note). Contract on entry (the
// domain builder, xg_dom_x86.c): guest kernel mode, RSI = start_info VA,
// RSP = top of the boot stack page, events masked, FS/GS bases 0, no trap
// table and no callbacks. It never returns: kmain prepares thread 0 and
// the common exit path irets to the Go runtime's _rt0_amd64_linux in user
// mode.
TEXT ·xenStart(SB),NOSPLIT|NOFRAME,$0
	MOVQ	SI, ·startInfoVA(SB)
	LEAQ	·kstack+KSTACK_SIZE(SB), SP
	ANDQ	$~15, SP
	// The fake g that Go code in the shim sees through the TLS slot: its
	// stack bounds are kstack's, so split-stack prologues pass and a real
	// overflow faults instead of corrupting memory.
	LEAQ	·kstack(SB), AX
	MOVQ	AX, ·fakeG+0(SB)                  // g.stack.lo
	LEAQ	·kstack+KSTACK_SIZE(SB), BX
	MOVQ	BX, ·fakeG+8(SB)                  // g.stack.hi
	ADDQ	$KSTACK_GUARD, AX
	MOVQ	AX, ·fakeG+16(SB)                 // g.stackguard0
	MOVQ	AX, ·fakeG+24(SB)                 // g.stackguard1
	LEAQ	·fakeG(SB), AX
	MOVQ	AX, ·bootTLS(SB)
	MOVQ	AX, ·savedG(SB)
	// FS base = &bootTLS+8, so the ABI wrappers' MOVQ -8(FS), R14 works
	// before the Go runtime sets its own TLS.
	MOVQ	$HC_SET_SEGMENT_BASE, AX
	XORL	DI, DI                           // SEGBASE_FS
	LEAQ	·bootTLS+8(SB), SI
	SYSCALL
	LEAQ	·bootTLS+8(SB), SI
	MOVQ	SI, ·curFS(SB)
	MOVQ	SI, ·wantFS(SB)
	BYTE	$0xdb; BYTE $0xe3                  // FNINIT
	LDMXCSR	·mxcsrInit(SB)
	CALL	·kmain(SB)
	// Thread 0's first frame: build it on the stack and leave through
	// the common exit.
	SUBQ	$FRAME_SIZE, SP
	MOVQ	SP, AX
	SUBQ	$16, SP
	MOVQ	AX, 0(SP)
	CALL	·firstFrame(SB)
	ADDQ	$16, SP
	JMP	·kexit(SB)

// Entry stubs. Xen's bounce frame (create_bounce_frame) holds RCX, R11,
// [error code,] RIP, CS, RFLAGS, RSP, SS. Each stub restores RCX/R11 from
// it and pushes the vector (and a 0 error code where the CPU pushes none)
// so that kcommon sees one layout, the Go type frame.
#define ENTRY_NOERR(name, vec) \
TEXT name(SB),NOSPLIT|NOFRAME,$0; \
	POPQ	CX; \
	POPQ	R11; \
	PUSHQ	$0; \
	PUSHQ	$vec; \
	JMP	·kcommon(SB)

#define ENTRY_ERR(name, vec) \
TEXT name(SB),NOSPLIT|NOFRAME,$0; \
	POPQ	CX; \
	POPQ	R11; \
	PUSHQ	$vec; \
	JMP	·kcommon(SB)

ENTRY_NOERR(·entrySyscall, VEC_SYSCALL)
ENTRY_NOERR(·entryEvent, VEC_EVENT)
ENTRY_NOERR(·trap0, 0)
ENTRY_NOERR(·trap1, 1)
ENTRY_NOERR(·trap3, 3)
ENTRY_NOERR(·trap4, 4)
ENTRY_NOERR(·trap5, 5)
ENTRY_NOERR(·trap6, 6)
ENTRY_NOERR(·trap7, 7)
ENTRY_NOERR(·trap9, 9)
ENTRY_ERR(·trap10, 10)
ENTRY_ERR(·trap11, 11)
ENTRY_ERR(·trap12, 12)
ENTRY_ERR(·trap13, 13)
ENTRY_ERR(·trap14, 14)
ENTRY_NOERR(·trap15, 15)
ENTRY_NOERR(·trap16, 16)
ENTRY_ERR(·trap17, 17)
ENTRY_NOERR(·trap18, 18)
ENTRY_NOERR(·trap19, 19)

// The failsafe callback runs when Xen cannot load a data segment selector
// on the way back to the guest; its frame has DS, ES, FS, GS on top. The
// shim never loads selectors, so this is a bug: report it and stop.
TEXT ·entryFailsafe(SB),NOSPLIT|NOFRAME,$0
	POPQ	CX
	POPQ	R11
	ADDQ	$32, SP
	PUSHQ	$0
	PUSHQ	$VEC_FAILSAFE
	JMP	·kcommon(SB)

// kcommon saves the interrupted context as a frame, saves its FP/SSE
// state into the current thread's area, points the TLS slot at the fake g,
// and calls kentry(frame). kentry may replace the frame with another
// thread's context; kexit then resumes whatever the frame holds.
TEXT ·kcommon(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	AX
	PUSHQ	BX
	PUSHQ	CX
	PUSHQ	DX
	PUSHQ	SI
	PUSHQ	DI
	PUSHQ	BP
	PUSHQ	R8
	PUSHQ	R9
	PUSHQ	R10
	PUSHQ	R11
	PUSHQ	R12
	PUSHQ	R13
	PUSHQ	R14
	PUSHQ	R15
	MOVQ	·curFX(SB), AX
	FXSAVE64	(AX)
	MOVQ	(TLS), AX
	MOVQ	AX, ·savedG(SB)
	LEAQ	·fakeG(SB), AX
	MOVQ	AX, (TLS)
	MOVQ	SP, AX
	SUBQ	$16, SP
	MOVQ	AX, 0(SP)
	CALL	·kentry(SB)
	ADDQ	$16, SP
	JMP	·kexit(SB)

// kexit resumes the context in the frame at SP: restores the user g into
// the TLS slot of the thread that entered, switches the FS base if the
// next thread's differs, restores its FP state and registers, and returns
// with the iret hypercall (flags 0: RCX/R11 come from the frame; a user CS
// returns to user mode and IF in RFLAGS unmasks events).
TEXT ·kexit(SB),NOSPLIT|NOFRAME,$0
	MOVQ	·savedG(SB), AX
	MOVQ	AX, (TLS)
	MOVQ	·wantFS(SB), SI
	CMPQ	SI, ·curFS(SB)
	JEQ	fsdone
	MOVQ	SI, ·curFS(SB)
	MOVQ	$HC_SET_SEGMENT_BASE, AX
	XORL	DI, DI
	SYSCALL
fsdone:
	MOVQ	·curFX(SB), AX
	FXRSTOR64	(AX)
	POPQ	R15
	POPQ	R14
	POPQ	R13
	POPQ	R12
	POPQ	R11
	POPQ	R10
	POPQ	R9
	POPQ	R8
	POPQ	BP
	POPQ	DI
	POPQ	SI
	POPQ	DX
	POPQ	CX
	POPQ	BX
	POPQ	AX
	ADDQ	$16, SP           // vector, error code
	// struct iret_context: rax, r11, rcx, flags, rip, cs, rflags, rsp, ss
	PUSHQ	$0
	PUSHQ	CX
	PUSHQ	R11
	PUSHQ	AX
	MOVL	$HC_IRET, AX
	SYSCALL
	BYTE	$0x0f; BYTE $0x0b   // UD2: the iret hypercall does not return

// func hypercall(op, a1, a2, a3, a4, a5 uint64) int64
// A hypercall from guest kernel mode is SYSCALL with the number in RAX and
// arguments in RDI, RSI, RDX, R10, R8 (xen-pv-abi.md §3.1). RCX and R11
// are clobbered; debug hypervisors also scribble on the argument registers.
TEXT ·hypercall(SB),NOSPLIT,$0-56
	MOVQ	op+0(FP), AX
	MOVQ	a1+8(FP), DI
	MOVQ	a2+16(FP), SI
	MOVQ	a3+24(FP), DX
	MOVQ	a4+32(FP), R10
	MOVQ	a5+40(FP), R8
	SYSCALL
	MOVQ	AX, ret+48(FP)
	RET

// func rdtsc() uint64
TEXT ·rdtsc(SB),NOSPLIT,$0-8
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func rdrand() (v uint64, ok bool)
TEXT ·rdrand(SB),NOSPLIT,$0-9
	RDRANDQ	AX
	SETCS	BL
	MOVQ	AX, v+0(FP)
	MOVB	BL, ok+8(FP)
	RET

// func cpuid(leaf, sub uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB),NOSPLIT,$0-24
	MOVL	leaf+0(FP), AX
	MOVL	sub+4(FP), CX
	CPUID
	MOVL	AX, a+8(FP)
	MOVL	BX, b+12(FP)
	MOVL	CX, c+16(FP)
	MOVL	DX, d+20(FP)
	RET

// func fxsave(addr uintptr)
TEXT ·fxsave(SB),NOSPLIT,$0-8
	MOVQ	addr+0(FP), AX
	FXSAVE64	(AX)
	RET

// func rt0Addr() uint64 returns the Go runtime's Linux entry point. The
// reference also keeps the runtime reachable for the linker's dead-code
// pass, whose only root is xenStart (-E).
TEXT ·rt0Addr(SB),NOSPLIT,$0-8
	LEAQ	_rt0_amd64_linux(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func entryAddrs(out *[nEntries]uint64) stores the addresses of the
// entry stubs: syscall, event, failsafe, then traps 0..19 (0 where the
// vector has no stub).
TEXT ·entryAddrs(SB),NOSPLIT,$0-8
	MOVQ	out+0(FP), DI
	LEAQ	·entrySyscall(SB), AX
	MOVQ	AX, 0(DI)
	LEAQ	·entryEvent(SB), AX
	MOVQ	AX, 8(DI)
	LEAQ	·entryFailsafe(SB), AX
	MOVQ	AX, 16(DI)
	LEAQ	·trap0(SB), AX
	MOVQ	AX, 24(DI)
	LEAQ	·trap1(SB), AX
	MOVQ	AX, 32(DI)
	MOVQ	$0, 40(DI)
	LEAQ	·trap3(SB), AX
	MOVQ	AX, 48(DI)
	LEAQ	·trap4(SB), AX
	MOVQ	AX, 56(DI)
	LEAQ	·trap5(SB), AX
	MOVQ	AX, 64(DI)
	LEAQ	·trap6(SB), AX
	MOVQ	AX, 72(DI)
	LEAQ	·trap7(SB), AX
	MOVQ	AX, 80(DI)
	MOVQ	$0, 88(DI)
	LEAQ	·trap9(SB), AX
	MOVQ	AX, 96(DI)
	LEAQ	·trap10(SB), AX
	MOVQ	AX, 104(DI)
	LEAQ	·trap11(SB), AX
	MOVQ	AX, 112(DI)
	LEAQ	·trap12(SB), AX
	MOVQ	AX, 120(DI)
	LEAQ	·trap13(SB), AX
	MOVQ	AX, 128(DI)
	LEAQ	·trap14(SB), AX
	MOVQ	AX, 136(DI)
	LEAQ	·trap15(SB), AX
	MOVQ	AX, 144(DI)
	LEAQ	·trap16(SB), AX
	MOVQ	AX, 152(DI)
	LEAQ	·trap17(SB), AX
	MOVQ	AX, 160(DI)
	LEAQ	·trap18(SB), AX
	MOVQ	AX, 168(DI)
	LEAQ	·trap19(SB), AX
	MOVQ	AX, 176(DI)
	RET

// func imageEnd() uint64 is the end of the image as linked (runtime.end).
TEXT ·imageEnd(SB),NOSPLIT,$0-8
	LEAQ	runtime·end(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func chainJump(va uint64)
// Contract: the shim's last instructions. Called in kernel mode with events
// masked, after the chainload teardown. Zeroes the FS base and both GS bases
// (set_segment_base: the next kernel expects them 0, and no Go code can run
// after this, since its TLS is FS-relative) and jumps to the trampoline at
// va. Never returns. R12 survives the hypercalls (Xen preserves it; SYSCALL
// clobbers only RCX and R11, and debug Xen scribbles argument registers).
TEXT ·chainJump(SB),NOSPLIT,$0-8
	MOVQ	va+0(FP), R12
	MOVQ	$25, AX	// __HYPERVISOR_set_segment_base
	MOVQ	$0, DI	// SEGBASE_FS
	XORQ	SI, SI
	SYSCALL
	MOVQ	$25, AX
	MOVQ	$1, DI	// SEGBASE_GS_USER
	XORQ	SI, SI
	SYSCALL
	MOVQ	$25, AX
	MOVQ	$2, DI	// SEGBASE_GS_KERNEL
	XORQ	SI, SI
	SYSCALL
	JMP	R12
