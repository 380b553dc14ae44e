package xen

// This file holds the numeric constants of the PV ABI that the drivers and
// the shim share. Each block names the public header it mirrors
// (/usr/include/xen on a Debian host, xen/include/public upstream). Only
// what the bootloader uses or must recognise is listed.

// Hypercall numbers (xen.h __HYPERVISOR_*). These are the current numbers:
// a header read without __XEN_INTERFACE_VERSION__ maps sched_op and
// event_channel_op to their old compat numbers, which we never use.
const (
	HypercallSetTrapTable    = 0
	HypercallMMUUpdate       = 1
	HypercallSetGDT          = 2
	HypercallStackSwitch     = 3
	HypercallSetCallbacks    = 4
	HypercallFPUTaskswitch   = 5
	HypercallMemoryOp        = 12
	HypercallMulticall       = 13
	HypercallUpdateVAMapping = 14
	HypercallSetTimerOp      = 15
	HypercallXenVersion      = 17
	HypercallConsoleIO       = 18
	HypercallGrantTableOp    = 20
	HypercallVMAssist        = 21
	HypercallIret            = 23
	HypercallVCPUOp          = 24
	HypercallSetSegmentBase  = 25
	HypercallMMUExtOp        = 26
	HypercallSchedOp         = 29
	HypercallCallbackOp      = 30
	HypercallEventChannelOp  = 32
	HypercallPhysdevOp       = 33
)

// Event channel sub-operations (event_channel.h EVTCHNOP_*). We use the
// 2-level ABI only; EVTCHNOP_init_control (FIFO) cannot be undone and
// would break the chainloaded kernel.
const (
	EvtchnopBindInterdomain = 0
	EvtchnopBindVIRQ        = 1
	EvtchnopBindPIRQ        = 2
	EvtchnopClose           = 3
	EvtchnopSend            = 4
	EvtchnopStatus          = 5
	EvtchnopAllocUnbound    = 6
	EvtchnopBindIPI         = 7
	EvtchnopBindVCPU        = 8
	EvtchnopUnmask          = 9
	EvtchnopReset           = 10
	EvtchnopInitControl     = 11
	EvtchnopExpandArray     = 12
	EvtchnopSetPriority     = 13
)

// Number of ports of the 2-level event channel ABI on a 64-bit guest
// (xen.h EVTCHN_2L_NR_CHANNELS: 64 words of 64 bits).
const EvtchnPorts2L = 64 * 64

// Virtual interrupts (xen.h VIRQ_*).
const (
	VIRQTimer   = 0
	VIRQDebug   = 1
	VIRQConsole = 2
)

// Grant table sub-operations (grant_table.h GNTTABOP_*).
const (
	GnttabopMapGrantRef     = 0
	GnttabopUnmapGrantRef   = 1
	GnttabopSetupTable      = 2
	GnttabopDumpTable       = 3
	GnttabopTransfer        = 4
	GnttabopCopy            = 5
	GnttabopQuerySize       = 6
	GnttabopUnmapAndReplace = 7
	GnttabopSetVersion      = 8
	GnttabopGetStatusFrames = 9
	GnttabopGetVersion      = 10
	GnttabopSwapGrantRef    = 11
	GnttabopCacheFlush      = 12
)

// Grant entry v1 flags (grant_table.h GTF_*). The low two bits are the
// entry type; GTF_reading/GTF_writing are set by Xen while the grantee
// has the frame mapped.
const (
	GTFInvalid        = 0
	GTFPermitAccess   = 1
	GTFAcceptTransfer = 2
	GTFTransitive     = 3
	GTFTypeMask       = 3
	GTFReadonly       = 1 << 2
	GTFReading        = 1 << 3
	GTFWriting        = 1 << 4
	GTFPWT            = 1 << 5
	GTFPCD            = 1 << 6
	GTFPAT            = 1 << 7
	GTFSubPage        = 1 << 8
)

// Grant table geometry, version 1 (grant_table.h grant_entry_v1_t and
// GNTTAB_NR_RESERVED_ENTRIES).
const (
	GrantEntrySize       = 8 // u16 flags, u16 domid, u32 frame
	GrantEntriesPerFrame = PageSize / GrantEntrySize
	// GrantReservedEntries: refs 0..7 belong to the toolstack (0 is the
	// console page, 1 the xenstore page); a guest never allocates or
	// clears them.
	GrantReservedEntries = 8
	GrantRefConsole      = 0
	GrantRefXenstore     = 1
)

// GrantStatus is a grant table operation status (grant_table.h GNTST_*).
type GrantStatus int16

// Grant table statuses.
const (
	GNTSTOkay             GrantStatus = 0
	GNTSTGeneralError     GrantStatus = -1
	GNTSTBadDomain        GrantStatus = -2
	GNTSTBadGntref        GrantStatus = -3
	GNTSTBadHandle        GrantStatus = -4
	GNTSTBadVirtAddr      GrantStatus = -5
	GNTSTBadDevAddr       GrantStatus = -6
	GNTSTNoDeviceSpace    GrantStatus = -7
	GNTSTPermissionDenied GrantStatus = -8
	GNTSTBadPage          GrantStatus = -9
	GNTSTBadCopyArg       GrantStatus = -10
	GNTSTAddressTooBig    GrantStatus = -11
	GNTSTEagain           GrantStatus = -12
	GNTSTNoSpace          GrantStatus = -13
)

func (s GrantStatus) Error() string {
	// The texts follow GNTTABOP_error_msgs in grant_table.h.
	switch s {
	case GNTSTOkay:
		return "gnttab: okay"
	case GNTSTGeneralError:
		return "gnttab: undefined error"
	case GNTSTBadDomain:
		return "gnttab: unrecognised domain id"
	case GNTSTBadGntref:
		return "gnttab: invalid grant reference"
	case GNTSTBadHandle:
		return "gnttab: invalid mapping handle"
	case GNTSTBadVirtAddr:
		return "gnttab: invalid virtual address"
	case GNTSTBadDevAddr:
		return "gnttab: invalid device address"
	case GNTSTNoDeviceSpace:
		return "gnttab: no spare translation slot in the I/O MMU"
	case GNTSTPermissionDenied:
		return "gnttab: permission denied"
	case GNTSTBadPage:
		return "gnttab: bad page"
	case GNTSTBadCopyArg:
		return "gnttab: copy arguments cross page boundary"
	case GNTSTAddressTooBig:
		return "gnttab: page address size too large"
	case GNTSTEagain:
		return "gnttab: operation not done; try again"
	case GNTSTNoSpace:
		return "gnttab: out of space"
	}
	return "gnttab: unknown status " + itoa(int64(s))
}

// start_info flags (xen.h SIF_*).
const (
	SIFPrivileged   = 1 << 0
	SIFInitDomain   = 1 << 1
	SIFMultibootMod = 1 << 2
	SIFModStartPFN  = 1 << 3
	SIFVirtP2M4Tool = 1 << 4
	SIFPMMask       = 0xFF << 8
)

// Reserved domain ids (xen.h DOMID_*). DomSelf is in platform.go.
const (
	DomFirstReserved DomID = 0x7FF0
	DomIO            DomID = 0x7FF1
	DomXen           DomID = 0x7FF2
	DomCOW           DomID = 0x7FF3
	DomInvalid       DomID = 0x7FF4
	DomIdle          DomID = 0x7FFF
)

// Scheduler operations (sched.h SCHEDOP_*) and shutdown reasons
// (SHUTDOWN_*).
const (
	SchedopYield    = 0
	SchedopBlock    = 1
	SchedopShutdown = 2
	SchedopPoll     = 3

	ShutdownPoweroff = 0
	ShutdownReboot   = 1
	ShutdownSuspend  = 2
	ShutdownCrash    = 3
	ShutdownWatchdog = 4
)

// Xenstore ring page fields beyond the two byte streams (io/xs_wire.h
// struct xenstore_domain_interface; xen/ring has the streams).
const (
	XenstoreOffServerFeatures = 2064
	XenstoreOffConnection     = 2068
	XenstoreOffError          = 2072

	// XENSTORE_SERVER_FEATURE_*: bits in server_features.
	XenstoreFeatureReconnection = 1
	XenstoreFeatureError        = 2

	// Values of the connection field.
	XenstoreConnected = 0
	XenstoreReconnect = 1

	// Values of the error field (XENSTORE_ERROR_*).
	XenstoreErrorNone    = 0
	XenstoreErrorComm    = 1
	XenstoreErrorRingIdx = 2
	XenstoreErrorProto   = 3

	// XENSTORE_PAYLOAD_MAX and the path limits.
	XenstorePayloadMax = 4096
	XenstoreAbsPathMax = 3072
	XenstoreRelPathMax = 2048
	XenstoreMsgHdrSize = 16 // struct xsd_sockmsg
	XenstoreRingSize   = 1024
	XenstoreOffReqCons = 2048
	XenstoreOffReqProd = 2052
	XenstoreOffRspCons = 2056
	XenstoreOffRspProd = 2060
	XenstoreOffRspRing = 1024
	XenstoreOffReqRing = 0
)

// XenbusState is a device's state as stored, in decimal, in its
// xenstore "state" node (io/xenbus.h enum xenbus_state).
type XenbusState int

// Xenbus states.
const (
	StateUnknown       XenbusState = 0
	StateInitialising  XenbusState = 1
	StateInitWait      XenbusState = 2 // backend waits for frontend details
	StateInitialised   XenbusState = 3 // frontend published its details
	StateConnected     XenbusState = 4
	StateClosing       XenbusState = 5
	StateClosed        XenbusState = 6
	StateReconfiguring XenbusState = 7
	StateReconfigured  XenbusState = 8
)

func (s XenbusState) String() string {
	switch s {
	case StateUnknown:
		return "Unknown"
	case StateInitialising:
		return "Initialising"
	case StateInitWait:
		return "InitWait"
	case StateInitialised:
		return "Initialised"
	case StateConnected:
		return "Connected"
	case StateClosing:
		return "Closing"
	case StateClosed:
		return "Closed"
	case StateReconfiguring:
		return "Reconfiguring"
	case StateReconfigured:
		return "Reconfigured"
	}
	return "XenbusState(" + itoa(int64(s)) + ")"
}

// itoa formats n in decimal without strconv, so the package stays free of
// anything that needs initialisation (the shim calls into it early).
func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	u := uint64(n)
	if n < 0 {
		u = uint64(-n)
	}
	for {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	if n < 0 {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
