// Package blkif is the wire format of Xen's block-device ring
// (xen/include/public/io/blkif.h, x86_64 layout): the request, indirect
// request and response structures that travel through the shared ring,
// the segment descriptors of indirect pages, and the protocol constants.
//
// The types are plain Go structs with explicit little-endian encoders
// rather than unsafe casts of shared memory: the ring page is shared with
// another domain, so a driver copies a slot out before decoding it, and
// encodes into a slot it owns. Offsets are checked against the C header
// with gcc in blkif_test.go. It is hand-written because no Go package
// describes blkif; the frontend (package blkfront) and the simulated
// backend (package xentest) both use it.
//
// Sector quantities (sector_number, first_sect, last_sect and the
// backend's "sectors" node) are always in 512-byte units, whatever the
// backend's "sector-size": the upstream header was corrected to say so
// (feature-large-sector-size is deprecated) because Linux, the reference
// implementation, always did. "sector-size" only tells the alignment
// requests must keep.
package blkif

import (
	"encoding/binary"
	"fmt"
)

// Operations (BLKIF_OP_*).
const (
	OpRead           = 0
	OpWrite          = 1
	OpWriteBarrier   = 2
	OpFlushDiskcache = 3
	OpDiscard        = 5
	OpIndirect       = 6
)

// Response statuses (BLKIF_RSP_*).
const (
	RspOkay       = 0
	RspError      = -1 // the operation failed (EIO)
	RspEOPNOTSUPP = -2 // the operation is not supported
)

// Bits of the backend's "info" node (VDISK_*).
const (
	VDiskCDROM     = 0x1
	VDiskRemovable = 0x2
	VDiskReadOnly  = 0x4
)

// Geometry.
const (
	// SectorSize is the unit of every sector quantity on the wire.
	SectorSize  = 512
	SectorShift = 9
	PageSize    = 4096
	// SectorsPerPage bounds first_sect/last_sect: 0..7.
	SectorsPerPage = PageSize / SectorSize

	// MaxSegments is BLKIF_MAX_SEGMENTS_PER_REQUEST: segments of a
	// direct request.
	MaxSegments = 11
	// MaxIndirectPages is BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST.
	MaxIndirectPages = 8
	// SegmentsPerIndirectPage is how many segment descriptors fill a
	// page: PAGE_SIZE / sizeof(struct blkif_request_segment).
	SegmentsPerIndirectPage = PageSize / SegmentSize
	// MaxIndirectSegments is the most segments one indirect request
	// can describe.
	MaxIndirectSegments = MaxIndirectPages * SegmentsPerIndirectPage

	SegmentSize         = 8   // struct blkif_request_segment
	RequestSize         = 112 // struct blkif_request
	IndirectRequestSize = 64  // struct blkif_request_indirect (x86_64)
	ResponseSize        = 16  // struct blkif_response
	// SlotSize is the size of a ring slot: the union of request and
	// response.
	SlotSize = RequestSize
)

// Protocol is the value of the frontend's "protocol" node for our ABI
// (XEN_IO_PROTO_ABI_X86_64, io/protocols.h).
const Protocol = "x86_64-abi"

// Field offsets (x86_64).
const (
	offOp        = 0
	offNrSegs    = 1 // u8 in a request, u16 at 2 in an indirect request
	offHandle    = 2
	offID        = 8
	offSector    = 16
	offSegs      = 24
	offIndOp     = 1
	offIndNrSegs = 2
	offIndHandle = 24
	offIndGrefs  = 28
	offRspOp     = 8
	offRspStatus = 10
)

var le = binary.LittleEndian

// Segment is struct blkif_request_segment: a granted page and the
// inclusive range of 512-byte sectors within it to transfer.
type Segment struct {
	Gref      uint32
	FirstSect uint8
	LastSect  uint8
}

// Put encodes s into b[:SegmentSize].
func (s Segment) Put(b []byte) {
	_ = b[SegmentSize-1]
	le.PutUint32(b, s.Gref)
	b[4], b[5], b[6], b[7] = s.FirstSect, s.LastSect, 0, 0
}

// ParseSegment decodes a segment descriptor.
func ParseSegment(b []byte) (Segment, error) {
	if len(b) < SegmentSize {
		return Segment{}, fmt.Errorf("blkif: segment of %d bytes", len(b))
	}
	return Segment{Gref: le.Uint32(b), FirstSect: b[4], LastSect: b[5]}, nil
}

// Valid reports whether the sector range lies within one page.
func (s Segment) Valid() bool {
	return s.FirstSect <= s.LastSect && s.LastSect < SectorsPerPage
}

// Sectors is the number of 512-byte sectors the segment covers (0 if it
// is not Valid).
func (s Segment) Sectors() int {
	if !s.Valid() {
		return 0
	}
	return int(s.LastSect-s.FirstSect) + 1
}

// Request is struct blkif_request, a direct read or write of up to
// MaxSegments segments.
type Request struct {
	Op         uint8
	NrSegments uint8
	Handle     uint16 // the device's virtual-device number (blkif_vdev_t)
	ID         uint64 // echoed in the response
	Sector     uint64 // first 512-byte sector
	Seg        [MaxSegments]Segment
}

// Put encodes r into the slot b (at least RequestSize bytes). Segments
// beyond NrSegments are written as zeros.
func (r *Request) Put(b []byte) {
	_ = b[RequestSize-1]
	clear(b[:RequestSize])
	b[offOp] = r.Op
	b[offNrSegs] = r.NrSegments
	le.PutUint16(b[offHandle:], r.Handle)
	le.PutUint64(b[offID:], r.ID)
	le.PutUint64(b[offSector:], r.Sector)
	for i := 0; i < int(r.NrSegments) && i < MaxSegments; i++ {
		r.Seg[i].Put(b[offSegs+i*SegmentSize:])
	}
}

// IndirectRequest is struct blkif_request_indirect: a request whose
// segment descriptors live in up to MaxIndirectPages granted pages.
type IndirectRequest struct {
	IndirectOp uint8 // OpRead or OpWrite
	NrSegments uint16
	ID         uint64
	Sector     uint64
	Handle     uint16
	Grefs      [MaxIndirectPages]uint32 // pages of segment descriptors
}

// Put encodes r, with operation OpIndirect, into the slot b.
func (r *IndirectRequest) Put(b []byte) {
	_ = b[RequestSize-1]
	clear(b[:RequestSize])
	b[offOp] = OpIndirect
	b[offIndOp] = r.IndirectOp
	le.PutUint16(b[offIndNrSegs:], r.NrSegments)
	le.PutUint64(b[offID:], r.ID)
	le.PutUint64(b[offSector:], r.Sector)
	le.PutUint16(b[offIndHandle:], r.Handle)
	for i, g := range r.Grefs {
		le.PutUint32(b[offIndGrefs+4*i:], g)
	}
}

// IndirectPages is how many descriptor pages n segments need.
func IndirectPages(n int) int {
	return (n + SegmentsPerIndirectPage - 1) / SegmentsPerIndirectPage
}

// Op returns the operation of a request slot.
func Op(b []byte) (uint8, error) {
	if len(b) < RequestSize {
		return 0, fmt.Errorf("blkif: request slot of %d bytes", len(b))
	}
	return b[offOp], nil
}

// ParseRequest decodes a direct request slot. Field values are not
// checked: that is the backend's job.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < RequestSize {
		return Request{}, fmt.Errorf("blkif: request slot of %d bytes", len(b))
	}
	r := Request{
		Op:         b[offOp],
		NrSegments: b[offNrSegs],
		Handle:     le.Uint16(b[offHandle:]),
		ID:         le.Uint64(b[offID:]),
		Sector:     le.Uint64(b[offSector:]),
	}
	for i := range r.Seg {
		r.Seg[i], _ = ParseSegment(b[offSegs+i*SegmentSize:])
	}
	return r, nil
}

// ParseIndirectRequest decodes an indirect request slot.
func ParseIndirectRequest(b []byte) (IndirectRequest, error) {
	if len(b) < IndirectRequestSize {
		return IndirectRequest{}, fmt.Errorf("blkif: indirect request slot of %d bytes", len(b))
	}
	if b[offOp] != OpIndirect {
		return IndirectRequest{}, fmt.Errorf("blkif: operation %d is not indirect", b[offOp])
	}
	r := IndirectRequest{
		IndirectOp: b[offIndOp],
		NrSegments: le.Uint16(b[offIndNrSegs:]),
		ID:         le.Uint64(b[offID:]),
		Sector:     le.Uint64(b[offSector:]),
		Handle:     le.Uint16(b[offIndHandle:]),
	}
	for i := range r.Grefs {
		r.Grefs[i] = le.Uint32(b[offIndGrefs+4*i:])
	}
	return r, nil
}

// Response is struct blkif_response.
type Response struct {
	ID     uint64 // the request's id
	Op     uint8  // the request's operation
	Status int16  // RspOkay, RspError, RspEOPNOTSUPP
}

// Put encodes r into the slot b (at least ResponseSize bytes).
func (r Response) Put(b []byte) {
	_ = b[ResponseSize-1]
	clear(b[:ResponseSize])
	le.PutUint64(b, r.ID)
	b[offRspOp] = r.Op
	le.PutUint16(b[offRspStatus:], uint16(r.Status))
}

// ParseResponse decodes a response slot. Whether the id, operation and
// status make sense is for the frontend to decide.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < ResponseSize {
		return Response{}, fmt.Errorf("blkif: response slot of %d bytes", len(b))
	}
	return Response{
		ID:     le.Uint64(b),
		Op:     b[offRspOp],
		Status: int16(le.Uint16(b[offRspStatus:])),
	}, nil
}
