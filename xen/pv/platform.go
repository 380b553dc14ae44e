package pv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/minios/shimabi"
	"github.com/gopvgrub/gopvgrub/xen"
)

// Hypercall and sub-operation numbers used here (xen/include/public/xen.h,
// event_channel.h, grant_table.h).
const (
	hcGrantTableOp   = 20
	hcEventChannelOp = 32
	evtchnAllocUnb   = 6
	evtchnBindInter  = 0
	evtchnSend       = 4
	evtchnClose      = 3
	evtchnUnmask     = 9
	gnttabSetupTable = 2
	gnttabQuerySize  = 6
)

// Platform implements xen.Platform on the shim. The zero value is ready.
type Platform struct {
	mu      sync.Mutex
	gntMFNs []uint64 // grant table frames so far
	gntMem  []byte   // their current mapping
}

var _ xen.Platform = (*Platform)(nil)

func hypercall(op uintptr, a ...uintptr) error {
	var args [4]uintptr
	copy(args[:], a)
	r, err := call(shimabi.SysHypercall, op, args[0], args[1], args[2], args[3])
	if err != nil {
		return err
	}
	if rc := int64(r); rc < 0 {
		return fmt.Errorf("hypercall %d/%d: %w", op, args[0], syscall.Errno(-rc))
	}
	return nil
}

// mem turns a shim-provided address into a byte slice.
func mem(va uint64, n int) []byte {
	p := *(*unsafe.Pointer)(unsafe.Pointer(&va))
	return unsafe.Slice((*byte)(p), n)
}

// Channel returns a Channel for a port that is already bound (the console
// and xenstore ports from start_info).
func (p *Platform) Channel(port xen.Port) (xen.Channel, error) {
	return openChannel(port, false)
}

func openChannel(port xen.Port, owned bool) (*channel, error) {
	fd, err := call(shimabi.SysEventFD, uintptr(port))
	if err != nil {
		return nil, fmt.Errorf("pv: event fd for port %d: %w", port, err)
	}
	f := os.NewFile(fd, fmt.Sprintf("evtchn-%d", port))
	if f == nil {
		return nil, fmt.Errorf("pv: bad fd %d for port %d", fd, port)
	}
	return &channel{port: port, f: f, owned: owned}, nil
}

// AllocUnbound implements xen.Events.
func (p *Platform) AllocUnbound(remote xen.DomID) (xen.Channel, error) {
	var a [8]byte // struct evtchn_alloc_unbound {u16 dom, u16 remote_dom, u32 port}
	binary.LittleEndian.PutUint16(a[0:], uint16(xen.DomSelf))
	binary.LittleEndian.PutUint16(a[2:], uint16(remote))
	if err := hypercall(hcEventChannelOp, evtchnAllocUnb, uintptr(unsafe.Pointer(&a[0]))); err != nil {
		return nil, fmt.Errorf("pv: alloc unbound port for domain %d: %w", remote, err)
	}
	return openChannel(xen.Port(binary.LittleEndian.Uint32(a[4:])), true)
}

// BindInterdomain implements xen.Events.
func (p *Platform) BindInterdomain(remote xen.DomID, remotePort xen.Port) (xen.Channel, error) {
	var a [12]byte // {u16 remote_dom, pad, u32 remote_port, u32 local_port}
	binary.LittleEndian.PutUint16(a[0:], uint16(remote))
	binary.LittleEndian.PutUint32(a[4:], uint32(remotePort))
	if err := hypercall(hcEventChannelOp, evtchnBindInter, uintptr(unsafe.Pointer(&a[0]))); err != nil {
		return nil, fmt.Errorf("pv: bind to domain %d port %d: %w", remote, remotePort, err)
	}
	return openChannel(xen.Port(binary.LittleEndian.Uint32(a[8:])), true)
}

type channel struct {
	port   xen.Port
	f      *os.File
	owned  bool
	closed atomic.Bool
}

func (c *channel) Port() xen.Port { return c.port }

func (c *channel) Notify() error {
	p := uint32(c.port)
	return hypercall(hcEventChannelOp, evtchnSend, uintptr(unsafe.Pointer(&p)))
}

var pastDeadline = time.Unix(1, 0)

// Wait reads the event fd through the netpoller.
func (c *channel) Wait(ctx context.Context) error {
	if c.closed.Load() {
		return os.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.f.SetReadDeadline(pastDeadline) })
	defer stop()
	var buf [8]byte
	_, err := c.f.Read(buf[:])
	if err != nil {
		if ctx.Err() != nil {
			c.f.SetReadDeadline(time.Time{})
			return ctx.Err()
		}
		return fmt.Errorf("pv: wait on port %d: %w", c.port, err)
	}
	return nil
}

// Mask and Unmask edit the port's bit in shared_info's evtchn_mask
// (xen.h); EVTCHNOP_unmask re-raises an event that came while masked.
func (c *channel) Mask() error {
	w, bit, err := maskWord(c.port)
	if err != nil {
		return err
	}
	atomic.OrUint64(w, bit)
	return nil
}

func (c *channel) Unmask() error {
	p := uint32(c.port)
	return hypercall(hcEventChannelOp, evtchnUnmask, uintptr(unsafe.Pointer(&p)))
}

func maskWord(port xen.Port) (*uint64, uint64, error) {
	inf, err := Info()
	if err != nil {
		return nil, 0, err
	}
	if port >= 4096 {
		return nil, 0, errors.New("pv: port out of range")
	}
	va := inf.SharedInfoVA + 2560 + uint64(port/64)*8
	return (*uint64)(unsafe.Pointer(&mem(va, 8)[0])), 1 << (port % 64), nil
}

func (c *channel) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.f.Close()
	if c.owned {
		p := uint32(c.port)
		if e := hypercall(hcEventChannelOp, evtchnClose, uintptr(unsafe.Pointer(&p))); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// AllocPages implements xen.Memory.
func (p *Platform) AllocPages(n int) ([]byte, []xen.MFN, error) {
	if n <= 0 {
		return nil, nil, errors.New("pv: AllocPages of no pages")
	}
	mfns := make([]uint64, n)
	va, err := call(shimabi.SysAllocPages, uintptr(n), uintptr(unsafe.Pointer(&mfns[0])))
	if err != nil {
		return nil, nil, fmt.Errorf("pv: allocate %d pages: %w", n, err)
	}
	out := make([]xen.MFN, n)
	for i, m := range mfns {
		out[i] = xen.MFN(m)
	}
	return mem(uint64(va), n*xen.PageSize), out, nil
}

// FreePages implements xen.Memory.
func (p *Platform) FreePages(b []byte) error {
	if len(b) == 0 || len(b)%xen.PageSize != 0 {
		return errors.New("pv: FreePages of a slice that AllocPages did not return")
	}
	_, err := call(shimabi.SysFreePages, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)/xen.PageSize))
	return err
}

// MaxFrames implements xen.GrantFrames (GNTTABOP_query_size).
func (p *Platform) MaxFrames() (int, error) {
	var q [16]byte // {u16 dom, pad, u32 nr_frames, u32 max_nr_frames, i16 status}
	binary.LittleEndian.PutUint16(q[0:], uint16(xen.DomSelf))
	if err := hypercall(hcGrantTableOp, gnttabQuerySize, uintptr(unsafe.Pointer(&q[0])), 1); err != nil {
		return 0, err
	}
	if st := int16(binary.LittleEndian.Uint16(q[12:])); st != 0 {
		return 0, fmt.Errorf("pv: grant table query_size status %d", st)
	}
	return int(binary.LittleEndian.Uint32(q[8:])), nil
}

// Grow implements xen.GrantFrames (GNTTABOP_setup_table, then a mapping
// of all frames).
func (p *Platform) Grow(n int) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n <= len(p.gntMFNs) {
		return p.gntMem[:n*xen.PageSize], nil
	}
	frames := make([]uint64, n)
	var s [24]byte // {u16 dom, pad, u32 nr_frames, i16 status, pad, u64 frame_list}
	binary.LittleEndian.PutUint16(s[0:], uint16(xen.DomSelf))
	binary.LittleEndian.PutUint32(s[4:], uint32(n))
	binary.LittleEndian.PutUint64(s[16:], uint64(uintptr(unsafe.Pointer(&frames[0]))))
	if err := hypercall(hcGrantTableOp, gnttabSetupTable, uintptr(unsafe.Pointer(&s[0])), 1); err != nil {
		return nil, err
	}
	if st := int16(binary.LittleEndian.Uint16(s[8:])); st != 0 {
		return nil, fmt.Errorf("pv: grant table setup_table(%d) status %d", n, st)
	}
	va, err := call(shimabi.SysMapFrames, uintptr(unsafe.Pointer(&frames[0])), uintptr(n))
	if err != nil {
		return nil, fmt.Errorf("pv: map %d grant frames: %w", n, err)
	}
	p.gntMFNs = frames
	p.gntMem = mem(uint64(va), n*xen.PageSize)
	return p.gntMem, nil
}

// Start-info offsets (xen.h struct start_info).
const (
	siStoreMFN  = 56
	siStoreEvt  = 64
	siConsMFN   = 72
	siConsEvt   = 80
	siModStart  = 112
	siModLen    = 120
	siCmdline   = 128
	siNrPages   = 32
	cmdlineSize = 1024
)

// Boot is what the drivers need from start_info.
type Boot struct {
	NrPages      uint64
	StorePort    xen.Port
	ConsolePort  xen.Port
	StorePage    []byte // the xenstore ring page
	ConsolePage  []byte // the console ring page
	Cmdline      string
	Ramdisk      []byte // a ramdisk= module, if the domain has one
	SharedInfoVA uint64
}

// BootInfo reads start_info through the shim.
func BootInfo() (*Boot, error) {
	inf, err := Info()
	if err != nil {
		return nil, err
	}
	si := inf.StartInfo[:]
	le := binary.LittleEndian
	b := &Boot{
		NrPages:      le.Uint64(si[siNrPages:]),
		StorePort:    xen.Port(le.Uint32(si[siStoreEvt:])),
		ConsolePort:  xen.Port(le.Uint32(si[siConsEvt:])),
		StorePage:    mem(inf.StoreVA, xen.PageSize),
		ConsolePage:  mem(inf.ConsoleVA, xen.PageSize),
		SharedInfoVA: inf.SharedInfoVA,
	}
	cl := si[siCmdline : siCmdline+cmdlineSize]
	for i, c := range cl {
		if c == 0 {
			cl = cl[:i]
			break
		}
	}
	b.Cmdline = string(cl)
	if inf.ModVA != 0 && inf.ModLen != 0 {
		b.Ramdisk = mem(inf.ModVA, int(inf.ModLen))
	}
	return b, nil
}
