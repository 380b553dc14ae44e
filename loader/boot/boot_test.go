package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/loader"
	"github.com/gopvgrub/gopvgrub/loader/layout"
	"github.com/gopvgrub/gopvgrub/xen"
)

// simMachine is a domain whose frames are scattered: its P2M is a random
// permutation of machine frames, and the loader already uses some PFNs.
type simMachine struct {
	p2m      []uint64
	used     map[uint64]bool // PFNs in use by the loader
	frames   map[uint64][]byte
	allocErr error
	jumped   *Jump
	freed    [][]byte
}

func newSim(pages int, seed int64) *simMachine {
	r := rand.New(rand.NewSource(seed))
	m := &simMachine{used: map[uint64]bool{}, frames: map[uint64][]byte{}}
	for _, i := range r.Perm(pages) {
		m.p2m = append(m.p2m, 0x80000+uint64(i)*3) // sparse, unordered MFNs
	}
	for i := 0; i < pages/10; i++ { // the loader: low memory and some scattered pages
		m.used[uint64(i)] = true
		m.used[uint64(r.Intn(pages))] = true
	}
	return m
}

func (m *simMachine) P2M() ([]uint64, error) { return append([]uint64(nil), m.p2m...), nil }

func (m *simMachine) Alloc(n int) ([]byte, []uint64, error) {
	if m.allocErr != nil {
		return nil, nil, m.allocErr
	}
	mem := make([]byte, n*layout.PageSize)
	var mfns []uint64
	// Hand out free PFNs from the top down, as a real allocator may.
	for pfn := len(m.p2m) - 1; pfn >= 0 && len(mfns) < n; pfn-- {
		if !m.used[uint64(pfn)] {
			m.used[uint64(pfn)] = true
			mfn := m.p2m[pfn]
			m.frames[mfn] = mem[len(mfns)*layout.PageSize : (len(mfns)+1)*layout.PageSize]
			mfns = append(mfns, mfn)
		}
	}
	if len(mfns) < n {
		return nil, nil, errors.New("out of frames")
	}
	return mem, mfns, nil
}

func (m *simMachine) Free(mem []byte) error { m.freed = append(m.freed, mem); return nil }

func (m *simMachine) Jump(j *Jump) error { m.jumped = j; return nil }

// walk translates va through the page tables rooted at l4, as the MMU
// would: it returns the machine frame and whether every level allows
// writing.
func (m *simMachine) walk(t *testing.T, l4, va uint64) (mfn uint64, rw bool) {
	t.Helper()
	mfn, rw = l4, true
	for level := 4; level >= 1; level-- {
		tbl := m.frames[mfn]
		if tbl == nil {
			t.Fatalf("va %#x: level-%d table at MFN %#x is not one of the image's frames", va, level, mfn)
		}
		idx := (va >> (12 + 9*(level-1))) & 511
		e := binary.LittleEndian.Uint64(tbl[idx*8:])
		if e&1 == 0 {
			t.Fatalf("va %#x: level-%d entry %d not present", va, level, idx)
		}
		rw = rw && e&2 != 0
		mfn = (e & 0x000ffffffffff000) >> 12
	}
	return mfn, rw
}

func (m *simMachine) read(t *testing.T, l4, va uint64, n int) []byte {
	t.Helper()
	var out []byte
	for len(out) < n {
		mfn, _ := m.walk(t, l4, va)
		page := m.frames[mfn]
		if page == nil {
			t.Fatalf("va %#x maps MFN %#x, which holds no image data", va, mfn)
		}
		off := int(va & 4095)
		k := min(n-len(out), 4096-off)
		out = append(out, page[off:off+k]...)
		va += uint64(k)
	}
	return out
}

func debianKernel(t *testing.T) *loader.Kernel {
	path := testassets.DebianKernel(t, "", "cloud-amd64")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := loader.ParseKernelBytes(b, 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestPrepareDebianKernel builds the image of a real kernel in a scattered
// simulated domain and checks it the way the kernel will see it: through
// its own page tables.
func TestPrepareDebianKernel(t *testing.T) {
	k := debianKernel(t)
	initrd := bytes.Repeat([]byte("initrd!"), 300000) // ~2 MiB
	for _, mb := range []uint64{128, 512} {
		m := newSim(int(mb<<8), int64(mb))
		dom := Domain{NrPages: mb << 8, StoreEvtchn: 1, ConsoleEvtchn: 2, SharedInfoMA: 0x12345000}
		dom.StoreMFN, dom.ConsoleMFN = m.p2m[5], m.p2m[6] // live rings, in use by the loader
		m.frames[dom.StoreMFN] = bytes.Repeat([]byte{'S'}, 4096)
		m.frames[dom.ConsoleMFN] = bytes.Repeat([]byte{'C'}, 4096)
		p, err := Prepare(m, dom, k, InitrdBytes(initrd), "root=/dev/xvda1 console=hvc0")
		if err != nil {
			t.Fatalf("%d MiB: %v", mb, err)
		}
		j, lay := p.Jump, p.Layout
		l4 := j.P2M[j.L4PFN]

		// The P2M is a permutation of the domain's frames.
		a, b := slices.Clone(j.P2M), slices.Clone(m.p2m)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Fatalf("%d MiB: new P2M is not a permutation of the old one", mb)
		}
		// The kernel image, byte for byte, at its virtual addresses.
		want := make([]byte, k.ImageSize())
		if err := k.Load(want); err != nil {
			t.Fatal(err)
		}
		img := k.LayoutImage()
		if lay.HypercallPFN != layout.Unset {
			off := img.HypercallPage - img.KStart
			copy(want[off:off+4096], loader.HypercallPage())
		}
		if got := m.read(t, l4, img.KStart, len(want)); !bytes.Equal(got, want) {
			t.Fatalf("%d MiB: kernel image differs when read through the new page tables", mb)
		}
		// start_info at RSI, and what it points to.
		si := m.read(t, l4, j.Entry.RSI, layout.StartInfoSize)
		if string(si[:14]) != layout.StartInfoMagic {
			t.Fatalf("%d MiB: start_info magic %q", mb, si[:14])
		}
		psi, err := xen.ParseStartInfo(si)
		if err != nil {
			t.Fatalf("%d MiB: start_info: %v", mb, err)
		}
		if psi.NrPages != mb<<8 || psi.PTBase != lay.PTBase || psi.SharedInfo != dom.SharedInfoMA {
			t.Errorf("%d MiB: start_info nr_pages/pt_base/shared_info wrong", mb)
		}
		if got := m.read(t, l4, lay.MFNList, len(j.P2M)*8); !bytes.Equal(got, u64s(j.P2M)) {
			t.Errorf("%d MiB: the P2M list at mfn_list is not the new P2M", mb)
		}
		if lay.InitrdMapped {
			if got := m.read(t, l4, lay.ModStart, len(initrd)); !bytes.Equal(got, initrd) {
				t.Errorf("%d MiB: initrd differs at mod_start", mb)
			}
		}
		if !bytes.Contains(si, []byte("root=/dev/xvda1 console=hvc0\x00")) {
			t.Errorf("%d MiB: command line missing from start_info", mb)
		}
		// The live rings sit at their new PFNs, writable.
		for _, c := range []struct{ pfn, mfn uint64 }{{lay.ConsolePFN, dom.ConsoleMFN}, {lay.StorePFN, dom.StoreMFN}} {
			got, rw := m.walk(t, l4, img.VirtBase+c.pfn*4096)
			if got != c.mfn || !rw || j.P2M[c.pfn] != c.mfn {
				t.Errorf("%d MiB: PFN %#x maps MFN %#x (rw %v), want the live ring %#x", mb, c.pfn, got, rw, c.mfn)
			}
		}
		// Page-table pages are mapped read-only, as Xen requires to pin.
		for _, pfn := range j.Tables {
			if lay.IsTablePFN(pfn) && pfn < (lay.VirtPgtabEnd-img.VirtBase)/4096 {
				if _, rw := m.walk(t, l4, img.VirtBase+pfn*4096); rw {
					t.Errorf("%d MiB: page table PFN %#x is mapped writable", mb, pfn)
				}
			}
		}
		// Every PFN of the initial mapping is a fresh frame, never one of
		// the loader's own pages (which may be page tables).
		for pfn := uint64(0); pfn < uint64(p.Pages); pfn++ {
			if m.frames[j.P2M[pfn]] == nil {
				t.Fatalf("%d MiB: PFN %#x of the initial mapping is backed by a loader frame", mb, pfn)
			}
		}
		if j.BootStackVA != img.VirtBase+lay.BootStackPFN*4096 || j.Entry.RSP != j.BootStackVA+4096 {
			t.Errorf("%d MiB: boot stack %#x, rsp %#x", mb, j.BootStackVA, j.Entry.RSP)
		}
	}
}

func u64s(v []uint64) []byte {
	b := make([]byte, len(v)*8)
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[i*8:], x)
	}
	return b
}

func TestPrepareErrors(t *testing.T) {
	k := debianKernel(t)
	m := newSim(4096, 1) // 16 MiB: the kernel alone needs more
	m.p2m = m.p2m[:4096]
	dom := Domain{NrPages: 4096, StoreMFN: m.p2m[1], ConsoleMFN: m.p2m[2]}
	if _, err := Prepare(m, dom, k, Initrd{}, ""); !errors.Is(err, ErrNoMemory) {
		t.Errorf("16 MiB domain: %v, want ErrNoMemory", err)
	}
	m = newSim(32768, 2)
	m.allocErr = errors.New("ENOMEM")
	dom = Domain{NrPages: 32768, StoreMFN: m.p2m[1], ConsoleMFN: m.p2m[2]}
	if _, err := Prepare(m, dom, k, Initrd{}, ""); !errors.Is(err, ErrNoMemory) {
		t.Errorf("allocation failure: %v, want ErrNoMemory", err)
	}
	m = newSim(32768, 3)
	big := make([]byte, 130<<20) // an initrd larger than the domain
	if _, err := Prepare(m, dom, k, InitrdBytes(big), ""); err == nil {
		t.Error("an initrd larger than the domain was accepted")
	}
}

func TestPermute(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for iter := 0; iter < 200; iter++ {
		n := 1 + r.Intn(300)
		old := make([]uint64, n)
		for i, v := range r.Perm(n) {
			old[i] = uint64(v) + 1000
		}
		nf := r.Intn(n)
		order := r.Perm(n)
		fresh := make([]uint64, 0, nf)
		for _, pfn := range order[:nf] {
			fresh = append(fresh, old[pfn])
		}
		pins := map[uint64]uint64{}
		if nf+2 <= n && nf > 2 {
			pins[uint64(r.Intn(nf))] = old[order[nf]]
			pins[uint64(nf+r.Intn(n-nf))] = old[order[nf+1]]
		}
		p, err := Permute(old, fresh, pins)
		if err != nil {
			t.Fatal(err)
		}
		for tg, mfn := range fresh {
			if want, pinned := pins[uint64(tg)]; pinned {
				mfn = want
			}
			if p[tg] != mfn {
				t.Fatalf("iter %d: PFN %d has MFN %d, want %d", iter, tg, p[tg], mfn)
			}
		}
		for pfn, mfn := range pins {
			if p[pfn] != mfn {
				t.Fatalf("iter %d: pinned PFN %d has %d, want %d", iter, pfn, p[pfn], mfn)
			}
		}
		a, b := slices.Clone(p), slices.Clone(old)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Fatalf("iter %d: not a permutation", iter)
		}
	}
	bad := []struct {
		name  string
		old   []uint64
		fresh []uint64
		pins  map[uint64]uint64
	}{
		{"duplicate in P2M", []uint64{1, 1, 2}, nil, nil},
		{"foreign fresh frame", []uint64{1, 2, 3}, []uint64{9}, nil},
		{"fresh twice", []uint64{1, 2, 3}, []uint64{2, 2}, nil},
		{"pin beyond", []uint64{1, 2, 3}, nil, map[uint64]uint64{3: 1}},
		{"pin foreign", []uint64{1, 2, 3}, nil, map[uint64]uint64{0: 7}},
		{"pin is fresh", []uint64{1, 2, 3}, []uint64{2}, map[uint64]uint64{1: 2}},
		{"too many fresh", []uint64{1}, []uint64{1, 2}, nil},
	}
	for _, c := range bad {
		if _, err := Permute(c.old, c.fresh, c.pins); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// simDomain is a fresh simulated domain of mb MiB with its live rings.
func simDomain(mb uint64, seed int64) (*simMachine, Domain) {
	m := newSim(int(mb<<8), seed)
	dom := Domain{NrPages: mb << 8, StoreEvtchn: 1, ConsoleEvtchn: 2, SharedInfoMA: 0x12345000}
	dom.StoreMFN, dom.ConsoleMFN = m.p2m[5], m.p2m[6]
	m.frames[dom.StoreMFN] = bytes.Repeat([]byte{'S'}, 4096)
	m.frames[dom.ConsoleMFN] = bytes.Repeat([]byte{'C'}, 4096)
	return m, dom
}

// TestPrepareStreamed: Debian 12's generic kernel (an xz bzImage whose
// vmlinux is 63 MiB) and two initrds, loaded as the bootloader now does
// (the kernel decompressed straight into the window, the initrds read
// from their files into it), give a window byte for byte equal to the
// old way's (the whole vmlinux and the concatenated initrds in memory),
// in a 128 MiB domain.
func TestPrepareStreamed(t *testing.T) {
	path := testassets.DebianKernel(t, "", "amd64")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	var cat []byte
	for i, n := range []int{1 << 20, 7<<20 + 123} {
		b := bytes.Repeat([]byte{byte('a' + i)}, n)
		copy(b, "070701") // it does not matter what they hold
		f := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files, cat = append(files, f), append(cat, b...)
	}
	const cmdline = "root=/dev/xvda1 console=hvc0"

	old, err := loader.ParseKernelBytes(raw, 512<<20)
	if err != nil {
		t.Fatal(err)
	}
	mOld, dom := simDomain(128, 9)
	pOld, err := Prepare(mOld, dom, old, InitrdBytes(cat), cmdline)
	if err != nil {
		t.Fatal(err)
	}

	k, err := loader.ParseKernelStream(raw, 512<<20)
	if err != nil {
		t.Fatal(err)
	}
	if k.ELF != nil {
		t.Fatal("ParseKernelStream kept the vmlinux")
	}
	mNew, dom := simDomain(128, 9)
	initrd := Initrd{Size: uint64(len(cat)), Write: func(dst []byte) error {
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return err
			}
			n, err := io.ReadFull(fh, dst)
			fh.Close()
			if err != nil && err != io.ErrUnexpectedEOF {
				return err
			}
			dst = dst[n:]
		}
		return nil
	}}
	pNew, err := Prepare(mNew, dom, k, initrd, cmdline)
	if err != nil {
		t.Fatal(err)
	}
	if pNew.Pages != pOld.Pages || !slices.Equal(pNew.Jump.P2M, pOld.Jump.P2M) {
		t.Fatalf("layouts differ: %d and %d pages", pNew.Pages, pOld.Pages)
	}
	if !bytes.Equal(pNew.Jump.Window, pOld.Jump.Window) {
		t.Fatal("the window differs from the old way's")
	}
	// The image: the kernel is at its address, read through the tables.
	img := make([]byte, old.ImageSize())
	old.Load(img)
	if got := mNew.read(t, pNew.Jump.P2M[pNew.Jump.L4PFN], k.LayoutImage().KStart, len(img)); !bytes.Equal(got, img) {
		t.Fatal("kernel image differs when read through the new page tables")
	}
}

// failingKernel lays out like k and fails to load.
type failingKernel struct{ *loader.Kernel }

func (failingKernel) Load([]byte) error { return errors.New("stream broke") }

// TestPrepareGivesBack: when the kernel or the initrd fails to load, the
// window goes back to the machine, so that a fallback entry has the
// memory.
func TestPrepareGivesBack(t *testing.T) {
	k := debianKernel(t)
	for _, tc := range []struct {
		name   string
		k      Kernel
		initrd Initrd
		msg    string
	}{
		{"kernel", failingKernel{k}, InitrdBytes([]byte("initrd")), "boot: load kernel: stream broke"},
		{"initrd", k, Initrd{Size: 5000, Write: func([]byte) error { return errors.New("disk gone") }}, "boot: load initrd: disk gone"},
	} {
		m, dom := simDomain(256, 4)
		_, err := Prepare(m, dom, tc.k, tc.initrd, "")
		if err == nil || err.Error() != tc.msg {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.msg)
		}
		if len(m.freed) != 1 || len(m.freed[0]) == 0 || len(m.freed[0])%4096 != 0 {
			t.Errorf("%s: window not given back (%d frees)", tc.name, len(m.freed))
		}
	}
	m, dom := simDomain(256, 4)
	if _, err := Prepare(m, dom, k, InitrdBytes([]byte("ok")), ""); err != nil || len(m.freed) != 0 {
		t.Errorf("success: %v, %d frees", err, len(m.freed))
	}
}

// TestInitrdParts: parts go back to back, each exactly its size; a file
// shorter or longer than its size (it changed, or its size lied) is an
// error, not a shifted or cut initrd.
func TestInitrdParts(t *testing.T) {
	part := func(name, s string, size int) InitrdPart {
		return InitrdPart{Name: name, Size: uint64(size), R: bytes.NewReader([]byte(s))}
	}
	in := InitrdParts([]InitrdPart{part("a", "micro", 5), part("b", "", 0), part("c", "code!", 5)})
	dst := make([]byte, in.Size)
	if err := in.Write(dst); err != nil || string(dst) != "microcode!" {
		t.Fatalf("%q, %v", dst, err)
	}
	for _, tc := range []struct {
		p   InitrdPart
		msg string
	}{
		{part("short", "abc", 5), "short: 3 of 5 bytes: unexpected EOF"},
		{part("long", "abcdef", 5), "long: more than its size, 5 bytes"},
	} {
		in := InitrdParts([]InitrdPart{part("a", "x", 1), tc.p})
		if err := in.Write(make([]byte, in.Size)); err == nil || err.Error() != tc.msg {
			t.Errorf("%s: %v, want %q", tc.p.Name, err, tc.msg)
		}
	}
}
