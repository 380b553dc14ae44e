package loader

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/loader/decompress"
)

// bytesRewinder streams a vmlinux held in memory, in pieces of odd
// sizes, counting the passes made over it.
type bytesRewinder struct {
	b       []byte
	pos     int
	rewinds int
	closed  bool
}

func (r *bytesRewinder) Read(p []byte) (int, error) {
	if r.pos >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+r.pos%3001)], r.b[r.pos:])
	r.pos += n
	return n, nil
}

func (r *bytesRewinder) Rewind() error { r.pos = 0; r.rewinds++; return nil }
func (r *bytesRewinder) Close() error  { r.closed = true; return nil }

// parseStreamed parses vmlinux b as ParseKernelStream parses a
// decompressed one.
func parseStreamed(b []byte) (*Kernel, *bytesRewinder, error) {
	k := &Kernel{Container: "ELF"}
	r := &bytesRewinder{b: b}
	if err := k.parseStream(r, func() ([]byte, error) { return bytes.Clone(b), nil }); err != nil {
		return nil, r, err
	}
	return k, r, nil
}

// sameAsInMemory checks that the streaming parse and Load of vmlinux b
// agree with the in-memory ones (ParseKernelBytes's for an ELF file) and
// Load: the same parameters and image bytes, or the same error (which a
// streaming parse may only report at Load, when it needs the file's
// size). Images larger than maxImage are parsed, not loaded.
func sameAsInMemory(t *testing.T, name string, b []byte, maxImage uint64) {
	t.Helper()
	want := &Kernel{Container: "ELF", ELF: b}
	werr := want.parse(memELF(b))
	got, _, gerr := parseStreamed(b)
	var wantImg, gotImg []byte
	if werr == nil && gerr == nil {
		if !reflect.DeepEqual(got.Params, want.Params) || !reflect.DeepEqual(got.Segments, want.Segments) ||
			got.PStart != want.PStart || got.PEnd != want.PEnd {
			t.Fatalf("%s: streamed parse differs:\n%+v\n%+v", name, got.Params, want.Params)
		}
		if want.ImageSize() > maxImage {
			return
		}
	}
	if werr == nil && want.ImageSize() <= maxImage {
		wantImg = bytes.Repeat([]byte{0xee}, int(want.ImageSize()))
		werr = want.Load(wantImg)
	}
	if gerr == nil {
		if got.ImageSize() > maxImage {
			// Provisionally accepted, too large to load here: it must
			// be the in-memory parse's error that Load would report.
			if werr == nil {
				t.Fatalf("%s: streamed image of %#x bytes, in memory %#x", name, got.ImageSize(), want.ImageSize())
			}
			return
		}
		gotImg = bytes.Repeat([]byte{0xee}, int(got.ImageSize()))
		gerr = got.Load(gotImg)
	}
	if werr != nil || gerr != nil {
		if werr == nil || gerr == nil || werr.Error() != gerr.Error() {
			t.Fatalf("%s: in memory: %v; streamed: %v", name, werr, gerr)
		}
		return
	}
	if !bytes.Equal(gotImg, wantImg) {
		t.Fatalf("%s: streamed image differs", name)
	}
}

// TestStreamSameAsInMemory: every test image, good or bad, parses and
// loads from a stream exactly as from memory.
func TestStreamSameAsInMemory(t *testing.T) {
	sec := gopvgrubELF()
	sec.ptNotes, sec.secNotes = notes(note("GNU", 3, []byte("build-id"))), gopvgrubNotes()
	off0 := gopvgrubELF()
	off0.ptNoteOff0, off0.secNotes = true, gopvgrubNotes()
	legacy := gopvgrubELF()
	legacy.ptNotes = nil
	legacy.xenGuest = "GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0x400000,HYPERCALL_PAGE=0x100,LOADER=generic"
	imgs := map[string][]byte{
		"linux": linuxELF().build(), "gopvgrub": gopvgrubELF().build(),
		"SHT_NOTE": sec.build(), "PT_NOTE at 0": off0.build(), "__xen_guest": legacy.build(),
	}
	for _, tc := range badImages() {
		imgs[tc.name] = tc.img
	}
	// Notes followed by more than a string's reach: a stream stops after
	// them, and the checks against the file's size wait for Load.
	tail := linuxELF()
	tail.secNotes = note("GNU", 1, make([]byte, 16<<10))
	full := tail.build()
	imgs["notes mid-file"] = full
	imgs["notes mid-file, section headers past end"] = full[:len(full)-10]
	pastEnd := bytes.Clone(full)
	ph2 := pastEnd[64+2*elf64PhdrLen:] // segment 2: p_filesz, p_memsz
	binary.LittleEndian.PutUint64(ph2[32:], 0x10000)
	binary.LittleEndian.PutUint64(ph2[40:], 0x10000)
	imgs["notes mid-file, segment data past end"] = pastEnd
	if _, err := ParseKernelBytes(pastEnd, 1<<20); err == nil || !strings.Contains(err.Error(), "segment 2 data past end") {
		t.Fatalf("segment data past end: %v", err)
	}
	for name, b := range imgs {
		sameAsInMemory(t, name, b, 64<<20)
		// And every prefix of it.
		for cut := 0; cut < len(b); cut += 1 + cut/8 {
			sameAsInMemory(t, name+" cut", b[:cut], 64<<20)
		}
	}
}

// TestStreamPasses: a kernel with PT_NOTE notes is parsed in one pass
// that stops at the end of its notes; the fallbacks to section notes and
// __xen_guest start the stream over, a bounded number of times.
func TestStreamPasses(t *testing.T) {
	// The Xen notes, then 1 MiB that the parse must not read.
	lin := linuxELF()
	lin.secNotes = note("GNU", 1, make([]byte, 1<<20))
	b := lin.build()
	if off := bytes.Index(b, []byte("Xen\x00")); off < 0 || off > len(b)/2 {
		t.Fatalf("notes at %d of %d", off, len(b))
	}
	for _, tc := range []struct {
		name    string
		img     []byte
		rewinds int
		early   bool // stopped before the end of the file
	}{
		{"PT_NOTE", b, 0, true},
		{"SHT_NOTE", mustBuild(func(e *testELF) { e.ptNotes, e.secNotes = nil, gopvgrubNotes() }), 1, false},
		{"__xen_guest", mustBuild(func(e *testELF) {
			e.ptNotes, e.xenGuest = nil, "GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0x400000,LOADER=generic"
		}), 2, false},
	} {
		k, r, err := parseStreamed(tc.img)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.rewinds != tc.rewinds {
			t.Errorf("%s: %d passes over the stream, want %d", tc.name, r.rewinds+1, tc.rewinds+1)
		}
		if early := !k.stream.kept.eof; early != tc.early {
			t.Errorf("%s: stopped early %v (at %d of %d)", tc.name, early, k.stream.kept.pos, len(tc.img))
		}
		if err := k.Load(make([]byte, k.ImageSize())); err != nil || !r.closed {
			t.Errorf("%s: Load: %v, decoder closed %v", tc.name, err, r.closed)
		}
		if err := k.Load(make([]byte, k.ImageSize())); err == nil {
			t.Errorf("%s: second Load of a streamed kernel succeeded", tc.name)
		}
	}
	// More passes than allowed: the vmlinux is decoded whole instead.
	defer func(n int) { maxStreamPasses = n }(maxStreamPasses)
	maxStreamPasses = 0
	img := mustBuild(func(e *testELF) { e.ptNotes, e.secNotes = nil, gopvgrubNotes() })
	k, r, err := parseStreamed(img)
	if err != nil || k.stream != nil || !bytes.Equal(k.ELF, img) || k.Params.Source != "SHT_NOTE" || !r.closed {
		t.Fatalf("fallback: %v", err)
	}
}

func mustBuild(f func(*testELF)) []byte { e := gopvgrubELF(); f(&e); return e.build() }

// TestPlanLoad: random, overlapping segment tables load from a stream
// exactly as Load writes them in program-header order.
func TestPlanLoad(t *testing.T) {
	rnd := rand.New(rand.NewSource(3))
	for iter := 0; iter < 3000; iter++ {
		file := make([]byte, 1+rnd.Intn(4096))
		rnd.Read(file)
		var segs []Segment
		pstart, pend := ^uint64(0), uint64(0)
		for i := rnd.Intn(8); i >= 0; i-- {
			s := Segment{Loadable: rnd.Intn(5) > 0, Paddr: 0x1000 + uint64(rnd.Intn(3000))}
			s.Offset = uint64(rnd.Intn(len(file)))
			s.Filesz = uint64(rnd.Intn(len(file) - int(s.Offset) + 1))
			s.Memsz = s.Filesz + uint64(rnd.Intn(600))
			if rnd.Intn(6) == 0 {
				s.Filesz, s.Memsz = 0, 0
			}
			if s.Loadable {
				pstart, pend = min(pstart, s.Paddr), max(pend, s.Paddr+s.Memsz)
			}
			segs = append(segs, s)
		}
		if pend == 0 {
			continue
		}
		want := &Kernel{ELF: file, Segments: segs, PStart: pstart, PEnd: pend}
		got := &Kernel{Segments: segs, PStart: pstart, PEnd: pend,
			stream: &kernelStream{r: &bytesRewinder{b: file}, kept: &sparseELF{}}}
		a := bytes.Repeat([]byte{0xee}, int(want.ImageSize()))
		b := bytes.Repeat([]byte{0xee}, int(want.ImageSize()))
		werr, gerr := want.Load(a), got.Load(b)
		if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
			t.Fatalf("iter %d: in memory %v, streamed %v", iter, werr, gerr)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("iter %d: images differ for %+v", iter, segs)
		}
	}
}

// wrapBzImage is a bzImage around payload whose init_size allows a
// vmlinux of up to vmlinuxMax bytes.
func wrapBzImage(payload []byte, vmlinuxMax uint32) []byte {
	b := fakeBzImage(0x020f, payload)
	binary.LittleEndian.PutUint32(b[hdrInitSize:], vmlinuxMax)
	return b
}

// bigLinuxELF is a Linux-like kernel of a few MiB whose Xen notes are
// followed by 1 MiB of other data, as Linux's are.
func bigLinuxELF() []byte {
	rnd := rand.New(rand.NewSource(5))
	text := make([]byte, 3<<20)
	for i := 0; i < len(text); i += 64 { // compressible, not trivially
		rnd.Read(text[i : i+8])
	}
	e := linuxELF()
	e.loads[0].data = text
	e.loads[1].paddr, e.loads[2].paddr = 0x1000000+3<<20, 0x1000000+3<<20+0x2000
	e.loads[1].vaddr, e.loads[2].vaddr = 0, linuxBase+e.loads[2].paddr
	e.loads = append(e.loads, testLoad{vaddr: linuxBase + 0x1400000, paddr: 0x1400000, data: text[:1<<20], memsz: 2 << 20})
	e.secNotes = note("GNU", 1, text[1<<20:2<<20])
	return e.build()
}

func gz(t *testing.T, b []byte) []byte {
	var w bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&w, gzip.BestSpeed)
	zw.Write(b)
	zw.Close()
	return binary.LittleEndian.AppendUint32(w.Bytes(), uint32(len(b)))
}

// TestStreamFormats: a kernel in a bzImage with each of the seven
// payload formats (and a gzipped vmlinux) loads from a stream to the
// same image as ParseKernelBytes and Load give.
func TestStreamFormats(t *testing.T) {
	testassets.NeedTools(t, "xz", "lz4", "zstd", "gzip", "bzip2", "lzma", "lzop")
	vmlinux := bigLinuxELF()
	ref, err := ParseKernelBytes(vmlinux, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, ref.ImageSize())
	ref.Load(want)
	for i, c := range testassets.KernelCompressors {
		payload := compress(t, vmlinux, c.Argv)
		for _, img := range [][]byte{wrapBzImage(payload, 8<<20), payload} {
			k, err := ParseKernelStream(img, 64<<20)
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			if k.Compression != compressorFormats[i] || k.ELF != nil || k.stream == nil {
				t.Fatalf("%s: %v, vmlinux kept %v", c.Name, k.Compression, k.ELF != nil)
			}
			if !reflect.DeepEqual(k.Params, ref.Params) || !reflect.DeepEqual(k.Segments, ref.Segments) {
				t.Errorf("%s: parameters differ", c.Name)
			}
			got := make([]byte, k.ImageSize())
			if err := k.Load(got); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: Load: %v, image equal %v", c.Name, err, bytes.Equal(got, want))
			}
		}
	}
	// A plain ELF stays in memory: nothing to stream.
	if k, err := ParseKernelStream(vmlinux, 64<<20); err != nil || k.stream != nil || &k.ELF[0] != &vmlinux[0] {
		t.Errorf("plain ELF: %v", err)
	}
}

func compress(t *testing.T, b []byte, argv []string) []byte {
	t.Helper()
	return binary.LittleEndian.AppendUint32(cTool(t, b, argv...), uint32(len(b)))
}

// TestStreamBrokenPayloads: a truncated or corrupt stream gives a clear
// error, from ParseKernelStream if the damage is before the notes and
// from Load otherwise; never a kernel that loads.
func TestStreamBrokenPayloads(t *testing.T) {
	testassets.NeedTools(t, "xz", "lz4", "zstd", "gzip", "bzip2", "lzma", "lzop")
	vmlinux := bigLinuxELF()
	for i, c := range testassets.KernelCompressors {
		f := compressorFormats[i]
		payload := compress(t, vmlinux, c.Argv)
		tryLoad := func(what string, img []byte) (atParse bool, err error) {
			k, err := ParseKernelStream(img, 64<<20)
			if err != nil {
				return true, err
			}
			return false, k.Load(make([]byte, k.ImageSize()))
		}
		check := func(what string, err error) {
			t.Helper()
			if err == nil {
				t.Fatalf("%v %s: no error", f, what)
			}
			if !strings.HasPrefix(err.Error(), "loader: ") || !wrapsOurs(err) {
				t.Fatalf("%v %s: error %q", f, what, err)
			}
		}
		// Cut early (within the text, before the notes) and late (after
		// them): the first fails the parse, the second the Load.
		n := len(payload) - 4
		for _, tc := range []struct {
			cut     int
			atParse bool
		}{{n / 10, true}, {n - 2, false}} {
			cutImg := wrapBzImage(payload[:tc.cut], 8<<20)
			atParse, err := tryLoad("cut", cutImg)
			check("cut", err)
			// A truncated stream is corrupt, except lz4's, which has no
			// end mark: cut at a block boundary it is a shorter vmlinux.
			if f != decompress.LZ4 && !errors.Is(err, decompress.ErrCorrupt) {
				t.Errorf("%v cut at %d: %v, want ErrCorrupt", f, tc.cut, err)
			}
			if f != decompress.LZ4 && atParse != tc.atParse {
				t.Errorf("%v cut at %d of %d: failed at parse %v, want %v (%v)", f, tc.cut, n, atParse, tc.atParse, err)
			}
		}
		// A flipped byte in the stream's last bytes (checksums, end of
		// stream): the notes parse, Load fails.
		if f == decompress.LZ4 || f == decompress.LZMA {
			continue // no checksums
		}
		bad := bytes.Clone(payload)
		bad[n-3] ^= 0x40
		atParse, err := tryLoad("flipped", wrapBzImage(bad, 8<<20))
		check("flipped", err)
		if atParse || !errors.Is(err, decompress.ErrCorrupt) {
			t.Errorf("%v flipped at the end: at parse %v, %v", f, atParse, err)
		}
	}
	// A bomb: more than twice init_size is ErrTooLarge, from the parse
	// or from Load.
	bomb := append(bytes.Clone(vmlinux), make([]byte, 32<<20)...)
	img := wrapBzImage(gz(t, bomb), 4<<20)
	k, err := ParseKernelStream(img, 64<<20)
	if err == nil {
		err = k.Load(make([]byte, k.ImageSize()))
	}
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "bzImage payload: gzip: more than") {
		t.Errorf("bomb: %v", err)
	}
}

// TestStreamDebianKernels: Debian's kernels, and Debian 12's vmlinux in
// every payload format, load from a stream to exactly the image the
// whole vmlinux gives; the parse stops at the notes, about a third in.
func TestStreamDebianKernels(t *testing.T) {
	testassets.NeedTools(t, "xz", "lz4", "zstd", "gzip", "bzip2", "lzma", "lzop")
	type kernel struct {
		name string
		img  []byte
		want *Kernel // in memory, with its vmlinux
	}
	var ks []kernel
	for _, tc := range []struct{ suite, flavour string }{{"", "amd64"}, {"", "cloud-amd64"}, {"trixie", "cloud-amd64"}} {
		k, raw := readKernel(t, testassets.DebianKernel(t, tc.suite, tc.flavour))
		ks = append(ks, kernel{tc.suite + "/" + tc.flavour, raw, k})
	}
	orig, bz := ks[0].want, ks[0].img
	for _, c := range testassets.KernelCompressors {
		img, err := RewritePayload(bz, recompress(t, orig.ELF, c))
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, kernel{"bzImage " + c.Name, img, orig})
	}
	images := map[*Kernel][]byte{}
	for _, kc := range ks {
		want := images[kc.want]
		if want == nil {
			want = make([]byte, kc.want.ImageSize())
			if err := kc.want.Load(want); err != nil {
				t.Fatal(err)
			}
			images[kc.want] = want
		}
		k, err := ParseKernelStream(kc.img, 512<<20)
		if err != nil {
			t.Fatalf("%s: %v", kc.name, err)
		}
		if k.ELF != nil || !reflect.DeepEqual(k.Params, kc.want.Params) || k.PStart != kc.want.PStart || k.PEnd != kc.want.PEnd {
			t.Errorf("%s: streamed parse differs", kc.name)
		}
		if pos, size := k.stream.kept.pos, uint64(len(kc.want.ELF)); pos > size/2 {
			t.Errorf("%s: the parse read %d of %d bytes", kc.name, pos, size)
		}
		got := make([]byte, k.ImageSize())
		if err := k.Load(got); err != nil {
			t.Fatalf("%s: Load: %v", kc.name, err)
		}
		if sha(got) != sha(want) {
			t.Errorf("%s: streamed image differs from the in-memory one", kc.name)
		}
	}
}
