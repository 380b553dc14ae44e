package xen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func sampleStartInfo() StartInfo {
	return StartInfo{
		Magic:         StartInfoMagic,
		NrPages:       0x8000,
		SharedInfo:    0x12345000,
		Flags:         SIFModStartPFN | SIFVirtP2M4Tool,
		StoreMFN:      0xabcdef,
		StoreEvtchn:   1,
		ConsoleMFN:    0xabcdee,
		ConsoleEvtchn: 2,
		PTBase:        0x407000,
		NrPTFrames:    5,
		MFNList:       0x405000,
		ModStart:      0x1000,
		ModLen:        123456,
		CmdLine:       "root=/dev/xvda1 console=hvc0",
		FirstP2MPFN:   0x77,
		NrP2MFrames:   3,
	}
}

// TestMarshalOffsets checks every field lands where xen.h puts it (the
// offsets in this test are the header's, written out independently of
// the constants in startinfo.go).
func TestMarshalOffsets(t *testing.T) {
	s := sampleStartInfo()
	b := s.Marshal()
	if len(b) != 1168 {
		t.Fatalf("len = %d", len(b))
	}
	le := binary.LittleEndian
	for _, c := range []struct {
		name string
		off  int
		size int
		want uint64
	}{
		{"nr_pages", 32, 8, s.NrPages},
		{"shared_info", 40, 8, s.SharedInfo},
		{"flags", 48, 4, uint64(s.Flags)},
		{"store_mfn", 56, 8, uint64(s.StoreMFN)},
		{"store_evtchn", 64, 4, uint64(s.StoreEvtchn)},
		{"console.domU.mfn", 72, 8, uint64(s.ConsoleMFN)},
		{"console.domU.evtchn", 80, 4, uint64(s.ConsoleEvtchn)},
		{"pt_base", 88, 8, s.PTBase},
		{"nr_pt_frames", 96, 8, s.NrPTFrames},
		{"mfn_list", 104, 8, s.MFNList},
		{"mod_start", 112, 8, s.ModStart},
		{"mod_len", 120, 8, s.ModLen},
		{"first_p2m_pfn", 1152, 8, s.FirstP2MPFN},
		{"nr_p2m_frames", 1160, 8, s.NrP2MFrames},
	} {
		var got uint64
		if c.size == 8 {
			got = le.Uint64(b[c.off:])
		} else {
			got = uint64(le.Uint32(b[c.off:]))
		}
		if got != c.want {
			t.Errorf("%s at %d: %#x, want %#x", c.name, c.off, got, c.want)
		}
	}
	if string(b[0:14]) != "xen-3.0-x86_64" || b[14] != 0 {
		t.Errorf("magic bytes %q", b[0:32])
	}
	if !strings.HasPrefix(string(b[128:]), s.CmdLine+"\x00") {
		t.Errorf("cmd_line not at 128")
	}
	// Padding after the 4-byte fields stays zero.
	for _, off := range []int{52, 68, 84} {
		if le.Uint32(b[off:]) != 0 {
			t.Errorf("padding at %d not zero", off)
		}
	}
}

func TestParseStartInfo(t *testing.T) {
	good := sampleStartInfo().Marshal()
	withPad := append(append([]byte{}, good...), make([]byte, 4096-len(good))...)
	noNulCmd := append([]byte{}, good...)
	for i := 128; i < 1152; i++ {
		noNulCmd[i] = 'x'
	}
	noNulMagic := append([]byte{}, good...)
	copy(noNulMagic, strings.Repeat("m", 32))
	x86_32 := append([]byte{}, good...)
	copy(x86_32, "xen-3.0-x86_32p\x00")

	for _, tc := range []struct {
		name string
		in   []byte
		err  error
	}{
		{"exact", good, nil},
		{"whole page", withPad, nil},
		{"truncated", good[:1167], ErrStartInfoShort},
		{"empty", nil, ErrStartInfoShort},
		{"cmdline without NUL", noNulCmd, ErrStartInfoCmdline},
		{"magic without NUL", noNulMagic, ErrStartInfoMagic},
		{"32-bit magic", x86_32, ErrStartInfoMagic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStartInfo(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && got != sampleStartInfo() {
				t.Errorf("got %+v", got)
			}
		})
	}
}

func TestMarshalTruncatesStrings(t *testing.T) {
	s := sampleStartInfo()
	s.CmdLine = strings.Repeat("a", 2000)
	got, err := ParseStartInfo(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.CmdLine) != 1023 {
		t.Errorf("cmdline length %d, want 1023", len(got.CmdLine))
	}
	s.CmdLine = "before\x00after"
	got, _ = ParseStartInfo(s.Marshal())
	if got.CmdLine != "before" {
		t.Errorf("cmdline %q, want cut at NUL", got.CmdLine)
	}
}

// FuzzParseStartInfo: arbitrary pages either fail with one of the
// sentinel errors or parse to a value that survives Marshal unchanged.
// The page is a valid start_info (or zeroes), optionally with a command
// line filling its whole array, overwritten at off with a short patch and
// cut to length. Inputs stay small, so the fuzzer explores instead of
// spending its time minimising kilobyte-sized pages, and every byte of
// the page is still reachable.
func FuzzParseStartInfo(f *testing.F) {
	f.Add(true, false, uint16(0), []byte{}, uint16(1168))
	f.Add(true, false, uint16(128), []byte("console=hvc0"), uint16(4096))
	f.Add(true, false, uint16(100), []byte{}, uint16(100))
	f.Add(false, false, uint16(0), []byte(StartInfoMagic+"\x00"), uint16(1168))
	f.Add(true, true, uint16(1150), []byte{1, 2, 3, 4}, uint16(2000))
	f.Fuzz(func(t *testing.T, valid, fullCmd bool, off uint16, patch []byte, length uint16) {
		if len(patch) > 64 {
			return
		}
		page := make([]byte, PageSize)
		if valid {
			copy(page, sampleStartInfo().Marshal())
		}
		if fullCmd {
			copy(page[SIOffCmdLine:], bytes.Repeat([]byte{'x'}, MaxGuestCmdline))
		}
		copy(page[int(off)%PageSize:], patch)
		page = page[:int(length)%(PageSize+1)]
		s, err := ParseStartInfo(page)
		if err != nil {
			if !errors.Is(err, ErrStartInfoShort) && !errors.Is(err, ErrStartInfoMagic) && !errors.Is(err, ErrStartInfoCmdline) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		b := s.Marshal()
		again, err := ParseStartInfo(b)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if again != s {
			t.Fatalf("round trip changed %+v to %+v", s, again)
		}
		// Marshal writes the parsed fields back where they came from.
		for _, r := range [][2]int{{32, 52}, {56, 68}, {72, 84}, {88, 128}, {1152, 1168}} {
			if !bytes.Equal(b[r[0]:r[1]], page[r[0]:r[1]]) {
				t.Fatalf("bytes %d-%d differ after Marshal", r[0], r[1])
			}
		}
	})
}
