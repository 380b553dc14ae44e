package main

import (
	"encoding/hex"
	"fmt"

	"github.com/gopvgrub/gopvgrub/xen/pv"
)

// layoutDump prints what the domain builder laid out for this image, as
// the shim recorded it at the first instruction: start_info, the end of
// the initial mapping and a digest of each initial page table. The e2e
// test `layout` compares it with loader/layout's plan for the same
// inputs (loader/layout/xendump parses this format).
func layoutDump() error {
	inf, err := pv.Info()
	if err != nil {
		return err
	}
	fmt.Printf("LAYOUT xen %d.%d\n", inf.XenVersion>>16, inf.XenVersion&0xffff)
	fmt.Printf("LAYOUT si %s\n", hex.EncodeToString(inf.StartInfo[:]))
	fmt.Printf("LAYOUT map_end %#x\n", inf.InitialMapEnd)
	n := min(int(inf.NumInitialPT), len(inf.InitialPT))
	for i := 0; i < n; i++ {
		e := inf.InitialPT[i]
		fmt.Printf("LAYOUT pt %d pfn=%#x level=%d hash=%#016x\n", i, e&^(0xf<<60), e>>60, inf.InitialPTHash[i])
	}
	if n == len(inf.InitialPT) {
		return fmt.Errorf("more than %d initial page tables: the list is cut short", n)
	}
	fmt.Println("LAYOUT done")
	return nil
}
