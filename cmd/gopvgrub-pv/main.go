// Command gopvgrub-pv is the unikernel: the Go program that Xen boots as a
// PV domU kernel (`kernel = "gopvgrub-x86_64.gz"`), running on the minios
// shim. Its arguments are the domain's `extra=` command line.
//
// Test modes, selected by `extra="gopvgrub.test=NAME"`, exercise the
// platform for the e2e scenarios: hello, selftest, crash, idle, chain,
// console-echo, net (DHCP on the first vif, then hand it back), layout
// (what the domain builder laid out), xenstore, blk, fetch.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/internal/selftest"
	_ "github.com/gopvgrub/gopvgrub/minios" // the shim: xenStart is the ELF entry
	"github.com/gopvgrub/gopvgrub/xen/pv"
)

func main() {
	test := ""
	var rest []string
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, "gopvgrub.test="); ok {
			test = v
			continue
		}
		rest = append(rest, a)
	}
	switch test {
	case "hello":
		fmt.Println("hello from Go main, args:", rest)
	case "":
		if err := runBootloader(strings.Join(rest, " ")); err != nil {
			fmt.Println("gopvgrub: fatal:", err)
			os.Exit(1)
		}
	case "selftest":
		runSelftest()
	case "crash":
		crash()
	case "idle":
		idle()
	case "chain":
		if err := chainTest(); err != nil {
			fmt.Println("CHAIN FAIL", err)
			os.Exit(1)
		}
	case "layout":
		if err := layoutDump(); err != nil {
			fmt.Println("LAYOUT FAIL", err)
			os.Exit(1)
		}
	case "xenstore":
		if err := xenstoreTest(); err != nil {
			fmt.Println("XS FAIL", err)
			os.Exit(1)
		}
	case "blk":
		if err := blkTest(rest); err != nil {
			fmt.Println("BLK FAIL", err)
			os.Exit(1)
		}
	case "fetch":
		if err := fetchTest(rest); err != nil {
			fmt.Println("FETCH FAIL", err)
			os.Exit(1)
		}
	case "sleeptrace":
		sleepTrace()
	case "net":
		if err := netTest(15 * time.Second); err != nil {
			fmt.Println("NET FAIL", err)
			os.Exit(1)
		}
	case "console-echo":
		if err := consoleEcho(); err != nil {
			fmt.Println("ECHO FAIL", err)
			os.Exit(1)
		}
	default:
		fmt.Printf("gopvgrub: unknown test %q\n", test)
		os.Exit(2)
	}
}

func runSelftest() {
	inf, err := pv.Info()
	if err != nil {
		fmt.Println("SELFTEST FAIL no shim info:", err)
		os.Exit(1)
	}
	domain := int64(inf.NrPages) * 4096
	fmt.Printf("SELFTEST start domain_mb %d free_mb %d boot_ms %.1f\n", domain>>20, inf.FreeAtEntry*4096>>20,
		float64(inf.UserEntryNS-inf.BootNS)/1e6)
	if err := selftest.Run(os.Stdout, selftest.Default(domain)); err != nil {
		fmt.Println("SELFTEST FAIL", err)
		os.Exit(1)
	}
	if s, err := pv.Stats(); err == nil {
		fmt.Printf("SELFTEST stats peak_pages %d pages %d faults %d syscalls %d switches %d preemptions %d events %d threads %d\n",
			s.PagesPeakUsed, s.PagesTotal, s.PageFaults, s.Syscalls, s.Switches, s.Preemptions, s.Events, s.Threads)
	}
	fmt.Println("SELFTEST done")
}

// crash ends the program with an unrecovered panic in a goroutine: the
// runtime prints the traceback, exits with status 2, and the shim shuts
// the domain down as crashed.
func crash() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		deliberateCrash([]string{"gopvgrub"})
	}()
	<-done
}

//go:noinline
func deliberateCrash(s []string) {
	fmt.Println("CRASH now")
	panic("deliberate crash for the e2e test: " + s[0])
}

// idle waits, as a bootloader waiting for a key does; dom0 measures the
// CPU time it uses meanwhile.
func idle() {
	fmt.Println("IDLE waiting")
	keys := make(chan struct{})
	select {
	case <-keys:
	case <-time.After(20 * time.Second):
	}
	fmt.Println("IDLE done")
}

// sleepTrace runs a few short sleeps with the shim's scheduler trace on.
func sleepTrace() {
	for _, d := range []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond} {
		pv.Trace(true)
		x0, _ := pv.XenTime()
		time.Sleep(d)
		x1, _ := pv.XenTime()
		pv.Trace(false)
		fmt.Printf("SLEEPTRACE want %v got %.3fms\n", d, float64(x1-x0)/1e6)
	}
	fmt.Println("SLEEPTRACE done")
}
