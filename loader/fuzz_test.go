package loader

import (
	"bytes"
	"compress/gzip"
	"errors"
	"testing"

	"github.com/gopvgrub/gopvgrub/loader/decompress"
	"github.com/gopvgrub/gopvgrub/loader/layout"
)

// ourErrors are the sentinels every ParseKernelBytes error must wrap.
var ourErrors = []error{
	ErrNotKernel, ErrNotPV, Err32Bit, ErrBadELF, ErrBadBzImage, ErrBadParams, ErrUnsupported,
	ErrTooLarge, decompress.ErrCorrupt, decompress.ErrFormat,
}

func wrapsOurs(err error) bool {
	for _, s := range ourErrors {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzParseELF feeds ELF images (and whatever mutation makes of them) to
// the note parser and checks: no panic, errors wrap a sentinel, an
// accepted kernel satisfies libelf's bounds and loads into its image, and
// parsing and loading it from a stream gives the same result.
func FuzzParseELF(f *testing.F) {
	f.Add(linuxELF().build())
	f.Add(gopvgrubELF().build())
	sec := gopvgrubELF()
	sec.ptNotes, sec.secNotes = nil, gopvgrubNotes()
	f.Add(sec.build())
	legacy := gopvgrubELF()
	legacy.ptNotes = nil
	legacy.xenGuest = "GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0x400000,ELF_PADDR_OFFSET=0x400000,HYPERCALL_PAGE=0x100"
	f.Add(legacy.build())
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsInMemory(t, "fuzz", b, 1<<22)
		k, err := ParseKernelBytes(b, 1<<20)
		if err != nil {
			if !wrapsOurs(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		p := k.Params
		if p.KStart > p.KEnd || p.Entry < p.KStart || p.Entry > p.KEnd || p.VirtBase > p.KStart {
			t.Fatalf("accepted out-of-bounds params %+v", p)
		}
		if k.ImageSize() <= 1<<22 {
			if err := k.Load(make([]byte, k.ImageSize())); err != nil && !wrapsOurs(err) {
				t.Fatalf("Load: %v", err)
			}
		}
		if l, err := layout.Plan(k.LayoutImage(), layout.Options{NrPages: 1 << 14}); err == nil {
			_ = l.Summary()
		}
	})
}

// FuzzSetupHeader feeds bzImage-like files to the setup-header parser and
// the payload path of ParseKernelBytes.
func FuzzSetupHeader(f *testing.F) {
	f.Add(fakeBzImage(0x020f, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
	f.Add(fakeBzImage(0x0208, []byte{0x02, 0x21, 0x4c, 0x18, 5, 0, 0, 0, 0x50, 'h', 'e', 'l', 'l', 'o'}))
	f.Add(fakeBzImage(0x020a, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05, 0x29, 0, 0, 'h', 'e', 'l', 'l', 'o'}))
	f.Add(fakeBzImage(0x020f, gzipped(linuxELF().build())))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseSetupHeader(b)
		if err == nil {
			p := h.Payload(b)
			if len(p) != int(h.PayloadLength) {
				t.Fatalf("payload of %d bytes, header says %d", len(p), h.PayloadLength)
			}
			if _, err := RewritePayload(b, []byte{1, 2, 3, 4, 5}); err != nil {
				t.Fatalf("RewritePayload of a valid image: %v", err)
			}
		} else if !errors.Is(err, ErrBadBzImage) {
			t.Fatalf("error %v", err)
		}
		k, err := ParseKernelBytes(b, 1<<20)
		if err != nil && !wrapsOurs(err) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		// From a stream: accepted exactly when in memory, with the same
		// image (a decoder's error may be worded differently).
		ks, serr := ParseKernelStream(b, 1<<20)
		if serr != nil && !wrapsOurs(serr) {
			t.Fatalf("streamed: error %v wraps no sentinel", serr)
		}
		if err == nil && serr != nil {
			t.Fatalf("accepted in memory, streamed: %v", serr)
		}
		if serr != nil || ks.ImageSize() > 1<<22 {
			return
		}
		got := make([]byte, ks.ImageSize())
		serr = ks.Load(got)
		if (err == nil) != (serr == nil) || serr != nil && !wrapsOurs(serr) {
			t.Fatalf("in memory: %v; streamed Load: %v", err, serr)
		}
		if err == nil {
			want := make([]byte, k.ImageSize())
			if k.Load(want) == nil && !bytes.Equal(got, want) {
				t.Fatal("streamed image differs")
			}
		}
	})
}

// FuzzGuestInfo feeds the legacy __xen_guest string parser.
func FuzzGuestInfo(f *testing.F) {
	f.Add("GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,ELF_PADDR_OFFSET=0xC0000000,HYPERCALL_PAGE=0x2,LOADER=generic")
	f.Add("FEATURES=!writable_page_tables|pae_pgdir_above_4gb,PAE=yes[extended-cr3],BSD_SYMTAB")
	f.Add(",,=,==,VIRT_BASE=0777777777777777777777777")
	f.Fuzz(func(t *testing.T, s string) {
		p := &Params{VirtBase: Unset, HypercallPage: Unset}
		if err := p.parseGuestInfo(s); err != nil && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error %v", err)
		}
	})
}

func gzipped(b []byte) []byte {
	var w bytes.Buffer
	zw := gzip.NewWriter(&w)
	zw.Write(b)
	zw.Close()
	return w.Bytes()
}
