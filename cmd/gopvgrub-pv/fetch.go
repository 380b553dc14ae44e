package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/grub"
)

// fetchTest is the guest side of the network-boot benchmark: DHCP on the
// first vif (as a network boot does), then fetch.file over TFTP once per
// window size in fetch.ws (comma-separated, default 1,8,16), printing
//
//	FETCH tftp ws W bytes N ms T MBps R sha256 S
//
// and the vif is handed back at the end.
func fetchTest(args []string) error {
	file, wsList := "", "1,8,16"
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "fetch.file="); ok {
			file = v
		}
		if v, ok := strings.CutPrefix(a, "fetch.ws="); ok {
			wsList = v
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
	for _, w := range strings.Split(wsList, ",") {
		ws, err := strconv.Atoi(w)
		if err != nil {
			return fmt.Errorf("fetch.ws %q: %w", w, err)
		}
		o := netTFTP()
		o.WindowSize = ws
		ctx, cancel := context.WithTimeout(context.Background(), netFetchTimeout)
		t0 := time.Now()
		b, err := bl.net.FetchWith(ctx, "(nd)"+file, o)
		el := time.Since(t0)
		cancel()
		if err != nil {
			return fmt.Errorf("windowsize %d: %w", ws, err)
		}
		fmt.Printf("FETCH tftp ws %d bytes %d ms %d MBps %.2f sha256 %x\n", ws, len(b), el.Milliseconds(),
			float64(len(b))/el.Seconds()/1e6, sha256.Sum256(b))
	}
	fmt.Println("FETCH done")
	return nil
}
