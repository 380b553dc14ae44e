package layout

import "testing"

// FuzzPlan: the image parameters come from a hostile kernel's notes.
// Plan must not panic or hang, and every layout it returns must pass the
// page-table walk.
func FuzzPlan(f *testing.F) {
	f.Add(linux.VirtBase, linux.KStart, linux.KEnd, linux.InitP2M, true, uint64(0x20000), uint64(40<<20))
	f.Add(gopvgrub.VirtBase, gopvgrub.KStart, gopvgrub.KEnd, gopvgrub.InitP2M, false, uint64(0x4000), uint64(initrd16))
	f.Add(uint64(0), uint64(0x400000), uint64(0x500000), uint64(Unset), false, uint64(0x1000), uint64(0))
	f.Fuzz(func(t *testing.T, vb, ks, ke, p2m uint64, modStart bool, pages, initrd uint64) {
		// Keep the walk cheap: at most 64 MiB mapped.
		pages %= 1 << 14
		img := Image{VirtBase: vb, KStart: ks, KEnd: ke, Entry: ks, HypercallPage: Unset, InitP2M: p2m, ModStartPFN: modStart}
		l, err := Plan(img, Options{NrPages: pages, InitrdSize: initrd})
		if err != nil {
			return
		}
		checkTables(t, l)
		_ = l.StartInfo()
	})
}
