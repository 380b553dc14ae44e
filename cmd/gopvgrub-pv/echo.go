package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"time"

	"github.com/gopvgrub/gopvgrub/console"
	"github.com/gopvgrub/gopvgrub/console/term"
	"github.com/gopvgrub/gopvgrub/xen/pv"
)

// openConsole opens the PV console on the shim's platform.
func openConsole(p *pv.Platform, b *pv.Boot) (*console.Device, error) {
	ch, err := p.Channel(b.ConsolePort)
	if err != nil {
		return nil, err
	}
	return console.Open(b.ConsolePage, ch, os.Stdout)
}

// BulkLine is line i of the 64 KiB block console-echo writes: 64 bytes,
// "BULK nnnnn " then hex digits of sha256(i), so dom0 can check every byte.
func bulkLine(i int) string {
	h := sha256.Sum256([]byte(fmt.Sprint(i)))
	return fmt.Sprintf("BULK %05d %x\n", i, h[:])[:63] + "\n"
}

// consoleEcho is the console-echo test: named key events, then 64 KiB of
// output, then 4 KiB of fast input counted and hashed.
func consoleEcho() error {
	b, err := pv.BootInfo()
	if err != nil {
		return err
	}
	var p pv.Platform
	dev, err := openConsole(&p, b)
	if err != nil {
		return err
	}
	fmt.Println("ECHO ready: type keys, Ctrl-C ends")
	r := term.NewReader(dev, nil)
	for {
		k, ok, err := r.ReadKey(-1)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		fmt.Printf("KEY %s\n", k)
		if k.String() == "Ctrl-C" {
			break
		}
	}
	for i := 0; i < 1024; i++ {
		os.Stdout.WriteString(bulkLine(i))
	}
	fmt.Println("BULK END")
	fmt.Println("TYPE ready: 4096 bytes please")
	h := sha256.New()
	got := 0
	buf := make([]byte, 512)
	for got < 4096 {
		n, err := dev.ReadTimeout(buf, 30*time.Second)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		h.Write(buf[:n])
		got += n
	}
	fmt.Printf("TYPE got %d sha256 %x\n", got, h.Sum(nil))
	return nil
}
