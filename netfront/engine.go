package netfront

import (
	"encoding/binary"
	"fmt"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/gopvgrub/gopvgrub/netfront/netif"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/sring"
)

// The engines are the protocol logic of the two rings, free of xenbus,
// grants and event channels: they fill request slots, check and consume
// response slots, and read the pages the backend wrote. Device drives them
// under its lock; the tests and fuzz targets drive them directly.

// Limits on what the backend may make us assemble.
const (
	// maxPacket is the largest packet reassembled from several slots
	// (a GSO packet at most; an MTU-sized frame fits one slot).
	maxPacket = netif.MaxTxSize + ipv4.EthernetHeaderSize
	// maxSlots bounds the fragments of one packet.
	maxSlots = netif.NrSlotsMin
	// maxExtras bounds the extra-info slots of one packet (one per type
	// at most).
	maxExtras = netif.ExtraTypeMax
)

// rxStats counts what the receive engine saw.
type rxStats struct {
	packets, bytes    uint64
	errors            uint64 // error statuses, bad offsets or lengths: packet dropped
	multiSlot, extras uint64
	csumFixed         uint64
	idMismatch        uint64 // responses whose id is not their slot (tolerated, as Linux does)
}

// rxEngine keeps the receive ring full of granted pages and reassembles
// packets from its responses. Requests are matched to responses by ring
// position, not id: extra-info slots overlay the id, and netif.h requires
// a backend to answer each request in its own slot.
type rxEngine struct {
	ring *sring.Front
	mask uint32
	// slots maps a ring slot to the buffer posted in it (-1: none).
	slots []int
	pages [][]byte // buffer pages, one per buffer
	refs  []uint32 // their grant references
	free  []int    // buffers not posted
	prod  uint32   // requests produced
	cons  uint32   // responses consumed

	// Reassembly of the packet in progress.
	state    int // rxIdle, rxFrags, rxExtras
	pkt      []byte
	first    netif.RxResponse
	more     bool // the first fragment announced more fragments
	frags    int
	extras   int
	dropping bool

	st rxStats
}

const (
	rxIdle = iota
	rxFrags
	rxExtras
)

func newRxEngine(ring *sring.Front, pages [][]byte, refs []uint32) *rxEngine {
	e := &rxEngine{ring: ring, mask: uint32(ring.Size() - 1), slots: make([]int, ring.Size()), pages: pages, refs: refs}
	for i := range e.slots {
		e.slots[i] = -1
	}
	for i := range pages {
		e.free = append(e.free, i)
	}
	return e
}

// post gives every free buffer to the backend and reports whether it must
// be notified.
func (e *rxEngine) post() bool {
	posted := false
	for len(e.free) > 0 && e.ring.Free() > 0 {
		slot, err := e.ring.NextRequest()
		if err != nil {
			break // full: cannot happen while Free() > 0
		}
		b := e.free[len(e.free)-1]
		e.free = e.free[:len(e.free)-1]
		i := e.prod & e.mask
		netif.RxRequest{ID: uint16(i), Gref: e.refs[b]}.Put(slot)
		e.slots[i] = b
		e.prod++
		posted = true
	}
	return posted && e.ring.Push()
}

// poll consumes every response available, handing each complete packet to
// deliver (which may keep the slice). It reports whether more responses
// arrived after the final check re-armed the event. An error is a
// protocol violation by the backend; the ring must not be used again.
func (e *rxEngine) poll(deliver func([]byte)) (bool, error) {
	slot := make([]byte, netif.RxSlotSize)
	for {
		ok, err := e.ring.NextResponse(slot)
		if err != nil {
			return false, fmt.Errorf("receive ring: %w: %w", ErrProtocol, err)
		}
		if !ok {
			break
		}
		i := e.cons & e.mask
		b := e.slots[i]
		if b < 0 {
			return false, fmt.Errorf("receive response in slot %d, where no buffer was posted: %w", i, ErrProtocol)
		}
		e.slots[i] = -1
		e.free = append(e.free, b)
		e.cons++
		e.consume(slot, i, e.pages[b], deliver)
	}
	more, err := e.ring.FinalCheck()
	if err != nil {
		return false, fmt.Errorf("receive ring: %w: %w", ErrProtocol, err)
	}
	return more, nil
}

// consume handles one response slot whose buffer page is page.
func (e *rxEngine) consume(slot []byte, i uint32, page []byte, deliver func([]byte)) {
	if e.state == rxExtras {
		x := netif.ParseExtra(slot)
		e.extras++
		e.st.extras++
		if e.extras > maxExtras || x.Type == netif.ExtraTypeNone || x.Type >= netif.ExtraTypeMax {
			e.dropping = true
		}
		if x.Flags&netif.ExtraFlagMore != 0 {
			return
		}
		if e.more {
			e.state = rxFrags
			return
		}
		e.finish(deliver)
		return
	}
	r := netif.ParseRxResponse(slot)
	if r.ID != uint16(i) {
		e.st.idMismatch++
	}
	if e.state == rxIdle {
		e.pkt, e.first, e.frags, e.extras, e.dropping = e.pkt[:0], r, 0, 0, false
	}
	e.frags++
	switch {
	case r.Status < 0:
		e.dropping = true // NETIF_RSP_ERROR or _DROPPED
	case int(r.Offset)+int(r.Status) > len(page):
		e.dropping = true
	case e.frags > maxSlots || len(e.pkt)+int(r.Status) > maxPacket:
		e.dropping = true
	case !e.dropping:
		e.pkt = append(e.pkt, page[r.Offset:int(r.Offset)+int(r.Status)]...)
	}
	more := r.Flags&netif.RxMoreData != 0
	if e.state == rxIdle {
		e.more = more
		if r.Flags&netif.RxExtraInfo != 0 {
			e.state = rxExtras
			return
		}
	}
	if more {
		e.state = rxFrags
		return
	}
	e.finish(deliver)
}

func (e *rxEngine) finish(deliver func([]byte)) {
	e.state = rxIdle
	if e.frags > 1 {
		e.st.multiSlot++
	}
	if e.dropping || len(e.pkt) == 0 {
		e.st.errors++
		return
	}
	p := append([]byte(nil), e.pkt...)
	if e.first.Flags&netif.RxCsumBlank != 0 && fixChecksum(p) {
		e.st.csumFixed++
	}
	e.st.packets++
	e.st.bytes += uint64(len(p))
	deliver(p)
}

// fixChecksum completes the UDP or TCP checksum of an IPv4 frame the
// backend marked NETRXF_csum_blank (checksum offload: the field holds only
// the pseudo-header sum, or anything): with receive offload, dom0's own
// TCP and UDP arrive so. The checksum is computed over the data as
// received. Anything else is left alone.
func fixChecksum(f []byte) bool {
	if len(f) < ipv4.EthernetHeaderSize+ipv4.HeaderSize || binary.BigEndian.Uint16(f[12:14]) != ipv4.EtherTypeIPv4 {
		return false
	}
	ip := f[ipv4.EthernetHeaderSize:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ip[0]>>4 != 4 || ihl < ipv4.HeaderSize || total < ihl || total > len(ip) || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return false
	}
	l4 := ip[ihl:total]
	var off int
	switch ip[9] {
	case ipv4.ProtocolUDP:
		off = 6
	case 6: // TCP
		off = 16
	default:
		return false
	}
	if len(l4) < off+2 {
		return false
	}
	l4[off], l4[off+1] = 0, 0
	var pseudo [12]byte
	copy(pseudo[0:8], ip[12:20])
	pseudo[9] = ip[9]
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(l4)))
	c := ipv4.Checksum(l4, uint32(^ipv4.Checksum(pseudo[:], 0)))
	if c == 0 && ip[9] == ipv4.ProtocolUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], c)
	return true
}

// txStats counts what the transmit engine did.
type txStats struct {
	packets, bytes uint64
	errors         uint64 // NETIF_RSP_ERROR or _DROPPED
}

// txEngine sends each frame from its own granted page, one slot per frame
// (we send no scatter-gather: a frame never exceeds a page), and frees
// the page when the response with its id arrives.
type txEngine struct {
	ring  *sring.Front
	pages [][]byte
	refs  []uint32
	free  []int
	busy  []bool
	st    txStats
}

func newTxEngine(ring *sring.Front, pages [][]byte, refs []uint32) *txEngine {
	e := &txEngine{ring: ring, pages: pages, refs: refs, busy: make([]bool, len(pages))}
	for i := range pages {
		e.free = append(e.free, i)
	}
	return e
}

// outstanding is the number of frames sent and not yet answered.
func (e *txEngine) outstanding() int { return len(e.pages) - len(e.free) }

// send queues one frame; the caller checks there is a free page. It
// reports whether the backend must be notified.
func (e *txEngine) send(frame []byte) (bool, error) {
	if len(e.free) == 0 {
		return false, fmt.Errorf("no transmit buffer free")
	}
	if len(frame) > xen.PageSize {
		return false, fmt.Errorf("%d-byte frame exceeds a page", len(frame))
	}
	slot, err := e.ring.NextRequest()
	if err != nil {
		return false, fmt.Errorf("transmit ring: %w", err)
	}
	b := e.free[len(e.free)-1]
	e.free = e.free[:len(e.free)-1]
	e.busy[b] = true
	copy(e.pages[b], frame)
	netif.TxRequest{Gref: e.refs[b], ID: uint16(b), Size: uint16(len(frame))}.Put(slot)
	e.st.packets++
	e.st.bytes += uint64(len(frame))
	return e.ring.Push(), nil
}

// reap consumes the responses available and frees their pages. It reports
// how many were freed and whether more arrived after the final check.
func (e *txEngine) reap() (int, bool, error) {
	slot := make([]byte, netif.TxSlotSize)
	freed := 0
	for {
		ok, err := e.ring.NextResponse(slot)
		if err != nil {
			return freed, false, fmt.Errorf("transmit ring: %w: %w", ErrProtocol, err)
		}
		if !ok {
			break
		}
		r := netif.ParseTxResponse(slot)
		if int(r.ID) >= len(e.busy) || !e.busy[r.ID] {
			return freed, false, fmt.Errorf("transmit response for id %d, not in flight: %w", r.ID, ErrProtocol)
		}
		switch r.Status {
		case netif.RspOkay:
		case netif.RspError, netif.RspDropped:
			e.st.errors++
		default:
			return freed, false, fmt.Errorf("transmit response status %d for id %d: %w", r.Status, r.ID, ErrProtocol)
		}
		e.busy[r.ID] = false
		e.free = append(e.free, int(r.ID))
		freed++
	}
	more, err := e.ring.FinalCheck()
	if err != nil {
		return freed, false, fmt.Errorf("transmit ring: %w: %w", ErrProtocol, err)
	}
	return freed, more, nil
}
