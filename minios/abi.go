package minios

// Xen hypercall numbers (xen/include/public/xen.h). The compat numbers that
// a header read without __XEN_INTERFACE_VERSION__ yields are wrong for us.
const (
	hcSetTrapTable    = 0
	hcMMUUpdate       = 1
	hcStackSwitch     = 3
	hcMemoryOp        = 12
	hcUpdateVAMapping = 14
	hcSetTimerOp      = 15
	hcXenVersion      = 17
	hcGrantTableOp    = 20
	hcIret            = 23
	hcVCPUOp          = 24
	hcSetSegmentBase  = 25
	hcMMUExtOp        = 26
	hcSchedOp         = 29
	hcCallbackOp      = 30
	hcEventChannelOp  = 32
)

// Sub-operations and flags (xen.h, sched.h, vcpu.h, callback.h,
// event_channel.h, grant_table.h, memory.h).
const (
	mmuNormalPTUpdate  = 0
	mmuMachphysUpdate  = 1
	mmuextPinL4        = 3
	mmuextUnpin        = 4
	mmuextNewBaseptr   = 5
	mmuextTLBFlushLoc  = 6
	mmuextInvlpgLocal  = 7
	mmuextNewUserBase  = 15
	uvmfInvlpg         = 2
	schedopYield       = 0
	schedopShutdown    = 2
	schedopPoll        = 3
	shutdownPoweroff   = 0
	shutdownReboot     = 1
	shutdownCrash      = 3
	vcpuopStopPeriodic = 7
	callbackopRegister = 0
	callbackTypeEvent  = 0
	callbackTypeFail   = 1
	callbackTypeSysc   = 2
	callbackfMask      = 1
	evtchnopBindInter  = 0
	evtchnopBindVIRQ   = 1
	evtchnopClose      = 3
	evtchnopSend       = 4
	evtchnopStatus     = 5
	evtchnopAllocUnb   = 6
	evtchnopUnmask     = 9
	gnttabopSetupTable = 2
	gnttabopQuerySize  = 6
	xenmemCurrentRes   = 3
	xenmemMaximumRes   = 4
	virqTimer          = 0
	segbaseFS          = 0
	flatKernelCS       = 0xe033
	flatKernelSS       = 0xe02b
	flatUserCS         = 0xe033
	flatUserSS         = 0xe02b
	domidSelf          = 0x7FF0
)

// Page-table entry bits.
const (
	ptePresent  = 0x1
	pteRW       = 0x2
	pteUser     = 0x4
	pteAccessed = 0x20
	pteDirty    = 0x40
	pteNX       = 1 << 63
	pteMFNMask  = 0x000ffffffffff000
	// Flags for our own L1 entries: no USER bit, so Xen makes them
	// non-global (xen-pv-abi.md §3.4).
	pteKernRW = ptePresent | pteRW | pteAccessed | pteDirty
	pteKernRO = ptePresent | pteAccessed
	// Intermediate tables: what the domain builder uses (L2-L4 0x67).
	pteTable = ptePresent | pteRW | pteUser | pteAccessed | pteDirty
)

// Fixed virtual addresses of the shim (upper canonical half, L4 slots the
// guest owns: 272-511). The Go program owns the lower half.
const (
	machToPhys   = 0xffff800000000000 // Xen's read-only M2P table
	dmapBase     = 0xffff890000000000 // direct map: VA = dmapBase + pfn<<12
	mapAreaBase  = 0xffffa00000000000 // shared_info, grant frames, driver pages
	mapAreaSize  = 1 << 36            // 64 GiB of VA for the map area
	sharedInfoVA = mapAreaBase
	userTop      = 0x0000800000000000
	mmapTop      = 0x00007f0000000000 // top-down placement of mmap(NULL)
	stackTop     = 0x00007ffffff00000 // initial user stack
	stackSize    = 8 << 20
	pageSize     = 4096
	pageShift    = 12
)

// Linux x86-64 syscall numbers the Go runtime uses (go-runtime-on-xen.md §3).
const (
	sysRead            = 0
	sysWrite           = 1
	sysClose           = 3
	sysMmap            = 9
	sysMprotect        = 10
	sysMunmap          = 11
	sysRtSigaction     = 13
	sysRtSigprocmask   = 14
	sysPread64         = 17
	sysSchedYield      = 24
	sysMadvise         = 28
	sysNanosleep       = 35
	sysGetpid          = 39
	sysClone           = 56
	sysExit            = 60
	sysKill            = 62
	sysUname           = 63
	sysFcntl           = 72
	sysSigaltstack     = 131
	sysPrctl           = 157
	sysArchPrctl       = 158
	sysGettid          = 186
	sysTkill           = 200
	sysFutex           = 202
	sysSchedGetaffin   = 204
	sysClockGettime    = 228
	sysExitGroup       = 231
	sysEpollCtl        = 233
	sysTgkill          = 234
	sysOpenat          = 257
	sysNewfstatat      = 262
	sysEpollPwait      = 281
	sysEventfd2        = 290
	sysEpollCreate1    = 291
	sysPrlimit64       = 302
	sysGetrandom       = 318
	sysEpollPwait2     = 441
	sysMaxLinux        = 512
	sysGopvgrubFirst   = 0x1000
	sysGopvgrubLimit   = 0x1100
	maxSyscallNameable = 0x1100
)

// Linux errno values.
const (
	ePERM      = 1
	eNOENT     = 2
	eINTR      = 4
	eBADF      = 9
	eAGAIN     = 11
	eNOMEM     = 12
	eFAULT     = 14
	eEXIST     = 17
	eINVAL     = 22
	eMFILE     = 24
	eNOSYS     = 38
	eTIMEDOUT  = 110
	eOPNOTSUPP = 95
)

// Linux constants used by the emulation.
const (
	protRead      = 1
	protWrite     = 2
	protExec      = 4
	mapShared     = 0x01
	mapPrivate    = 0x02
	mapFixed      = 0x10
	mapAnonymous  = 0x20
	mapFixedNoRep = 0x100000
	madvDontneed  = 4
	madvFree      = 8
	archSetFS     = 0x1002
	archGetFS     = 0x1003
	futexWait     = 0
	futexWake     = 1
	futexPrivate  = 128
	futexCmdMask  = 0x7f
	cloneVM       = 0x100
	cloneThread   = 0x10000
	cloneSettls   = 0x80000
	epollCtlAdd   = 1
	epollCtlDel   = 2
	epollCtlMod   = 3
	epollIn       = 0x1
	epollOut      = 0x4
	fGetfd        = 1
	fSetfd        = 2
	fGetfl        = 3
	fSetfl        = 4
	oRDWR         = 2
	oNonblock     = 0x800
	clockRealtime = 0
	clockMonotone = 1
	clockProcCPU  = 2
	clockThrCPU   = 3
	clockMonoRaw  = 4
	clockRTCoarse = 5
	clockMonoCrs  = 6
	clockBoottime = 7
	ssDisable     = 2
	rlimitNofile  = 7
)
