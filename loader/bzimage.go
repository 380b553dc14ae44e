package loader

import (
	"encoding/binary"
	"fmt"

	"github.com/gopvgrub/gopvgrub/loader/decompress"
)

// Setup header fields (Documentation/arch/x86/boot.rst), offsets in the
// file.
const (
	hdrSetupSects     = 0x1f1
	hdrSyssize        = 0x1f4
	hdrMagic          = 0x202
	hdrVersion        = 0x206
	hdrHandoverOffset = 0x264
	hdrPayloadOffset  = 0x248
	hdrPayloadLength  = 0x24c
	hdrInitSize       = 0x260
	hdrKernelInfo     = 0x268
	// Xen's bzImage loader wants the header up to payload_length.
	setupHeaderEnd = 0x250
)

// SetupHeader is the part of a bzImage's setup header a PV loader uses.
type SetupHeader struct {
	SetupSects     uint8
	Version        uint16 // boot protocol, e.g. 0x020f
	PayloadOffset  uint32 // relative to the protected-mode code
	PayloadLength  uint32
	InitSize       uint32 // 0 before protocol 2.10
	PayloadFileOff int64  // (setup_sects+1)*512 + payload_offset
}

// IsBzImage reports whether b starts like a bzImage ("HdrS" magic).
func IsBzImage(b []byte) bool {
	return len(b) >= hdrMagic+4 && string(b[hdrMagic:hdrMagic+4]) == "HdrS"
}

// ParseSetupHeader checks a bzImage's setup header as Xen's bzImage loader
// does (magic, boot protocol ≥ 2.08, the payload inside the file) and
// returns it.
func ParseSetupHeader(b []byte) (*SetupHeader, error) {
	if len(b) < setupHeaderEnd {
		return nil, fmt.Errorf("%w: %d bytes, too small for a setup header", ErrBadBzImage, len(b))
	}
	if !IsBzImage(b) {
		return nil, fmt.Errorf("%w: no HdrS magic", ErrBadBzImage)
	}
	le := binary.LittleEndian
	h := &SetupHeader{
		SetupSects:    b[hdrSetupSects],
		Version:       le.Uint16(b[hdrVersion:]),
		PayloadOffset: le.Uint32(b[hdrPayloadOffset:]),
		PayloadLength: le.Uint32(b[hdrPayloadLength:]),
	}
	if h.Version < 0x0208 {
		return nil, fmt.Errorf("%w: boot protocol %d.%02d too old (payload fields need 2.08)", ErrBadBzImage, h.Version>>8, h.Version&0xff)
	}
	if h.Version >= 0x020a && len(b) >= hdrInitSize+4 {
		h.InitSize = le.Uint32(b[hdrInitSize:])
	}
	// setup_sects is a byte, payload_offset 32 bits: int64 cannot overflow.
	h.PayloadFileOff = (int64(h.SetupSects)+1)*512 + int64(h.PayloadOffset)
	if h.PayloadFileOff >= int64(len(b)) {
		return nil, fmt.Errorf("%w: payload offset %#x past end of file (%#x)", ErrBadBzImage, h.PayloadFileOff, len(b))
	}
	if h.PayloadFileOff+int64(h.PayloadLength) > int64(len(b)) {
		return nil, fmt.Errorf("%w: payload [%#x, +%#x) past end of file (%#x)", ErrBadBzImage, h.PayloadFileOff, h.PayloadLength, len(b))
	}
	if h.PayloadLength == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrBadBzImage)
	}
	return h, nil
}

// Payload returns the compressed payload of bzImage b.
func (h *SetupHeader) Payload(b []byte) []byte {
	return b[h.PayloadFileOff : h.PayloadFileOff+int64(h.PayloadLength)]
}

// RewritePayload returns a copy of bzImage b whose payload is replaced by
// payload (which should end with the 4-byte uncompressed-size trailer, as
// Linux's build writes it), with the setup header updated: payload_length,
// syssize, init_size (raised to cover the uncompressed size if needed),
// and handover_offset and kernel_info_offset when they point past the old
// payload. The result is for PV loaders (Xen's, ours), which take the
// payload out of the file: the image's own decompressor stub still knows
// only its original format.
func RewritePayload(b, payload []byte) ([]byte, error) {
	h, err := ParseSetupHeader(b)
	if err != nil {
		return nil, err
	}
	if int64(len(payload)) > 1<<31 {
		return nil, fmt.Errorf("%w: payload of %d bytes", ErrBadBzImage, len(payload))
	}
	start, end := h.PayloadFileOff, h.PayloadFileOff+int64(h.PayloadLength)
	out := make([]byte, 0, int64(len(b))-int64(h.PayloadLength)+int64(len(payload)))
	out = append(out, b[:start]...)
	out = append(out, payload...)
	out = append(out, b[end:]...)

	le := binary.LittleEndian
	le.PutUint32(out[hdrPayloadLength:], uint32(len(payload)))
	pmStart := (int64(h.SetupSects) + 1) * 512
	le.PutUint32(out[hdrSyssize:], uint32((int64(len(out))-pmStart+15)/16))
	delta := int64(len(payload)) - int64(h.PayloadLength)
	oldEnd := uint32(end - pmStart)
	// Offsets into the protected-mode code that lie after the payload move
	// with it.
	if h.Version >= 0x020b {
		if v := le.Uint32(out[hdrHandoverOffset:]); v != 0 && v >= oldEnd {
			le.PutUint32(out[hdrHandoverOffset:], uint32(int64(v)+delta))
		}
	}
	if h.Version >= 0x020f {
		if v := le.Uint32(out[hdrKernelInfo:]); v != 0 && v >= oldEnd {
			le.PutUint32(out[hdrKernelInfo:], uint32(int64(v)+delta))
		}
	}
	if size, ok := decompress.SizeTrailer(payload); ok && h.Version >= 0x020a {
		need := (size + 4095) &^ 4095
		if need > h.InitSize {
			le.PutUint32(out[hdrInitSize:], need)
		}
	}
	return out, nil
}
