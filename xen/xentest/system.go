package xentest

import (
	"fmt"
	"strconv"

	"github.com/gopvgrub/gopvgrub/xen"
)

// System is a ready-made machine: dom0 running a simulated xenstored and
// one guest whose xenstore and console rings are set up as the toolstack
// sets them up (pages in the guest's memory, event channels bound to
// dom0, grant refs 0 and 1 seeded, /local/domain/<id> created).
type System struct {
	Hyp   *Hypervisor
	Dom0  *Domain
	Guest *Domain
	Store *Xenstored
	Conn  *Conn // xenstored's side of the guest's ring

	StorePage []byte
	StoreMFN  xen.MFN
	StoreChan *Port // the guest's end of the xenstore event channel

	ConsolePage    []byte
	ConsoleMFN     xen.MFN
	ConsoleChan    *Port // the guest's end
	ConsoleBackend *Port // dom0's end, for a simulated xenconsoled
}

// SystemConfig configures NewSystem.
type SystemConfig struct {
	GuestID xen.DomID // default 1
	Guest   DomainConfig
	Serve   ServeOptions
}

// NewSystem builds a System. Close it when done.
func NewSystem(cfg SystemConfig) (*System, error) {
	if cfg.GuestID == 0 {
		cfg.GuestID = 1
	}
	h := NewHypervisor()
	s := &System{Hyp: h, Dom0: h.NewDomain(0, DomainConfig{}), Store: NewXenstored()}
	s.Guest = h.NewDomain(cfg.GuestID, cfg.Guest)
	g := s.Guest

	mem, mfns, err := g.AllocPages(2)
	if err != nil {
		return nil, err
	}
	s.StorePage, s.StoreMFN = mem[:xen.PageSize:xen.PageSize], mfns[0]
	s.ConsolePage, s.ConsoleMFN = mem[xen.PageSize:], mfns[1]

	// The store channel is the guest's first port (1), as with xl.
	var dom0Store *Port
	s.StoreChan, dom0Store, err = h.Connect(g, s.Dom0)
	if err != nil {
		return nil, err
	}
	if s.ConsoleChan, s.ConsoleBackend, err = h.Connect(g, s.Dom0); err != nil {
		return nil, err
	}
	// Reserved grant refs, as xc_dom_gnttab_seed writes them.
	g.SetGrantEntry(xen.GrantRefConsole, xen.GTFPermitAccess, 0, uint32(s.ConsoleMFN))
	g.SetGrantEntry(xen.GrantRefXenstore, xen.GTFPermitAccess, 0, uint32(s.StoreMFN))

	home := domainPath(g.ID())
	id := strconv.Itoa(int(g.ID()))
	for _, kv := range [][2]string{
		{"/local/domain/0/name", "Domain-0"},
		{"/local/domain/0/domid", "0"},
		{home + "/name", "guest"},
		{home + "/domid", id},
		{home + "/store/port", strconv.Itoa(int(dom0Store.Port()))},
		{home + "/store/ring-ref", strconv.FormatUint(uint64(s.StoreMFN), 10)},
		{home + "/console/port", strconv.Itoa(int(s.ConsoleBackend.Port()))},
		{home + "/console/ring-ref", strconv.FormatUint(uint64(s.ConsoleMFN), 10)},
	} {
		if err := s.Store.Write(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	if err := s.Store.Mkdir(home + "/device"); err != nil {
		return nil, err
	}
	// The guest owns its home; dom0 can do anything anyway.
	for _, p := range []string{home, home + "/device", home + "/name", home + "/domid"} {
		if err := s.Store.SetPerms(p, "n"+id); err != nil {
			return nil, err
		}
	}
	if s.Conn, err = s.Store.Serve(g.ID(), s.StorePage, dom0Store, cfg.Serve); err != nil {
		return nil, err
	}
	return s, nil
}

// StartInfo returns the start_info the domain builder would have written
// for the guest (the fields the drivers use).
func (s *System) StartInfo() xen.StartInfo {
	return xen.StartInfo{
		Magic:         xen.StartInfoMagic,
		NrPages:       uint64(s.Guest.Pages()),
		StoreMFN:      s.StoreMFN,
		StoreEvtchn:   s.StoreChan.Port(),
		ConsoleMFN:    s.ConsoleMFN,
		ConsoleEvtchn: s.ConsoleChan.Port(),
	}
}

// Close stops xenstored's service of the guest ring.
func (s *System) Close() {
	if s.Conn != nil {
		s.Conn.Close()
	}
}

// String describes the system for test logs.
func (s *System) String() string {
	return fmt.Sprintf("xentest.System{guest d%d, store mfn %#x port %d}", s.Guest.ID(), uint64(s.StoreMFN), s.StoreChan.Port())
}
