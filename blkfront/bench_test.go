package blkfront_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gopvgrub/gopvgrub/blkfront"
	"github.com/gopvgrub/gopvgrub/xen/xentest"
)

// BenchmarkReadAt measures sequential reads through the simulated
// backend (MB/s is what b.SetBytes reports). The simulation copies
// through Go memory, so the numbers compare configurations of the
// driver, not Xen.
func BenchmarkReadAt(b *testing.B) {
	for _, bc := range []struct {
		name string
		bb   xentest.BlkbackConfig
		opts blkfront.Options
	}{
		{"plain", xentest.BlkbackConfig{}, blkfront.Options{}},
		{"persistent", xentest.BlkbackConfig{Persistent: true}, blkfront.Options{}},
		{"order4-indirect-persistent", xentest.BlkbackConfig{MaxRingPageOrder: 4, MaxIndirectSegments: 256, Persistent: true},
			blkfront.Options{MaxSegments: 64, BufferPages: 1024}},
	} {
		for _, size := range []int{4 << 10, 1 << 20} {
			for _, readers := range []int{1, 4} {
				b.Run(fmt.Sprintf("%s/%dKiB/readers=%d", bc.name, size>>10, readers), func(b *testing.B) {
					e := newEnv(b)
					img := image(32<<20, 1)
					bc.bb.Image = img
					bb := e.disk(b, bc.bb)
					d := e.open(b, bb, bc.opts)
					b.SetBytes(int64(size * readers))
					b.ResetTimer()
					var wg sync.WaitGroup
					for r := 0; r < readers; r++ {
						wg.Add(1)
						go func(r int) {
							defer wg.Done()
							buf := make([]byte, size)
							off := int64(r) * int64(len(img)/readers)
							for i := 0; i < b.N; i++ {
								if _, err := d.ReadAt(buf, off); err != nil {
									b.Error(err)
									return
								}
								off += int64(size)
								if off+int64(size) > int64(len(img)) {
									off = 0
								}
							}
						}(r)
					}
					wg.Wait()
					b.StopTimer()
					st := d.Stats()
					b.ReportMetric(float64(st.MaxInFlight), "max-in-flight")
					b.ReportMetric(float64(st.Requests)/float64(b.N*readers), "requests/op")
					if err := d.Close(context.Background()); err != nil {
						b.Fatal(err)
					}
				})
			}
		}
	}
}
