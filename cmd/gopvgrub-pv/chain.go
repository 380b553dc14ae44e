package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"
	"unsafe"

	"github.com/gopvgrub/gopvgrub/loader"
	"github.com/gopvgrub/gopvgrub/loader/boot"
	"github.com/gopvgrub/gopvgrub/loader/decompress"
	"github.com/gopvgrub/gopvgrub/minios/shimabi"
	"github.com/gopvgrub/gopvgrub/xen"
	"github.com/gopvgrub/gopvgrub/xen/pv"
)

// pvMachine is boot.Machine on the shim.
type pvMachine struct {
	nrPages uint64
	plat    pv.Platform
	// reserve is memory (bytes) that must stay free after the window is
	// allocated: the streaming decoder still grows into its dictionary
	// while it fills the window, and a shim out of frames crashes the
	// domain instead of returning to the menu.
	reserve int64
}

func (m *pvMachine) P2M() ([]uint64, error) { return pv.ChainP2M(m.nrPages) }

func (m *pvMachine) Alloc(n int) ([]byte, []uint64, error) {
	// The frames come from the shim, not the Go heap: give it back the
	// heap's free pages first (a decoder's garbage can be tens of MiB).
	debug.FreeOSMemory()
	if s, err := pv.Stats(); err == nil {
		free, need := int64(s.PagesFree)*xen.PageSize, int64(n)*xen.PageSize+m.reserve
		if need > free {
			return nil, nil, fmt.Errorf("%d MiB for the image and %d MiB for the decompressor, %d MiB free (%d MiB missing)",
				int64(n)*xen.PageSize>>20, m.reserve>>20, free>>20, (need-free+1<<20-1)>>20)
		}
	}
	mem, mfns, err := m.plat.AllocPages(n)
	if err != nil {
		return nil, nil, err
	}
	out := make([]uint64, len(mfns))
	for i, f := range mfns {
		out[i] = uint64(f)
	}
	return mem, out, nil
}

func (m *pvMachine) Free(mem []byte) error { return m.plat.FreePages(mem) }

func (m *pvMachine) Jump(j *boot.Jump) error {
	sj := &shimabi.ChainJump{
		P2M: uint64(uintptr(unsafe.Pointer(&j.P2M[0]))), NrPages: uint64(len(j.P2M)),
		Window: uint64(uintptr(unsafe.Pointer(&j.Window[0]))), WindowPages: uint64(len(j.Window) / xen.PageSize),
		Tables: uint64(uintptr(unsafe.Pointer(&j.Tables[0]))), NrTables: uint64(len(j.Tables)),
		L4PFN: j.L4PFN, BootStackPFN: j.BootStackPFN, BootStackVA: j.BootStackVA,
		Entry: j.Entry.RIP, Stack: j.Entry.RSP, StartInfo: j.Entry.RSI,
	}
	return pv.ChainJump(sj)
}

// thisDomain reads what the next kernel inherits from our start_info.
func thisDomain() (boot.Domain, error) {
	inf, err := pv.Info()
	if err != nil {
		return boot.Domain{}, err
	}
	si, err := xen.ParseStartInfo(inf.StartInfo[:])
	if err != nil {
		return boot.Domain{}, err
	}
	return boot.Domain{
		NrPages:  si.NrPages,
		StoreMFN: uint64(si.StoreMFN), ConsoleMFN: uint64(si.ConsoleMFN),
		StoreEvtchn: uint32(si.StoreEvtchn), ConsoleEvtchn: uint32(si.ConsoleEvtchn),
		SharedInfoMA: si.SharedInfo,
		// Only SIF_PRIVILEGED/SIF_INITDOMAIN would be inherited, and a
		// domU has neither: libxl passes 0.
	}, nil
}

// chainload prepares and starts a kernel; it returns only on failure.
func chainload(kernel, initrd []byte, cmdline string) error {
	t0 := time.Now()
	k, err := loader.ParseKernelStream(kernel, 512<<20)
	if err != nil {
		return err
	}
	dom, err := thisDomain()
	if err != nil {
		return err
	}
	m := &pvMachine{nrPages: dom.NrPages, reserve: decompress.StateReserve(k.Compression)}
	p, err := boot.Prepare(m, dom, k, boot.InitrdBytes(initrd), cmdline)
	if err != nil {
		return err
	}
	fmt.Printf("gopvgrub: %s kernel (%s), %d KiB initrd, image %d pages, prepared in %v\n",
		k.Container, k.Compression, len(initrd)>>10, p.Pages, time.Since(t0).Round(time.Millisecond))
	return m.Jump(p.Jump)
}

// chainTest boots the kernel in the ramdisk= module, a tar holding
// vmlinuz, optionally initrd, and cmdline.
func chainTest() error {
	b, err := pv.BootInfo()
	if err != nil {
		return err
	}
	if len(b.Ramdisk) == 0 {
		return fmt.Errorf("no ramdisk= module")
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b.Ramdisk))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("ramdisk tar: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(tr, 512<<20))
		if err != nil {
			return err
		}
		files[h.Name] = data
	}
	if files["vmlinuz"] == nil {
		return fmt.Errorf("ramdisk tar has no vmlinuz")
	}
	return chainload(files["vmlinuz"], files["initrd"], strings.TrimSpace(string(files["cmdline"])))
}
