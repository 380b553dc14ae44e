package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
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
	"github.com/gopvgrub/gopvgrub/loader/decompress"
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
	// The kernel file stays in memory (a few MiB); its vmlinux and the
	// initrds go straight into the next kernel's frames.
	kb, err := bl.sys.ReadFile(*e.Kernel, maxKernel)
	if err != nil {
		return fmt.Errorf("read kernel %s: %w", e.Kernel, err)
	}
	initrd, err := bl.openInitrds(e.Initrds)
	defer initrd.close()
	if err != nil {
		return err
	}
	k, err := loader.ParseKernelStream(kb, maxKernel)
	if err != nil {
		return fmt.Errorf("kernel %s: %w", e.Kernel, err)
	}
	dom, err := thisDomain()
	if err != nil {
		return err
	}
	m := &pvMachine{nrPages: dom.NrPages, reserve: decompress.StateReserve(k.Compression)}
	p, err := boot.Prepare(m, dom, k, initrd.source(), strings.TrimSpace(e.Cmdline))
	if err != nil {
		return err
	}
	initrd.close()
	fmt.Printf("gopvgrub: %s %s kernel, %d KiB, initrd %d KiB, loaded in %v\n",
		k.Container, k.Compression, len(kb)>>10, initrd.size>>10, time.Since(t0).Round(time.Millisecond))
	if err := bl.release(); err != nil {
		m.Free(p.Jump.Window)
		bl.reacquire()
		return fmt.Errorf("hand the devices back: %w", err)
	}
	err = m.Jump(p.Jump)
	bl.reacquire()
	return err
}

// preflight refuses, before anything is read, an entry whose kernel and
// initrds cannot fit. The kernel file is held in memory while its vmlinux
// is decompressed straight into the next kernel's frames, where the
// initrds are read too: loading needs the files' size once, plus the
// vmlinux's excess over its file and the decoder's state, which only the
// kernel's headers tell (Prepare's layout and allocation check those).
// Files on the network are bounded by the TFTP size limit instead (stat
// would fetch them).
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
	if need > free {
		return fmt.Errorf("kernel and initrd are %d MiB: loading them needs more than that, the domain has %d MiB free (at least %d MiB missing; give the domain more memory)",
			need>>20, free>>20, (need-free+1<<20-1)>>20)
	}
	return nil
}

// initrds are an entry's initrd files, open, for Prepare to read into
// the window.
type initrds struct {
	parts []boot.InitrdPart
	files []iofs.File
	size  uint64
}

// openInitrds opens the initrds and takes their sizes, which the layout
// needs before they are read. A file whose size cannot be known (no
// stat) is read into memory instead.
func (bl *bootloader) openInitrds(files []grub.File) (*initrds, error) {
	in := &initrds{}
	for _, f := range files {
		fmt.Printf("gopvgrub: loading %s\n", f)
		left := maxInitrd - int64(in.size)
		fh, err := bl.sys.Open(f)
		if err != nil {
			return in, fmt.Errorf("read initrd %s: %w", f, err)
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			b, err := bl.sys.ReadFile(f, left)
			if err != nil {
				return in, fmt.Errorf("read initrd %s: %w", f, err)
			}
			in.parts = append(in.parts, boot.InitrdPart{Name: "read initrd " + f.String(), Size: uint64(len(b)), R: bytes.NewReader(b)})
			in.size += uint64(len(b))
			continue
		}
		in.files = append(in.files, fh)
		switch {
		case st.IsDir():
			return in, fmt.Errorf("read initrd %s: %s: is a directory", f, f)
		case st.Size() < 0 || st.Size() > left:
			return in, fmt.Errorf("read initrd %s: %s: %w (%d bytes, limit %d)", f, f, grub.ErrTooLarge, st.Size(), left)
		}
		in.parts = append(in.parts, boot.InitrdPart{Name: "read initrd " + f.String(), Size: uint64(st.Size()), R: fh})
		in.size += uint64(st.Size())
	}
	return in, nil
}

// source is the initrds for boot.Prepare.
func (in *initrds) source() boot.Initrd { return boot.InitrdParts(in.parts) }

func (in *initrds) close() {
	for _, fh := range in.files {
		fh.Close()
	}
	in.files, in.parts = nil, nil
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
