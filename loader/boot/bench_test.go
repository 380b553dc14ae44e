package boot

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/loader"
	"github.com/gopvgrub/gopvgrub/loader/layout"
)

// mmapMachine is a domain whose fresh frames, like the shim's, are not
// in the Go heap: a heap measurement then shows what the loader holds.
type mmapMachine struct{ p2m []uint64 }

func newMmapMachine(pages int) *mmapMachine {
	m := &mmapMachine{}
	for i := 0; i < pages; i++ {
		m.p2m = append(m.p2m, 0x100000+uint64(i))
	}
	return m
}

func (m *mmapMachine) P2M() ([]uint64, error) { return append([]uint64(nil), m.p2m...), nil }

func (m *mmapMachine) Alloc(n int) ([]byte, []uint64, error) {
	mem, err := syscall.Mmap(-1, 0, n*layout.PageSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	// The top n PFNs (below the two rings the domain pins at 5 and 6).
	return mem, append([]uint64(nil), m.p2m[len(m.p2m)-n:]...), nil
}

func (m *mmapMachine) Free(mem []byte) error { return syscall.Munmap(mem) }

func (m *mmapMachine) Jump(*Jump) error { return nil }

// heapPeak samples the heap in use until stopped: the peak, above what
// was in use when it started.
type heapPeak struct {
	stop chan struct{}
	done sync.WaitGroup
	base uint64
	peak uint64
}

func inUse(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	debug.FreeOSMemory()
	// HeapInuse: objects (live or not yet swept) and the unused parts of
	// their spans.
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	h := &heapPeak{stop: make(chan struct{}), base: inUse(s)}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			h.peak = max(h.peak, inUse(s))
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapPeak) end() uint64 {
	close(h.stop)
	h.done.Wait()
	return h.peak - min(h.base, h.peak)
}

// BenchmarkPrepareDebianKernel measures the heap cost of loading Debian
// 12's generic kernel (xz, 8 MiB file, 63 MiB vmlinux) and a 16 MiB
// initrd into a 128 MiB domain, from the files on disk to a prepared
// window, as the bootloader did ("old": kernel file, whole vmlinux and
// initrd in the heap) and does ("stream"):
//
//	go test -run XXX -bench PrepareDebianKernel -benchtime 1x ./loader/boot
//
// peak-heap-MiB is the highest heap in use above the start; the window
// (window-MiB) is outside the heap, as the shim's frames are.
func BenchmarkPrepareDebianKernel(b *testing.B) {
	kernelPath := testassets.DebianKernel(b, "", "amd64")
	initrdPath := filepath.Join(b.TempDir(), "initrd.img")
	initrd := bytes.Repeat([]byte("0707010000"), 16<<20/10)
	if err := os.WriteFile(initrdPath, initrd, 0o644); err != nil {
		b.Fatal(err)
	}
	initrd = nil
	const mb = 128
	for _, way := range []string{"old", "stream"} {
		b.Run(way, func(b *testing.B) {
			var peak, window uint64
			var before, after runtime.MemStats
			for i := 0; i < b.N; i++ {
				m := newMmapMachine(mb << 8)
				dom := Domain{NrPages: mb << 8, StoreMFN: m.p2m[5], ConsoleMFN: m.p2m[6]}
				h := startHeapPeak()
				runtime.ReadMemStats(&before)
				p, err := prepareFromFiles(way, m, dom, kernelPath, initrdPath)
				runtime.ReadMemStats(&after)
				peak = max(peak, h.end())
				if err != nil {
					b.Fatal(err)
				}
				window = uint64(len(p.Jump.Window))
				m.Free(p.Jump.Window)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "alloc-MiB")
			b.ReportMetric(float64(window)/(1<<20), "window-MiB")
		})
	}
}

// prepareFromFiles is the bootloader's loading, the old way or the
// streaming way.
func prepareFromFiles(way string, m Machine, dom Domain, kernelPath, initrdPath string) (*Prepared, error) {
	kb, err := os.ReadFile(kernelPath)
	if err != nil {
		return nil, err
	}
	if way == "old" {
		var initrd bytes.Buffer
		b, err := os.ReadFile(initrdPath)
		if err != nil {
			return nil, err
		}
		initrd.Write(b)
		k, err := loader.ParseKernelBytes(kb, 512<<20)
		if err != nil {
			return nil, err
		}
		return Prepare(m, dom, k, InitrdBytes(initrd.Bytes()), "")
	}
	k, err := loader.ParseKernelStream(kb, 512<<20)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(initrdPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return Prepare(m, dom, k, Initrd{Size: uint64(st.Size()), Write: func(dst []byte) error {
		if _, err := io.ReadFull(f, dst); err != nil {
			return fmt.Errorf("initrd: %w", err)
		}
		return nil
	}}, "")
}
