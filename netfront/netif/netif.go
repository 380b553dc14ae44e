// Package netif mirrors the Xen network device interface,
// xen/include/public/io/netif.h: the request and response slots of the
// transmit and receive rings, their flags and statuses, and the extra-info
// slot. netfront and the simulated netback of package xentest both encode
// and decode slots with it.
//
// Slots are encoded into and decoded from []byte views of ring slots (as
// package sring hands them out), little-endian as on x86, rather than through
// unsafe casts; layout_test.go checks the offsets against gcc's reading of
// the header.
package netif

import "encoding/binary"

// Slot sizes: a ring slot is the larger of the request and the response
// (ring.h union). The tx request is 12 bytes, the tx response 4; the rx
// request and response are 8. An extra-info slot overlays either.
const (
	TxSlotSize  = 12
	RxSlotSize  = 8
	ExtraSize   = 8
	ringPage    = 4096
	ringHeader  = 64
	MaxTxSize   = 0xFFFF // XEN_NETIF_MAX_TX_SIZE
	NrSlotsMin  = 18     // XEN_NETIF_NR_SLOTS_MIN
	TxRingSize  = 256    // __RING_SIZE of a one-page tx ring
	RxRingSize  = 256    // __RING_SIZE of a one-page rx ring
	MaxRingSize = 256
)

// Transmit flags (NETTXF_*).
const (
	TxCsumBlank     = 1 << 0
	TxDataValidated = 1 << 1
	TxMoreData      = 1 << 2
	TxExtraInfo     = 1 << 3
)

// Receive flags (NETRXF_*).
const (
	RxDataValidated = 1 << 0
	RxCsumBlank     = 1 << 1
	RxMoreData      = 1 << 2
	RxExtraInfo     = 1 << 3
	RxGSOPrefix     = 1 << 4
)

// Response statuses (NETIF_RSP_*). A positive rx status is the fragment's
// length.
const (
	RspDropped = -2
	RspError   = -1
	RspOkay    = 0
	RspNull    = 1 // answers an extra-info slot
)

// Extra-info types and flags (XEN_NETIF_EXTRA_*).
const (
	ExtraTypeNone     = 0
	ExtraTypeGSO      = 1
	ExtraTypeMcastAdd = 2
	ExtraTypeMcastDel = 3
	ExtraTypeHash     = 4
	ExtraTypeMax      = 5
	ExtraFlagMore     = 1 << 0
)

// TxRequest is struct netif_tx_request.
type TxRequest struct {
	Gref   uint32 // grant of the page holding the data
	Offset uint16 // of the data in the page
	Flags  uint16 // TxCsumBlank…
	ID     uint16 // echoed in the response
	Size   uint16 // first slot: the whole packet; others: this fragment
}

// Put encodes r into a slot of at least TxSlotSize bytes.
func (r TxRequest) Put(b []byte) {
	_ = b[TxSlotSize-1]
	binary.LittleEndian.PutUint32(b[0:], r.Gref)
	binary.LittleEndian.PutUint16(b[4:], r.Offset)
	binary.LittleEndian.PutUint16(b[6:], r.Flags)
	binary.LittleEndian.PutUint16(b[8:], r.ID)
	binary.LittleEndian.PutUint16(b[10:], r.Size)
}

// ParseTxRequest decodes a slot of at least TxSlotSize bytes.
func ParseTxRequest(b []byte) TxRequest {
	_ = b[TxSlotSize-1]
	return TxRequest{
		Gref:   binary.LittleEndian.Uint32(b[0:]),
		Offset: binary.LittleEndian.Uint16(b[4:]),
		Flags:  binary.LittleEndian.Uint16(b[6:]),
		ID:     binary.LittleEndian.Uint16(b[8:]),
		Size:   binary.LittleEndian.Uint16(b[10:]),
	}
}

// TxResponse is struct netif_tx_response.
type TxResponse struct {
	ID     uint16
	Status int16 // RspOkay, RspError, RspDropped, RspNull
}

// Put encodes r into a slot of at least 4 bytes.
func (r TxResponse) Put(b []byte) {
	_ = b[3]
	binary.LittleEndian.PutUint16(b[0:], r.ID)
	binary.LittleEndian.PutUint16(b[2:], uint16(r.Status))
}

// ParseTxResponse decodes a slot of at least 4 bytes.
func ParseTxResponse(b []byte) TxResponse {
	_ = b[3]
	return TxResponse{ID: binary.LittleEndian.Uint16(b[0:]), Status: int16(binary.LittleEndian.Uint16(b[2:]))}
}

// RxRequest is struct netif_rx_request.
type RxRequest struct {
	ID   uint16 // echoed in the response
	Gref uint32 // a page granted writable to the backend
}

// Put encodes r into a slot of at least RxSlotSize bytes.
func (r RxRequest) Put(b []byte) {
	_ = b[RxSlotSize-1]
	binary.LittleEndian.PutUint16(b[0:], r.ID)
	binary.LittleEndian.PutUint16(b[2:], 0)
	binary.LittleEndian.PutUint32(b[4:], r.Gref)
}

// ParseRxRequest decodes a slot of at least RxSlotSize bytes.
func ParseRxRequest(b []byte) RxRequest {
	_ = b[RxSlotSize-1]
	return RxRequest{ID: binary.LittleEndian.Uint16(b[0:]), Gref: binary.LittleEndian.Uint32(b[4:])}
}

// RxResponse is struct netif_rx_response.
type RxResponse struct {
	ID     uint16
	Offset uint16 // of the data in the page
	Flags  uint16 // RxDataValidated…
	Status int16  // > 0: length; < 0: RspError, RspDropped
}

// Put encodes r into a slot of at least RxSlotSize bytes.
func (r RxResponse) Put(b []byte) {
	_ = b[RxSlotSize-1]
	binary.LittleEndian.PutUint16(b[0:], r.ID)
	binary.LittleEndian.PutUint16(b[2:], r.Offset)
	binary.LittleEndian.PutUint16(b[4:], r.Flags)
	binary.LittleEndian.PutUint16(b[6:], uint16(r.Status))
}

// ParseRxResponse decodes a slot of at least RxSlotSize bytes.
func ParseRxResponse(b []byte) RxResponse {
	_ = b[RxSlotSize-1]
	return RxResponse{
		ID:     binary.LittleEndian.Uint16(b[0:]),
		Offset: binary.LittleEndian.Uint16(b[2:]),
		Flags:  binary.LittleEndian.Uint16(b[4:]),
		Status: int16(binary.LittleEndian.Uint16(b[6:])),
	}
}

// Extra is struct netif_extra_info: a type, flags, and six bytes whose
// meaning depends on the type (GSO size/type/features, a multicast MAC, a
// hash).
type Extra struct {
	Type  uint8
	Flags uint8 // ExtraFlagMore: another extra slot follows
	Data  [6]byte
}

// Put encodes e into a slot of at least ExtraSize bytes.
func (e Extra) Put(b []byte) {
	_ = b[ExtraSize-1]
	b[0], b[1] = e.Type, e.Flags
	copy(b[2:8], e.Data[:])
}

// ParseExtra decodes a slot of at least ExtraSize bytes.
func ParseExtra(b []byte) Extra {
	_ = b[ExtraSize-1]
	e := Extra{Type: b[0], Flags: b[1]}
	copy(e.Data[:], b[2:8])
	return e
}

// GSO builds the extra slot of a GSO packet (XEN_NETIF_EXTRA_TYPE_GSO).
func GSO(size uint16, gsoType uint8, features uint16) Extra {
	e := Extra{Type: ExtraTypeGSO}
	binary.LittleEndian.PutUint16(e.Data[0:], size)
	e.Data[2] = gsoType
	binary.LittleEndian.PutUint16(e.Data[4:], features)
	return e
}
