package gnttab

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

const (
	guestID   xen.DomID = 7
	backendID xen.DomID = 0
)

func setup(t *testing.T, frames int) (*xentest.Hypervisor, *xentest.Domain, *Table) {
	t.Helper()
	h := xentest.NewHypervisor()
	h.NewDomain(backendID, xentest.DomainConfig{})
	g := h.NewDomain(guestID, xentest.DomainConfig{GrantFrames: frames})
	tab, err := New(g)
	if err != nil {
		t.Fatal(err)
	}
	return h, g, tab
}

func page(t *testing.T, d *xentest.Domain) ([]byte, xen.MFN) {
	t.Helper()
	mem, mfns, err := d.AllocPages(1)
	if err != nil {
		t.Fatal(err)
	}
	return mem, mfns[0]
}

// TestGrantEntryLayout checks the bytes Xen reads: grant_entry_v1 is
// {u16 flags @0, u16 domid @2, u32 frame @4}.
func TestGrantEntryLayout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readonly bool
		flags    uint16
	}{
		{"rw", false, xen.GTFPermitAccess},
		{"ro", true, xen.GTFPermitAccess | xen.GTFReadonly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, g, tab := setup(t, 1)
			_, mfn := page(t, g)
			r, err := tab.Grant(backendID, mfn, tc.readonly)
			if err != nil {
				t.Fatal(err)
			}
			if r < 8 {
				t.Fatalf("ref %d is reserved", r)
			}
			mem, _ := g.Grow(1)
			e := mem[int(r)*8:]
			if f := binary.LittleEndian.Uint16(e[0:]); f != tc.flags {
				t.Errorf("flags %#x, want %#x", f, tc.flags)
			}
			if d := binary.LittleEndian.Uint16(e[2:]); xen.DomID(d) != backendID {
				t.Errorf("domid %d", d)
			}
			if f := binary.LittleEndian.Uint32(e[4:]); xen.MFN(f) != mfn {
				t.Errorf("frame %#x, want %#x", f, mfn)
			}
			if err := tab.End(r); err != nil {
				t.Fatal(err)
			}
			for i, b := range e[:8] {
				if b != 0 {
					t.Errorf("byte %d of ended entry = %#x", i, b)
				}
			}
		})
	}
}

func TestReservedRefsUntouched(t *testing.T) {
	_, g, tab := setup(t, 2)
	// The toolstack seeds 0 (console) and 1 (xenstore); 2-7 get
	// sentinels so that any write shows.
	want := map[uint32][3]uint32{}
	for r := uint32(0); r < 8; r++ {
		flags, dom, frame := uint16(xen.GTFPermitAccess), xen.DomID(0), 0x5000+r
		if r >= 2 {
			flags, dom, frame = 0xbe00|uint16(r), xen.DomID(0x1234), 0xfeed0000|r
		}
		if err := g.SetGrantEntry(r, flags, dom, frame); err != nil {
			t.Fatal(err)
		}
		want[r] = [3]uint32{uint32(flags), uint32(dom), frame}
	}
	_, mfn := page(t, g)
	var refs []Ref
	for {
		r, err := tab.Grant(backendID, mfn, false)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r < 8 {
			t.Fatalf("reserved ref %d handed out", r)
		}
		refs = append(refs, r)
	}
	if len(refs) != 2*512-8 {
		t.Errorf("%d refs in two frames, want %d", len(refs), 2*512-8)
	}
	for _, r := range refs {
		if err := tab.End(r); err != nil {
			t.Fatal(err)
		}
	}
	for r := uint32(0); r < 8; r++ {
		if err := tab.End(Ref(r)); !errors.Is(err, ErrBadRef) {
			t.Errorf("End(%d) = %v, want ErrBadRef", r, err)
		}
		f, d, fr, _ := g.GrantEntry(r)
		if got := [3]uint32{uint32(f), uint32(d), fr}; got != want[r] {
			t.Errorf("reserved ref %d changed: %x, want %x", r, got, want[r])
		}
	}
}

func TestGrowthAcrossFrames(t *testing.T) {
	_, g, tab := setup(t, 3)
	_, mfn := page(t, g)
	if tab.Frames() != 0 || tab.MaxFrames() != 3 {
		t.Fatalf("frames %d max %d before use", tab.Frames(), tab.MaxFrames())
	}
	seen := map[Ref]bool{}
	for i := 0; i < 3*512-8; i++ {
		r, err := tab.Grant(backendID, mfn, true)
		if err != nil {
			t.Fatalf("grant %d: %v", i, err)
		}
		if seen[r] {
			t.Fatalf("ref %d handed out twice", r)
		}
		seen[r] = true
		wantFrames := int(r)/512 + 1
		if tab.Frames() != wantFrames || g.GrantFrames() != wantFrames {
			t.Fatalf("ref %d: table %d frames, platform %d, want %d", r, tab.Frames(), g.GrantFrames(), wantFrames)
		}
	}
	if _, err := tab.Grant(backendID, mfn, true); !errors.Is(err, ErrFull) {
		t.Fatalf("grant beyond MaxFrames: %v", err)
	}
	if tab.Active() != 3*512-8 {
		t.Errorf("Active = %d", tab.Active())
	}
	// An ended ref is reused before the table would grow.
	if err := tab.End(1000); err != nil {
		t.Fatal(err)
	}
	if r, err := tab.Grant(backendID, mfn, false); err != nil || r != 1000 {
		t.Errorf("after End(1000): Grant = %d, %v", r, err)
	}
}

func TestEndWhileMapped(t *testing.T) {
	h, g, tab := setup(t, 1)
	mem, mfn := page(t, g)
	r, err := tab.Grant(backendID, mfn, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.MapGrant(backendID, guestID, uint32(r), false)
	if err != nil {
		t.Fatal(err)
	}
	copy(m.Data, "written by the backend")
	if string(mem[:7]) != "written" {
		t.Fatal("mapping does not alias the guest page")
	}
	if !tab.InUse(r) {
		t.Error("InUse = false while mapped")
	}
	if err := tab.End(r); !errors.Is(err, ErrInUse) {
		t.Fatalf("End while mapped = %v, want ErrInUse", err)
	}
	if tab.Active() != 1 {
		t.Fatal("grant dropped although still mapped")
	}
	// The entry must still be valid for the peer.
	flags, dom, _, _ := g.GrantEntry(uint32(r))
	if flags&xen.GTFPermitAccess == 0 || dom != backendID || flags&(xen.GTFReading|xen.GTFWriting) != xen.GTFReading|xen.GTFWriting {
		t.Errorf("entry after refused End: flags %#x dom %d", flags, dom)
	}
	if err := m.Unmap(); err != nil {
		t.Fatal(err)
	}
	if err := tab.End(r); err != nil {
		t.Fatalf("End after unmap: %v", err)
	}
	if _, err := h.MapGrant(backendID, guestID, uint32(r), true); err == nil {
		t.Fatal("backend could map an ended grant")
	}
	if tab.Active() != 0 || len(tab.Leaks()) != 0 {
		t.Errorf("Active %d Leaks %v", tab.Active(), tab.Leaks())
	}
	if err := tab.End(r); !errors.Is(err, ErrBadRef) {
		t.Errorf("double End = %v", err)
	}
}

func TestLeaks(t *testing.T) {
	_, g, tab := setup(t, 1)
	_, mfn := page(t, g)
	var refs []Ref
	for i := 0; i < 5; i++ {
		r, err := tab.Grant(backendID, mfn, true)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	if err := tab.End(refs[1]); err != nil {
		t.Fatal(err)
	}
	if err := tab.End(refs[3]); err != nil {
		t.Fatal(err)
	}
	got := tab.Leaks()
	want := []Ref{refs[0], refs[2], refs[4]}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || tab.Active() != 3 {
		t.Errorf("Leaks = %v (Active %d), want %v", got, tab.Active(), want)
	}
}

func TestBadFrame(t *testing.T) {
	_, _, tab := setup(t, 1)
	if _, err := tab.Grant(backendID, 1<<32, false); !errors.Is(err, ErrFrame) {
		t.Errorf("Grant(mfn 2^32) = %v, want ErrFrame", err)
	}
	if tab.Active() != 0 {
		t.Error("failed grant counted as active")
	}
}

type badFrames struct {
	max  int
	size int
}

func (b badFrames) MaxFrames() (int, error) { return b.max, nil }
func (b badFrames) Grow(n int) ([]byte, error) {
	return make([]byte, b.size), nil
}

func TestPlatformChecks(t *testing.T) {
	if _, err := New(badFrames{max: 0}); !errors.Is(err, ErrFull) {
		t.Errorf("max 0: %v", err)
	}
	tab, err := New(badFrames{max: 2, size: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Grant(1, 5, false); !errors.Is(err, ErrPlatform) {
		t.Errorf("short table: %v", err)
	}
}

// TestConcurrentGrantsAndPeer runs grants from several goroutines while a
// fake peer maps and unmaps the refs: every ref is unique, End either
// succeeds or reports ErrInUse, and in the end nothing is left active.
func TestConcurrentGrantsAndPeer(t *testing.T) {
	h, g, tab := setup(t, 4)
	_, mfn := page(t, g)
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[Ref]int{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				r, err := tab.Grant(backendID, mfn, i%2 == 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[r]++
				if seen[r] > 1 {
					t.Errorf("ref %d active twice", r)
				}
				mu.Unlock()
				m, err := h.MapGrant(backendID, guestID, uint32(r), true)
				if err != nil {
					t.Error(err)
					return
				}
				if err := tab.End(r); !errors.Is(err, ErrInUse) {
					t.Errorf("End while mapped: %v", err)
				}
				m.Unmap()
				mu.Lock()
				seen[r]--
				mu.Unlock()
				if err := tab.End(r); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if tab.Active() != 0 || h.Mappings() != 0 {
		t.Errorf("Active %d, mappings %d", tab.Active(), h.Mappings())
	}
}
