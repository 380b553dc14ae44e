package xen

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
)

// layout is what the public headers say, written down by reading
// /usr/include/xen (xen.h, arch-x86/xen.h, grant_table.h, io/xs_wire.h)
// and xen-pv-abi.md §2.3-§5. Each entry pairs the C name with the Go
// constant that must agree; TestHeaderOffsetsWithGCC checks the C side of
// the same table against the compiler.
type layoutEntry struct {
	c      string // name as printed by testdata/offsets.c
	off    int    // offset (or value, for const.* entries) per the header
	size   int    // field size per the header (0 for const.* entries)
	goSide int    // the Go constant
}

func layout() []layoutEntry {
	return []layoutEntry{
		{"start_info", 0, 1168, 0},
		{"start_info.magic", 0, 32, SIOffMagic},
		{"start_info.nr_pages", 32, 8, SIOffNrPages},
		{"start_info.shared_info", 40, 8, SIOffSharedInfo},
		{"start_info.flags", 48, 4, SIOffFlags},
		{"start_info.store_mfn", 56, 8, SIOffStoreMFN},
		{"start_info.store_evtchn", 64, 4, SIOffStoreEvtchn},
		{"start_info.console.domU.mfn", 72, 8, SIOffConsoleMFN},
		{"start_info.console.domU.evtchn", 80, 4, SIOffConsoleEvtchn},
		{"start_info.pt_base", 88, 8, SIOffPTBase},
		{"start_info.nr_pt_frames", 96, 8, SIOffNrPTFrames},
		{"start_info.mfn_list", 104, 8, SIOffMFNList},
		{"start_info.mod_start", 112, 8, SIOffModStart},
		{"start_info.mod_len", 120, 8, SIOffModLen},
		{"start_info.cmd_line", 128, 1024, SIOffCmdLine},
		{"start_info.first_p2m_pfn", 1152, 8, SIOffFirstP2MPFN},
		{"start_info.nr_p2m_frames", 1160, 8, SIOffNrP2MFrames},

		{"shared_info", 0, 3136, 0},
		{"shared_info.vcpu_info", 0, 2048, 0},
		{"shared_info.evtchn_pending", 2048, 512, shEvtchnPending},
		{"shared_info.evtchn_mask", 2560, 512, shEvtchnMask},
		{"shared_info.wc_version", 3072, 4, shWcVersion},
		{"shared_info.wc_sec", 3076, 4, shWcSec},
		{"shared_info.wc_nsec", 3080, 4, shWcNsec},
		{"shared_info.wc_sec_hi", 3084, 4, shWcSecHi},
		{"shared_info.arch.max_pfn", 3088, 8, shMaxPFN},
		{"shared_info.arch.pfn_to_mfn_frame_list_list", 3096, 8, shP2MFrameList},
		{"shared_info.arch.nmi_reason", 3104, 8, shNMIReason},
		{"shared_info.arch.p2m_cr3", 3112, 8, shP2MCR3},
		{"shared_info.arch.p2m_vaddr", 3120, 8, shP2MVaddr},
		{"shared_info.arch.p2m_generation", 3128, 8, shP2MGeneration},

		{"vcpu_info", 0, 64, 0},
		{"vcpu_info.evtchn_upcall_pending", 0, 1, viUpcallPending},
		{"vcpu_info.evtchn_upcall_mask", 1, 1, viUpcallMask},
		{"vcpu_info.evtchn_pending_sel", 8, 8, viPendingSel},
		{"vcpu_info.arch.cr2", 16, 8, viCR2},
		{"vcpu_info.time", 32, 32, viTime},
		{"vcpu_time_info.version", 0, 4, vtVersion},
		{"vcpu_time_info.tsc_timestamp", 8, 8, vtTSC},
		{"vcpu_time_info.system_time", 16, 8, vtSysTime},
		{"vcpu_time_info.tsc_to_system_mul", 24, 4, vtMul},
		{"vcpu_time_info.tsc_shift", 28, 1, vtShift},
		{"vcpu_time_info.flags", 29, 1, vtFlags},

		{"grant_entry_v1", 0, GrantEntrySize, 0},
		{"grant_entry_v1.flags", 0, 2, 0},
		{"grant_entry_v1.domid", 2, 2, 2},
		{"grant_entry_v1.frame", 4, 4, 4},

		{"xenstore_domain_interface.req", 0, 1024, XenstoreOffReqRing},
		{"xenstore_domain_interface.rsp", 1024, 1024, XenstoreOffRspRing},
		{"xenstore_domain_interface.req_cons", 2048, 4, XenstoreOffReqCons},
		{"xenstore_domain_interface.req_prod", 2052, 4, XenstoreOffReqProd},
		{"xenstore_domain_interface.rsp_cons", 2056, 4, XenstoreOffRspCons},
		{"xenstore_domain_interface.rsp_prod", 2060, 4, XenstoreOffRspProd},
		{"xenstore_domain_interface.server_features", 2064, 4, XenstoreOffServerFeatures},
		{"xenstore_domain_interface.connection", 2068, 4, XenstoreOffConnection},
		{"xenstore_domain_interface.error", 2072, 4, XenstoreOffError},
		{"xsd_sockmsg", 0, 16, 0},

		{"const.XENSTORE_PAYLOAD_MAX", 4096, 0, XenstorePayloadMax},
		{"const.GNTTAB_NR_RESERVED_ENTRIES", 8, 0, GrantReservedEntries},
		{"const.MAX_GUEST_CMDLINE", 1024, 0, MaxGuestCmdline},
		{"const.XEN_LEGACY_MAX_VCPUS", 32, 0, MaxLegacyVCPUs},
		{"const.GTF_readonly", 4, 0, GTFReadonly},
		{"const.GTF_reading", 8, 0, GTFReading},
		{"const.GTF_writing", 16, 0, GTFWriting},
		{"const.GTF_sub_page", 256, 0, GTFSubPage},
		{"const.SIF_MOD_START_PFN", 8, 0, SIFModStartPFN},
		{"const.SIF_VIRT_P2M_4TOOLS", 16, 0, SIFVirtP2M4Tool},
		{"const.__HYPERVISOR_sched_op", 29, 0, HypercallSchedOp},
		{"const.__HYPERVISOR_event_channel_op", 32, 0, HypercallEventChannelOp},
		{"const.__HYPERVISOR_grant_table_op", 20, 0, HypercallGrantTableOp},
		{"const.EVTCHNOP_alloc_unbound", 6, 0, EvtchnopAllocUnbound},
		{"const.EVTCHNOP_unmask", 9, 0, EvtchnopUnmask},
		{"const.GNTTABOP_setup_table", 2, 0, GnttabopSetupTable},
		{"const.GNTTABOP_query_size", 6, 0, GnttabopQuerySize},
		{"const.DOMID_SELF", 0x7FF0, 0, int(DomSelf)},
	}
}

func TestLayoutMatchesHeaders(t *testing.T) {
	for _, e := range layout() {
		// Whole-struct rows carry the size; the Go side is checked below.
		if !strings.Contains(e.c, ".") {
			continue
		}
		if e.off != e.goSide {
			t.Errorf("%s: header says %d, Go constant is %d", e.c, e.off, e.goSide)
		}
	}
	if StartInfoSize != 1168 || SharedInfoSize != 3136 || VCPUInfoSize != 64 {
		t.Errorf("struct sizes: start_info %d shared_info %d vcpu_info %d", StartInfoSize, SharedInfoSize, VCPUInfoSize)
	}
}

// TestHeaderOffsetsWithGCC compiles testdata/offsets.c against the
// installed Xen headers and compares every printed offset and size with
// the table above.
func TestHeaderOffsetsWithGCC(t *testing.T) {
	testassets.NeedTools(t, "gcc")
	if _, err := os.Stat("/usr/include/xen/xen.h"); err != nil {
		testassets.Missing(t, "Xen public headers (libxen-dev): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "offsets")
	cmd := exec.Command("gcc", "-Wall", "-D__XEN_INTERFACE_VERSION__=0x00040e00", "-o", bin, "testdata/offsets.c")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running offsets: %v", err)
	}
	got := map[string][2]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			t.Fatalf("bad line %q", sc.Text())
		}
		off, err1 := strconv.Atoi(f[1])
		size, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		got[f[0]] = [2]int{off, size}
	}
	for _, e := range layout() {
		g, ok := got[e.c]
		if !ok {
			t.Errorf("%s: not printed by offsets.c", e.c)
			continue
		}
		if g[0] != e.off || g[1] != e.size {
			t.Errorf("%s: gcc says offset/value %d size %d, table says %d size %d", e.c, g[0], g[1], e.off, e.size)
		}
	}
}

func TestXenbusStateString(t *testing.T) {
	for _, tc := range []struct {
		s    XenbusState
		want string
	}{
		{StateUnknown, "Unknown"}, {StateInitialising, "Initialising"}, {StateInitWait, "InitWait"},
		{StateInitialised, "Initialised"}, {StateConnected, "Connected"}, {StateClosing, "Closing"},
		{StateClosed, "Closed"}, {StateReconfiguring, "Reconfiguring"}, {StateReconfigured, "Reconfigured"},
		{XenbusState(9), "XenbusState(9)"}, {XenbusState(-3), "XenbusState(-3)"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", int(tc.s), got, tc.want)
		}
	}
}

func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		rc      int64
		want    error // nil for success
		is      []error
		message string
	}{
		{0, nil, nil, ""},
		{5, nil, nil, ""},
		{-2, ENOENT, []error{syscall.ENOENT, fs.ErrNotExist}, "xen: ENOENT"},
		{-11, EAGAIN, []error{syscall.EAGAIN}, "xen: EAGAIN"},
		{-13, EACCES, []error{fs.ErrPermission, syscall.EACCES}, "xen: EACCES"},
		{-17, EEXIST, []error{fs.ErrExist}, "xen: EEXIST"},
		{-22, EINVAL, []error{syscall.EINVAL}, "xen: EINVAL"},
		{-4, Errno(4), nil, "xen: errno 4"}, // EINTR is Xen-internal, never named to guests
		{-1 << 40, Errno(0x7fffffff), nil, "xen: errno 2147483647"},
	} {
		err := HypercallError(tc.rc)
		if tc.want == nil {
			if err != nil {
				t.Errorf("rc %d: err = %v, want nil", tc.rc, err)
			}
			continue
		}
		if err != tc.want {
			t.Errorf("rc %d: err = %v, want %v", tc.rc, err, tc.want)
		}
		if err.Error() != tc.message {
			t.Errorf("rc %d: message %q, want %q", tc.rc, err.Error(), tc.message)
		}
		for _, target := range tc.is {
			if !errors.Is(err, target) {
				t.Errorf("rc %d: errors.Is(%v, %v) = false", tc.rc, err, target)
			}
		}
	}
	if errors.Is(ENOENT, syscall.EEXIST) {
		t.Error("ENOENT matches EEXIST")
	}
	if ErrnoByName("EAGAIN") != EAGAIN || ErrnoByName("ENOTEMPTY") != ENOTEMPTY || ErrnoByName("EBOGUS") != 0 {
		t.Error("ErrnoByName")
	}
}

func TestGrantStatusError(t *testing.T) {
	if GNTSTEagain.Error() != "gnttab: operation not done; try again" {
		t.Errorf("GNTSTEagain: %q", GNTSTEagain.Error())
	}
	if GrantStatus(-99).Error() != "gnttab: unknown status -99" {
		t.Errorf("unknown: %q", GrantStatus(-99).Error())
	}
	for s := GNTSTOkay; s >= GNTSTNoSpace; s-- {
		if strings.Contains(s.Error(), "unknown") {
			t.Errorf("status %d has no text", s)
		}
	}
}

func TestItoa(t *testing.T) {
	for _, n := range []int64{0, 7, -7, 10, 1234567890, -1 << 63, 1<<63 - 1} {
		if got, want := itoa(n), strconv.FormatInt(n, 10); got != want {
			t.Errorf("itoa(%d) = %q, want %q", n, got, want)
		}
	}
}
