// Package loader turns the bytes of a kernel file into a checked Xen PV
// x86_64 kernel: bzImage (payload taken out of the setup header and
// decompressed), plain ELF vmlinux, or a whole-file-compressed ELF; then
// the Xen ELF notes found and checked the way Xen's libelf and
// libxenguest do (xen-pv-abi.md §1). Where the kernel lands in memory is
// package loader/layout's job; the decoders are in loader/decompress.
//
// ParseKernelStream does the same without keeping a compressed kernel's
// vmlinux: its headers and notes come from a streaming decompression
// that stops after them, and Kernel.Load decompresses it again straight
// into the guest's memory (stream.go).
//
// Everything here parses guest-supplied data: every offset and size is
// bounds-checked, allocations are bounded by the caller's limit, and bad
// input gives an error wrapping one of the sentinels below. The ELF reader
// is our own rather than debug/elf because libelf's tolerance rules must
// be matched exactly (see elf.go).
package loader

import (
	"errors"
	"fmt"
	"io"

	"github.com/gopvgrub/gopvgrub/loader/decompress"
	"github.com/gopvgrub/gopvgrub/loader/layout"
)

// Errors, for errors.Is.
var (
	// ErrNotKernel: the file is neither a bzImage nor an ELF (nor a
	// compressed ELF).
	ErrNotKernel = errors.New("not a kernel image")
	// ErrNotPV: an x86_64 ELF without Xen notes.
	ErrNotPV = errors.New("kernel has no Xen PV notes (not built with CONFIG_XEN_PV)")
	// Err32Bit: a 32-bit ELF.
	Err32Bit = errors.New("32-bit kernel: gopvgrub boots x86_64 PV kernels only")
	// ErrBadELF: a malformed ELF file.
	ErrBadELF = errors.New("malformed ELF")
	// ErrBadBzImage: a malformed bzImage setup header.
	ErrBadBzImage = errors.New("malformed bzImage")
	// ErrBadParams: the Xen notes contradict each other or the ELF.
	ErrBadParams = errors.New("inconsistent Xen parameters")
	// ErrUnsupported: a well-formed image Xen would refuse to boot here.
	ErrUnsupported = errors.New("unsupported kernel")
	// ErrTooLarge: the kernel (compressed or not) exceeds the limit.
	ErrTooLarge = decompress.ErrTooLarge
)

// Kernel is a parsed PV kernel.
type Kernel struct {
	// Container is "bzImage", "ELF", or "compressed ELF".
	Container string
	// Compression of the bzImage payload or of the whole file
	// (decompress.None for a plain ELF).
	Compression decompress.Format
	// Setup is the bzImage setup header, nil for ELF files.
	Setup *SetupHeader
	// ELF is the vmlinux: the decompressed payload or the file itself;
	// nil for a compressed kernel from ParseKernelStream.
	ELF []byte
	// Segments are the ELF program headers.
	Segments []Segment
	// Params are the Xen parameters from the notes.
	Params *Params
	// PStart and PEnd are the lowest and highest physical address of the
	// loadable segments: the image occupies KStart..KEnd in the guest.
	PStart, PEnd uint64

	stream *kernelStream // ParseKernelStream's decoder and kept bytes
}

// GuestType is what libxenguest calls an x86_64 PV kernel; it is also the
// start_info magic.
const GuestType = "xen-3.0-x86_64"

// ParseKernel reads a kernel of size bytes from r and parses it. limit
// bounds the memory used for the file and for the decompressed vmlinux
// (each), normally the domain's free memory.
func ParseKernel(r io.ReaderAt, size, limit int64) (*Kernel, error) {
	if size < 0 {
		return nil, fmt.Errorf("loader: kernel size %d: %w", size, ErrNotKernel)
	}
	if size > limit {
		return nil, fmt.Errorf("loader: kernel file of %d bytes, limit %d: %w", size, limit, ErrTooLarge)
	}
	b := make([]byte, size)
	if n, err := r.ReadAt(b, 0); n != len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("loader: reading kernel: %w", err)
	}
	return ParseKernelBytes(b, limit)
}

// ParseKernelBytes is ParseKernel for a kernel already in memory. The
// returned Kernel may share b.
func ParseKernelBytes(b []byte, limit int64) (*Kernel, error) {
	k, src, lim, err := openKernel(b, limit)
	if err != nil {
		return nil, err
	}
	if src != nil {
		if k.ELF, err = decompress.Decompress(k.Compression, src, lim); err != nil {
			return nil, fmt.Errorf("loader: %s: %w", k.payloadName(), err)
		}
	}
	if err := k.parse(memELF(k.ELF)); err != nil {
		return nil, err
	}
	return k, nil
}

// ParseKernelStream is ParseKernelBytes without keeping the vmlinux: a
// compressed one is decoded as a stream, only as far as its headers and
// Xen notes, keeping only those; Load decodes it again, straight into
// its destination. Memory besides b is the decoder's state, which the
// Kernel keeps for Load (so that once the caller has allocated the
// destination, loading needs no large allocation). Checks that need the
// vmlinux's size, and the stream's own checksums past the notes, are
// made by Load, with the errors ParseKernelBytes would give. A plain ELF
// file is parsed in place. b must not change while the Kernel is used.
func ParseKernelStream(b []byte, limit int64) (*Kernel, error) {
	k, src, lim, err := openKernel(b, limit)
	if err != nil {
		return nil, err
	}
	if src == nil {
		if err := k.parse(memELF(k.ELF)); err != nil {
			return nil, err
		}
		return k, nil
	}
	r, err := decompress.NewReader(k.Compression, src, lim)
	if err != nil {
		return nil, fmt.Errorf("loader: %s: %w", k.payloadName(), err)
	}
	if err := k.parseStream(r, func() ([]byte, error) { return decompress.Decompress(k.Compression, src, lim) }); err != nil {
		r.Close()
		return nil, err
	}
	return k, nil
}

// openKernel identifies the container of b. For a compressed vmlinux it
// returns the compressed bytes and the decompression limit; for a plain
// ELF, k.ELF is b.
func openKernel(b []byte, limit int64) (k *Kernel, src []byte, lim int64, err error) {
	k = &Kernel{}
	switch {
	case IsBzImage(b):
		k.Container = "bzImage"
		if k.Setup, err = ParseSetupHeader(b); err != nil {
			return nil, nil, 0, fmt.Errorf("loader: %w", err)
		}
		payload := k.Setup.Payload(b)
		k.Compression = decompress.Detect(payload)
		if k.Compression == decompress.None {
			return nil, nil, 0, fmt.Errorf("loader: bzImage payload (magic % x): %w", payload[:min(len(payload), 6)], decompress.ErrFormat)
		}
		// init_size is the memory the kernel needs to decompress itself,
		// which is more than the vmlinux in every kernel we know: twice
		// that is a generous bound against a lying size trailer.
		lim := limit
		if k.Setup.InitSize > 0 {
			lim = min(lim, 2*int64(k.Setup.InitSize))
		}
		return k, payload, lim, nil
	case len(b) >= 4 && string(b[:4]) == "\x7fELF":
		k.Container = "ELF"
		k.ELF = b
		return k, nil, 0, nil
	default:
		// xl accepts a gzipped vmlinux; we accept every format we decode.
		k.Compression = decompress.Detect(b)
		if k.Compression == decompress.None {
			return nil, nil, 0, fmt.Errorf("loader: %w (magic % x)", ErrNotKernel, b[:min(len(b), 8)])
		}
		k.Container = "compressed ELF"
		return k, b, limit, nil
	}
}

// payloadName names the compressed data in errors.
func (k *Kernel) payloadName() string {
	if k.Container == "bzImage" {
		return "bzImage payload"
	}
	return "kernel file"
}

// parse parses the vmlinux d into k.
func (k *Kernel) parse(d elfData) error {
	f, p, pstart, pend, err := parseELF(d)
	if err != nil {
		if k.Container != "ELF" && errors.Is(err, ErrNotKernel) {
			err = fmt.Errorf("%w: decompressed %s is not an ELF file", ErrNotKernel, k.Compression)
		}
		return fmt.Errorf("loader: %w", err)
	}
	k.Segments, k.Params, k.PStart, k.PEnd = f.phdrs, p, pstart, pend
	return nil
}

// parseELF is the whole parse: header, Xen parameters, load bounds.
func parseELF(d elfData) (f *elfFile, p *Params, pstart, pend uint64, err error) {
	if f, err = parseELFHeader(d); err != nil {
		return nil, nil, 0, 0, err
	}
	if p, err = xenParams(f); err != nil {
		return nil, nil, 0, 0, err
	}
	if pstart, pend, err = f.loadBounds(); err != nil {
		return nil, nil, 0, 0, err
	}
	return f, p, pstart, pend, nil
}

// ImageSize is the number of bytes the loaded image spans
// (KEnd - KStart); Load needs a buffer that large.
func (k *Kernel) ImageSize() uint64 { return k.PEnd - k.PStart }

// Load copies the loadable segments into dst, which stands for the guest
// memory from KStart, as libelf's elf_load_binary: each segment's file
// bytes go to p_paddr - PStart and the rest up to p_memsz is zeroed. dst
// must be at least ImageSize bytes; bytes between segments are left alone.
// A Kernel from ParseKernelStream decodes its vmlinux again for this,
// straight into dst, and then drops its decoder.
func (k *Kernel) Load(dst []byte) error {
	if uint64(len(dst)) < k.ImageSize() {
		return fmt.Errorf("loader: image needs %d bytes, buffer has %d: %w", k.ImageSize(), len(dst), ErrTooLarge)
	}
	if err := k.checkBudget(); err != nil {
		return err
	}
	if k.ELF == nil && k.stream != nil {
		return k.loadStream(dst)
	}
	for _, s := range k.Segments {
		if !s.Loadable {
			continue
		}
		// loadBounds checked offset, sizes and the address range.
		at := s.Paddr - k.PStart
		n := copy(dst[at:at+s.Filesz], k.ELF[s.Offset:s.Offset+s.Filesz])
		clear(dst[at+uint64(n) : at+s.Memsz])
	}
	return nil
}

// checkBudget: libelf refuses segments that add up to more than twice
// the image: overlapping segments could otherwise make loading quadratic.
func (k *Kernel) checkBudget() error {
	budget := 2 * k.ImageSize()
	for i, s := range k.Segments {
		if !s.Loadable {
			continue
		}
		if s.Memsz > budget {
			return fmt.Errorf("loader: segment %d: %w: segments total more than twice the image", i, ErrBadELF)
		}
		budget -= s.Memsz
	}
	return nil
}

// HasNote reports whether the kernel carries Xen note typ.
func (k *Kernel) HasNote(typ uint32) bool {
	for _, n := range k.Params.Notes {
		if n.Type == typ {
			return true
		}
	}
	return false
}

// LayoutImage returns what package layout needs to place this kernel.
func (k *Kernel) LayoutImage() layout.Image {
	p := k.Params
	return layout.Image{
		VirtBase:      p.VirtBase,
		KStart:        p.KStart,
		KEnd:          p.KEnd,
		Entry:         p.Entry,
		HypercallPage: p.HypercallPage,
		InitP2M:       p.InitP2M,
		ModStartPFN:   p.ModStartPFN,
	}
}
