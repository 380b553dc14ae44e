package gnttab

import (
	"testing"

	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

// BenchmarkGrantEnd is one grant given and revoked (a frontend does this
// per request page unless it keeps persistent grants).
func BenchmarkGrantEnd(b *testing.B) {
	h := xentest.NewHypervisor()
	g := h.NewDomain(1, xentest.DomainConfig{})
	tab, err := New(g)
	if err != nil {
		b.Fatal(err)
	}
	_, mfns, _ := g.AllocPages(1)
	for b.Loop() {
		r, err := tab.Grant(0, mfns[0], false)
		if err != nil {
			b.Fatal(err)
		}
		if err := tab.End(r); err != nil {
			b.Fatal(err)
		}
	}
}
