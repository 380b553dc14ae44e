package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gopvgrub/gopvgrub/grub"
	"github.com/gopvgrub/gopvgrub/grub/discover"
	"github.com/gopvgrub/gopvgrub/netboot"
	"github.com/gopvgrub/gopvgrub/netboot/tftp"
	"github.com/gopvgrub/gopvgrub/netfront"
	"github.com/gopvgrub/gopvgrub/xen/pv"
)

// netFetchTimeout bounds one file transfer over the network (the TFTP
// client also gives up on its own when the server stops answering).
const netFetchTimeout = 10 * time.Minute

// errNoNIC is pvgrub2's "no network card found", said plainly.
var errNoNIC = errors.New("no network device (the domain has no vif)")

// startNet brings up network boot on the domain's first vif: netfront,
// DHCP, then the configuration file path names ("" for the one DHCP
// names). Afterwards (nd) paths in configs are served by it.
func (bl *bootloader) startNet(path string) (*netboot.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	devs, err := netfront.Devices(ctx, bl.store)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("network: %w", errNoNIC)
	}
	nic, err := netfront.Open(ctx, netfront.Config{Store: bl.store, Platform: &bl.plat, Grants: bl.grants}, devs[0])
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	fmt.Printf("gopvgrub: %s: mac %x mtu %d\n", nic.Name(), nic.MAC(), nic.MTU())
	cfg := netboot.Config{
		Path: path,
		TFTP: netTFTP(),
		Log: func(format string, args ...any) {
			fmt.Printf("gopvgrub: net: "+format+"\n", args...)
		},
	}
	bctx, bcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	res, err := netboot.Boot(bctx, nic, cfg)
	bcancel()
	if err != nil {
		cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
		nic.Close(cctx)
		ccancel()
		return nil, fmt.Errorf("network boot on %s: %w", nic.Name(), err)
	}
	fmt.Printf("gopvgrub: %s: lease %v\n", nic.Name(), res.Lease)
	bl.nic, bl.net = nic, res
	bl.sys.Net = res.FS(netFetchTimeout)
	return res, nil
}

// netTFTP sizes transfers to the domain: a kernel or initrd larger than
// half its memory could not be loaded anyway.
func netTFTP() (o tftp.Options) {
	o.MaxSize = maxInitrd
	if inf, err := pv.Info(); err == nil {
		o.MaxSize = min(o.MaxSize, int64(inf.NrPages)*4096/2)
	}
	return o
}

// netMenu parses the configuration a network boot fetched.
func (bl *bootloader) netMenu(res *netboot.Result) (*grub.Menu, error) {
	loc, err := netboot.ParsePath(res.ConfigPath)
	if err != nil {
		return nil, err
	}
	// The config's own device is its root: relative paths in a grub.cfg
	// fetched over HTTP come from the same server over HTTP.
	dev := grub.Device{Net: true, HTTP: loc.Scheme == netboot.HTTP}
	if loc.Server.IsValid() {
		dev.Host = loc.Server.String()
	}
	f := grub.File{Device: dev, Path: loc.Path}
	m, err := discover.Parse(bl.sys, f, res.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", res.ConfigPath, err)
	}
	fmt.Printf("gopvgrub: using %s (%d entries)\n", res.ConfigPath, len(m.Entries))
	return m, nil
}

// closeNet stops the IP stack and hands the vif back to its backend.
func (bl *bootloader) closeNet(ctx context.Context) error {
	if bl.nic == nil {
		return nil
	}
	bl.net.Close()
	err := bl.nic.Close(ctx)
	bl.nic, bl.net, bl.sys.Net = nil, nil, nil
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}

// netTest is e2e net-dhcp: bring up the first vif, get a lease and the
// configuration DHCP names, print them, keep the frontend connected for
// dom0 to look at, then hand it back and say how that went.
func netTest(hold time.Duration) error {
	bl, err := newBootloader()
	if err != nil {
		return err
	}
	bl.sys = &grub.System{}
	res, err := bl.startNet("")
	if err != nil {
		return err
	}
	l := res.Lease
	fmt.Printf("NET lease address %v router %v server %v boot_file %q config %s (%d bytes)\n",
		l.Addr, l.Router, l.ServerID, l.BootFile, res.ConfigPath, len(res.Config))
	time.Sleep(hold)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bl.closeNet(ctx); err != nil {
		return err
	}
	if n := bl.grants.Active(); n != 0 {
		return fmt.Errorf("%d grants still active after close", n)
	}
	fmt.Println("NET closed")
	return nil
}
