package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/blkfront"
	"github.com/gopvgrub/gopvgrub/console/term"
	"github.com/gopvgrub/gopvgrub/fs"
	"github.com/gopvgrub/gopvgrub/grub"
	"github.com/gopvgrub/gopvgrub/grub/discover"
	"github.com/gopvgrub/gopvgrub/grub/ui"
	"github.com/gopvgrub/gopvgrub/loader"
	"github.com/gopvgrub/gopvgrub/loader/boot"
	"github.com/gopvgrub/gopvgrub/netboot"
	"github.com/gopvgrub/gopvgrub/netfront"
	"github.com/gopvgrub/gopvgrub/xen/gnttab"
	"github.com/gopvgrub/gopvgrub/xen/pv"
	"github.com/gopvgrub/gopvgrub/xen/xenstore"
)

// Limits on what a guest's disk may make us read: a kernel or initrd
// larger than these is refused with a message rather than exhausting the
// domain.
const (
	maxKernel = 512 << 20
	maxInitrd = 1 << 30
)

// bootloader is the loader's state between menu rounds.
type bootloader struct {
	plat   pv.Platform
	store  *xenstore.Client
	grants *gnttab.Table
	disks  []*blkfront.Device
	sys    *grub.System
	t      ui.Terminal

	// Network boot, once started: the vif, the IP stack with its lease,
	// and the path it was started with (to start it again after a
	// failed handoff).
	nic     *netfront.Device
	net     *netboot.Result
	netPath *string
}

// newBootloader brings up what every mode needs: the console (as a menu
// terminal), xenstore and the grant table.
func newBootloader() (*bootloader, error) {
	bi, err := pv.BootInfo()
	if err != nil {
		return nil, err
	}
	bl := &bootloader{}
	con, err := openConsole(&bl.plat, bi)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	bl.t = ui.NewTerminal(term.NewReader(con, nil), os.Stdout)
	ch, err := bl.plat.Channel(bi.StorePort)
	if err != nil {
		return nil, fmt.Errorf("xenstore event channel: %w", err)
	}
	if bl.store, err = xenstore.New(bi.StorePage, ch); err != nil {
		return nil, fmt.Errorf("xenstore: %w", err)
	}
	if bl.grants, err = gnttab.New(&bl.plat); err != nil {
		return nil, fmt.Errorf("grant table: %w", err)
	}
	return bl, nil
}

// runBootloader is gopvgrub's job: find the guest's boot configuration on
// its disks (or take it from ramdisk=), show the menu, load the chosen
// kernel and initrd and chainload them. Failures are shown and lead back
// to the fallback entries, then to the menu; it never ends silently.
func runBootloader(extra string) error {
	bi, err := pv.BootInfo()
	if err != nil {
		return err
	}
	bl, err := newBootloader()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	bl.disks, err = blkfront.OpenAll(ctx, blkfront.Config{Store: bl.store, Platform: &bl.plat, Grants: bl.grants})
	cancel()
	if err != nil {
		fmt.Printf("gopvgrub: disks: %v\n", err)
	}
	var fdisks []fs.Disk
	for _, d := range bl.disks {
		fmt.Printf("gopvgrub: %s: %d MiB%s\n", d, d.Size()>>20, map[bool]string{true: ", read-only", false: ""}[d.ReadOnly()])
		fdisks = append(fdisks, d)
	}
	sys, errs := grub.FromDisks(fs.NewDisks(fdisks...))
	for _, e := range errs {
		fmt.Printf("gopvgrub: %v\n", e)
	}
	bl.sys = sys

	menu, err := bl.findMenu(extra, bi.Ramdisk)
	if err != nil {
		fmt.Printf("gopvgrub: %v\n", err)
		menu = &grub.Menu{Default: -1, Timeout: -1}
	}
	for _, n := range menu.Notes {
		fmt.Printf("gopvgrub: note: %s\n", n)
	}
	for {
		c, err := ui.Run(menu, bl.t, ui.Options{Sys: sys})
		if err != nil {
			return fmt.Errorf("menu: %w", err)
		}
		tries := []grub.Entry{c.Entry}
		for _, i := range c.Fallback {
			if i >= 0 && i < len(menu.Entries) {
				tries = append(tries, menu.Entries[i])
			}
		}
		for _, e := range tries {
			err := bl.boot(&e)
			fmt.Printf("gopvgrub: cannot boot %q: %v\n", e.Title, err)
		}
		fmt.Println("gopvgrub: back to the menu")
		// A default with a timeout would loop on a broken entry: wait.
		menu.Timeout = -1
	}
}

// findMenu is PV-GRUB's rule: a ramdisk= module is the menu.lst itself
// unless extra= names a config; otherwise the config extra= names (on a
// disk, or "(nd)/path" over the network), or the one discovery finds on
// the disks, or, when there is none, the one DHCP names.
func (bl *bootloader) findMenu(extra string, ramdisk []byte) (*grub.Menu, error) {
	f, named, _ := discover.ParseExtra(extra)
	if !named && len(ramdisk) > 0 {
		f := grub.File{Path: "/menu.lst"}
		return discover.Parse(bl.sys, f, ramdisk)
	}
	if named && f.Device.Net {
		path := f.String()
		res, err := bl.startNet(path)
		if err != nil {
			return nil, err
		}
		bl.netPath = &path
		return bl.netMenu(res)
	}
	m, err := discover.Discover(bl.sys, extra)
	if err != nil && !named && errors.Is(err, discover.ErrNotFound) {
		fmt.Printf("gopvgrub: %v\n", err)
		fmt.Println("gopvgrub: no configuration on the disks; trying network boot")
		res, nerr := bl.startNet("")
		if nerr != nil {
			return nil, nerr
		}
		path := ""
		bl.netPath = &path
		return bl.netMenu(res)
	}
	if err != nil {
		return nil, err
	}
	fmt.Printf("gopvgrub: using %s (%s, %d entries)\n", m.Source, m.Format, len(m.Entries))
	return m, nil
}

// boot loads and starts entry e. It returns only on failure, with the
// devices usable again.
func (bl *bootloader) boot(e *grub.Entry) error {
	if !e.Bootable() {
		return errors.New("the entry has no Linux kernel to load")
	}
	if err := bl.preflight(e); err != nil {
		return err
	}
	t0 := time.Now()
	fmt.Printf("gopvgrub: loading %s\n", e.Kernel)
	kb, err := bl.sys.ReadFile(*e.Kernel, maxKernel)
	if err != nil {
		return fmt.Errorf("read kernel %s: %w", e.Kernel, err)
	}
	var initrd bytes.Buffer
	for _, f := range e.Initrds {
		fmt.Printf("gopvgrub: loading %s\n", f)
		b, err := bl.sys.ReadFile(f, maxInitrd-int64(initrd.Len()))
		if err != nil {
			return fmt.Errorf("read initrd %s: %w", f, err)
		}
		initrd.Write(b)
	}
	k, err := loader.ParseKernelBytes(kb, maxKernel)
	if err != nil {
		return fmt.Errorf("kernel %s: %w", e.Kernel, err)
	}
	dom, err := thisDomain()
	if err != nil {
		return err
	}
	m := &pvMachine{nrPages: dom.NrPages}
	p, err := boot.Prepare(m, dom, k, initrd.Bytes(), strings.TrimSpace(e.Cmdline))
	if err != nil {
		return err
	}
	fmt.Printf("gopvgrub: %s %s kernel, %d KiB, initrd %d KiB, loaded in %v\n",
		k.Container, k.Compression, len(kb)>>10, initrd.Len()>>10, time.Since(t0).Round(time.Millisecond))
	if err := bl.release(); err != nil {
		bl.reacquire()
		return fmt.Errorf("hand the devices back: %w", err)
	}
	err = m.Jump(p.Jump)
	bl.reacquire()
	return err
}

// preflight refuses, before anything is read, an entry whose kernel and
// initrds cannot fit: they are read into memory and then copied into the
// next kernel's frames, so about twice their size must be free. Files on
// the network are bounded by the TFTP size limit instead (stat would
// fetch them).
func (bl *bootloader) preflight(e *grub.Entry) error {
	var need int64
	for _, f := range append([]grub.File{*e.Kernel}, e.Initrds...) {
		if f.Device.Net {
			return nil
		}
		st, err := bl.sys.Stat(f)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		need += st.Size()
	}
	s, err := pv.Stats()
	if err != nil {
		return nil
	}
	free := int64(s.PagesFree) * 4096
	if 2*need > free {
		return fmt.Errorf("kernel and initrd are %d MiB: loading them needs about %d MiB, the domain has %d MiB free (%d MiB missing; give the domain more memory)",
			need>>20, 2*need>>20, free>>20, (2*need-free+1<<20-1)>>20)
	}
	return nil
}

// release hands every device back for the next kernel: frontends closed
// (backends in InitWait), grants ended, xenstore idle.
func (bl *bootloader) release() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var first error
	for _, d := range bl.disks {
		if err := d.Close(ctx); err != nil && first == nil {
			first = fmt.Errorf("%s: %w", d, err)
		}
	}
	if err := bl.closeNet(ctx); err != nil && first == nil {
		first = err
	}
	if n := bl.grants.Active(); n != 0 && first == nil {
		first = fmt.Errorf("%d grants still active", n)
	}
	return first
}

func (bl *bootloader) reacquire() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, d := range bl.disks {
		if err := d.Reopen(ctx); err != nil {
			fmt.Printf("gopvgrub: reopen %s: %v\n", d, err)
		}
	}
	if bl.netPath != nil && bl.nic == nil {
		if _, err := bl.startNet(*bl.netPath); err != nil {
			fmt.Printf("gopvgrub: %v\n", err)
		}
	}
}
