package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/grub"
	"github.com/gopvgrub/gopvgrub/netboot/tftp"
)

// fetchTest is the guest side of the network-boot benchmark: DHCP on the
// first vif (as a network boot does), then fetch.file over TFTP once per
// window size in fetch.ws (comma-separated, default 1,8,16; "" for none)
// and, with fetch.http=1, over HTTP from the boot server, printing
//
//	FETCH tftp ws W bytes N ms T MBps R sha256 S
//	FETCH http bytes N ms T MBps R sha256 S
//
// each followed by a FETCH-VIF line: what the vif counted meanwhile.
//
// and the vif is handed back at the end.
func fetchTest(args []string) error {
	file, wsList, http := "", "1,8,16", false
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "fetch.file="); ok {
			file = v
		}
		if v, ok := strings.CutPrefix(a, "fetch.ws="); ok {
			wsList = v
		}
		if a == "fetch.http=1" {
			http = true
		}
	}
	if file == "" {
		return fmt.Errorf("no fetch.file=")
	}
	bl, err := newBootloader()
	if err != nil {
		return err
	}
	bl.sys = &grub.System{}
	if _, err := bl.startNet(""); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		bl.closeNet(ctx)
	}()
	fetch := func(what, path string, o tftp.Options) error {
		ctx, cancel := context.WithTimeout(context.Background(), netFetchTimeout)
		defer cancel()
		s0 := bl.nic.Stats()
		t0 := time.Now()
		b, err := bl.net.FetchWith(ctx, path, o)
		el := time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		s1 := bl.nic.Stats()
		fmt.Printf("FETCH %s bytes %d ms %d MBps %.2f sha256 %x\n", what, len(b), el.Milliseconds(),
			float64(len(b))/el.Seconds()/1e6, sha256.Sum256(b))
		fmt.Printf("FETCH-VIF %s: rx packets %d multi-slot %d checksums completed %d tx packets %d notifies %d\n", what,
			s1.RxPackets-s0.RxPackets, s1.RxMultiSlot-s0.RxMultiSlot, s1.RxChecksumFixed-s0.RxChecksumFixed,
			s1.TxPackets-s0.TxPackets, s1.Notifies-s0.Notifies)
		return nil
	}
	for _, w := range strings.Split(wsList, ",") {
		if w == "" {
			continue
		}
		ws, err := strconv.Atoi(w)
		if err != nil {
			return fmt.Errorf("fetch.ws %q: %w", w, err)
		}
		o := netTFTP()
		o.WindowSize = ws
		if err := fetch("tftp ws "+w, "(nd)"+file, o); err != nil {
			return err
		}
	}
	if http {
		if err := fetch("http", "(http)"+file, netTFTP()); err != nil {
			return err
		}
	}
	fmt.Println("FETCH done")
	return nil
}
