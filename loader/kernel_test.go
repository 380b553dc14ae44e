package loader

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/loader/decompress"
	"github.com/gopvgrub/gopvgrub/loader/layout"
)

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// rawPayload takes the payload out of a bzImage with the offsets of the
// boot protocol, independently of ParseSetupHeader, minus the 4-byte size
// trailer the C tools do not expect.
func rawPayload(t *testing.T, bz []byte) []byte {
	t.Helper()
	off := (int(bz[0x1f1]) + 1) * 512
	off += int(binary.LittleEndian.Uint32(bz[0x248:]))
	n := int(binary.LittleEndian.Uint32(bz[0x24c:]))
	return bz[off : off+n-4]
}

// cTool runs a decompressor over in and returns its output.
func cTool(t *testing.T, in []byte, argv ...string) []byte {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return out
}

// parsed caches kernels across tests: decoding Debian's xz kernel takes
// seconds.
var parsed = struct {
	sync.Mutex
	m map[string]parsedKernel
}{m: map[string]parsedKernel{}}

type parsedKernel struct {
	k   *Kernel
	raw []byte
}

func readKernel(t *testing.T, path string) (*Kernel, []byte) {
	t.Helper()
	parsed.Lock()
	defer parsed.Unlock()
	if p, ok := parsed.m[path]; ok {
		return p.k, p.raw
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKernel(f, st.Size(), 512<<20)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	parsed.m[path] = parsedKernel{k, raw}
	return k, raw
}

// checkLinuxNotes checks what every x86_64 Linux PV kernel carries
// (arch/x86/xen/xen-head.S).
func checkLinuxNotes(t *testing.T, name string, k *Kernel) {
	t.Helper()
	p := k.Params
	if p.GuestOS != "linux" || p.XenVersion != "xen-3.0" || p.Loader != "generic" {
		t.Errorf("%s: GUEST_OS %q XEN_VERSION %q LOADER %q", name, p.GuestOS, p.XenVersion, p.Loader)
	}
	if p.VirtBase != 0xffffffff80000000 || p.PaddrOffset != 0 {
		t.Errorf("%s: VIRT_BASE %#x PADDR_OFFSET %#x", name, p.VirtBase, p.PaddrOffset)
	}
	if !k.HasNote(NoteInitP2M) || p.InitP2M != 0x8000000000 {
		t.Errorf("%s: INIT_P2M %#x", name, p.InitP2M)
	}
	if !k.HasNote(NoteModStartPFN) || !p.ModStartPFN {
		t.Errorf("%s: no MOD_START_PFN", name)
	}
	if !strings.Contains(p.Features, "!writable_page_tables") || p.FeaturesRequired != 1 {
		t.Errorf("%s: FEATURES %q required %#x", name, p.Features, p.FeaturesRequired)
	}
	if p.Source != "PT_NOTE" || p.KStart != 0xffffffff81000000 || p.Entry <= p.KStart || p.Entry >= p.KEnd {
		t.Errorf("%s: source %s kernel [%#x, %#x) entry %#x", name, p.Source, p.KStart, p.KEnd, p.Entry)
	}
}

// TestDebianKernels: Debian 12's generic (xz) and cloud (lz4) kernels and
// Debian 13's cloud kernel (zstd) decode to exactly what the C tools
// produce and parse as PV kernels.
func TestDebianKernels(t *testing.T) {
	testassets.NeedTools(t, "xz", "lz4", "zstd")
	for _, tc := range []struct {
		suite, flavour string
		f              decompress.Format
		tool           []string
	}{
		{"", "amd64", decompress.XZ, []string{"xz", "-dc"}},
		{"", "cloud-amd64", decompress.LZ4, []string{"lz4", "-dc"}},
		{"trixie", "cloud-amd64", decompress.Zstd, []string{"zstd", "-dc"}},
	} {
		name := tc.suite + "/" + tc.flavour
		k, raw := readKernel(t, testassets.DebianKernel(t, tc.suite, tc.flavour))
		if k.Container != "bzImage" || k.Compression != tc.f {
			t.Errorf("%s: %s with %v, want bzImage with %v", name, k.Container, k.Compression, tc.f)
		}
		if want := sha(cTool(t, rawPayload(t, raw), tc.tool...)); sha(k.ELF) != want {
			t.Errorf("%s: vmlinux sha256 %s, %v gives %s", name, sha(k.ELF), tc.tool, want)
		}
		if trailer, _ := decompress.SizeTrailer(k.Setup.Payload(raw)); int(trailer) != len(k.ELF) {
			t.Errorf("%s: %d bytes, trailer says %d", name, len(k.ELF), trailer)
		}
		checkLinuxNotes(t, name, k)
		// The layout takes what the notes say: it fits a 512 MiB domain
		// with a 40 MiB initrd, not a 64 MiB one.
		img := k.LayoutImage()
		if img.KStart != k.Params.KStart || img.KEnd != k.Params.KEnd || !img.ModStartPFN || img.InitP2M != k.Params.InitP2M {
			t.Errorf("%s: layout image %+v", name, img)
		}
		if _, err := layout.Plan(img, layout.Options{NrPages: 512 << 8, InitrdSize: 40 << 20}); err != nil {
			t.Errorf("%s: 512 MiB: %v", name, err)
		}
		if _, err := layout.Plan(img, layout.Options{NrPages: 64 << 8}); !errors.Is(err, layout.ErrNoMemory) {
			t.Errorf("%s: 64 MiB: %v", name, err)
		}
	}
}

// The seven compressors' formats, in testassets.KernelCompressors' order.
var compressorFormats = []decompress.Format{
	decompress.XZ, decompress.LZ4, decompress.Zstd, decompress.Gzip, decompress.Bzip2, decompress.LZMA, decompress.LZO,
}

func recompress(t *testing.T, vmlinux []byte, c testassets.Compressor) []byte {
	t.Helper()
	b, err := testassets.Recompress(vmlinux, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRecompressedKernels: Debian's vmlinux compressed with each of the
// seven tools and put back into the bzImage with RewritePayload parses to
// the same vmlinux; so do the vmlinux itself and a gzipped vmlinux (which
// xl accepts).
func TestRecompressedKernels(t *testing.T) {
	testassets.NeedTools(t, "xz", "lz4", "zstd", "gzip", "bzip2", "lzma", "lzop")
	orig, bz := readKernel(t, testassets.DebianKernel(t, "", "amd64"))
	vmlinux := orig.ELF
	want := sha(vmlinux)

	for i, c := range testassets.KernelCompressors {
		if compressorFormats[i].String() != c.Name {
			t.Fatalf("compressor %d is %s, format %v", i, c.Name, compressorFormats[i])
		}
	}
	payloads := make([][]byte, len(testassets.KernelCompressors))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, c := range testassets.KernelCompressors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			payloads[i] = recompress(t, vmlinux, c)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, f := range compressorFormats {
		img, err := RewritePayload(bz, payloads[i])
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		k, err := ParseKernelBytes(img, 512<<20)
		if err != nil {
			t.Errorf("%v: %v", f, err)
			continue
		}
		if k.Compression != f || k.Container != "bzImage" {
			t.Errorf("%v: parsed as %s/%v", f, k.Container, k.Compression)
		}
		if sha(k.ELF) != want {
			t.Errorf("%v: vmlinux differs", f)
		}
		checkLinuxNotes(t, f.String(), k)
	}

	gz := recompress(t, vmlinux, testassets.Compressor{Name: "gzip", Ext: "whole.gz", Argv: []string{"gzip", "-n", "-1"}})
	for _, tc := range []struct {
		name, container string
		img             []byte
	}{
		{"vmlinux", "ELF", vmlinux},
		{"vmlinux.gz", "compressed ELF", gz[:len(gz)-4]}, // a plain gzip file
	} {
		k, err := ParseKernelBytes(tc.img, 512<<20)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if k.Container != tc.container || sha(k.ELF) != want {
			t.Errorf("%s: %s, sha %s", tc.name, k.Container, sha(k.ELF))
		}
		checkLinuxNotes(t, tc.name, k)
	}
}

// fakeBzImage is a minimal bzImage: setup sectors with a header, then
// "protected-mode code" around the payload.
func fakeBzImage(version uint16, payload []byte) []byte {
	const setupSects = 3
	pm := (setupSects + 1) * 512
	b := make([]byte, pm+0x100+len(payload)+0x80)
	b[0x1f1] = setupSects
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], version)
	binary.LittleEndian.PutUint32(b[0x248:], 0x100)
	binary.LittleEndian.PutUint32(b[0x24c:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[0x260:], 0x10000)
	binary.LittleEndian.PutUint32(b[0x264:], uint32(0x100+len(payload)+0x10)) // handover, after payload
	binary.LittleEndian.PutUint32(b[0x268:], 0x20)                            // kernel_info, before it
	copy(b[pm+0x100:], payload)
	for i := pm + 0x100 + len(payload); i < len(b); i++ {
		b[i] = 0xab
	}
	return b
}

func TestRewritePayload(t *testing.T) {
	old := bytes.Repeat([]byte{0x1f, 0x8b}, 50)
	bz := fakeBzImage(0x020f, old)
	payload := binary.LittleEndian.AppendUint32(bytes.Repeat([]byte{0x28}, 300), 0x50000)
	out, err := RewritePayload(bz, payload)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	h, err := ParseSetupHeader(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Payload(out), payload) {
		t.Error("payload not in place")
	}
	pm := 4 * 512
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"payload_length", le.Uint32(out[0x24c:]), 304},
		{"payload_offset", le.Uint32(out[0x248:]), 0x100},
		{"syssize", le.Uint32(out[0x1f4:]), uint32((len(out) - pm + 15) / 16)},
		{"init_size", le.Uint32(out[0x260:]), 0x50000}, // raised to the trailer
		{"handover_offset", le.Uint32(out[0x264:]), uint32(0x100 + 304 + 0x10)},
		{"kernel_info_offset", le.Uint32(out[0x268:]), 0x20},
		{"file size", uint32(len(out)), uint32(len(bz) - 100 + 304)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if !bytes.Equal(out[:0x1f4], bz[:0x1f4]) || !bytes.Equal(out[0x270:pm+0x100], bz[0x270:pm+0x100]) ||
		!bytes.Equal(out[len(out)-0x80:], bz[len(bz)-0x80:]) {
		t.Error("bytes around the payload changed")
	}
	// A smaller trailer leaves init_size alone.
	small, _ := RewritePayload(bz, binary.LittleEndian.AppendUint32([]byte{1, 2}, 10))
	if le.Uint32(small[0x260:]) != 0x10000 {
		t.Errorf("init_size lowered to %#x", le.Uint32(small[0x260:]))
	}
}

func TestBadBzImages(t *testing.T) {
	gz := func(data []byte) []byte {
		cmd := exec.Command("gzip", "-n", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Skip("gzip")
		}
		return out
	}
	testassets.NeedTools(t, "gzip")
	good := fakeBzImage(0x020f, gz([]byte("not an ELF")))
	lying := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	bomb := fakeBzImage(0x020f, gz(make([]byte, 8<<20)))
	tests := []struct {
		name string
		img  []byte
		is   error
		msg  string
	}{
		{"old protocol", fakeBzImage(0x0207, []byte{0x1f, 0x8b}), ErrBadBzImage, "too old"},
		{"truncated header", good[:0x240], ErrBadBzImage, "too small for a setup header"},
		{"no magic", good[:0x200], ErrNotKernel, "not a kernel"},
		{"payload offset past end", lying(0x248, 0x7fffffff), ErrBadBzImage, "past end of file"},
		{"payload length past end", lying(0x24c, 0x7fffffff), ErrBadBzImage, "past end of file"},
		{"empty payload", lying(0x24c, 0), ErrBadBzImage, "empty payload"},
		{"unknown payload", fakeBzImage(0x020f, []byte("plain text payload")), decompress.ErrFormat, "magic"},
		{"payload is not ELF", good, ErrNotKernel, "not an ELF"},
		{"truncated payload", lying(0x24c, 20), decompress.ErrCorrupt, "corrupt"},
		// init_size 0x10000: twice that bounds the payload.
		{"bomb", bomb, ErrTooLarge, "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKernelBytes(tc.img, 64<<20)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.is, tc.msg)
			}
		})
	}
	// The limit applies to the file itself too.
	if _, err := ParseKernel(bytes.NewReader(good), int64(len(good)), 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("file over limit: %v", err)
	}
	// A reader shorter than the size it claims.
	if _, err := ParseKernel(bytes.NewReader(good), int64(len(good))+10, 1<<20); err == nil {
		t.Error("short reader: no error")
	}
}
