// Package selftest is the built-in self-test of the unikernel
// (`extra="gopvgrub.test=selftest"`): it exercises what the shim must get
// right for the Go runtime — goroutines and channels, timers against Xen's
// clock, the garbage collector under memory pressure, compression and
// hashing, panics and recover — and prints one "SELFTEST key value..." line
// per check, which the e2e test reads.
//
// It runs on Linux too (go test), where Xen time falls back to the Go clock.
package selftest

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/gopvgrub/gopvgrub/xen/pv"
)

// Config sizes the test.
type Config struct {
	Goroutines int
	Rounds     int
	Sleeps     []time.Duration
	Ticks      int
	TickEvery  time.Duration
	AllocTotal int64 // bytes to allocate in the GC test
	LiveBytes  int   // bytes kept live while doing so
	HashBytes  int
}

// Default is what the e2e scenario runs, scaled to the domain's memory.
func Default(domainBytes int64) Config {
	return Config{
		Goroutines: 10000,
		Rounds:     10,
		Sleeps:     []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, time.Second},
		Ticks:      25,
		TickEvery:  20 * time.Millisecond,
		AllocTotal: 10 * domainBytes,
		LiveBytes:  4 << 20,
		HashBytes:  8 << 20,
	}
}

// xenNow is Xen system time, or the Go clock outside Xen.
func xenNow() time.Duration {
	if t, err := pv.XenTime(); err == nil {
		return time.Duration(t)
	}
	return time.Duration(time.Now().UnixNano())
}

// Run executes every check, printing to w. It returns an error for the
// first check that failed (after printing its line).
func Run(w io.Writer, c Config) error {
	checks := []struct {
		name string
		fn   func(io.Writer, Config) error
	}{
		// timing first, while nothing else runs
		{"sleep", sleeps},
		{"ticker", ticker},
		{"goroutines", pingPong},
		{"gc", gc},
		{"hash", hashAndGzip},
		{"recover", recovered},
	}
	for _, ch := range checks {
		if err := ch.fn(w, c); err != nil {
			fmt.Fprintf(w, "SELFTEST %s FAIL %v\n", ch.name, err)
			return fmt.Errorf("selftest %s: %w", ch.name, err)
		}
		memLine(w, ch.name)
	}
	return nil
}

// memLine prints, after each check, what the Go runtime holds from the
// OS next to the frames the shim has left, so that a leak between the two
// shows up in the log before it becomes an out-of-memory crash.
func memLine(w io.Writer, step string) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	free := "NA"
	if st, err := pv.Stats(); err == nil {
		free = fmt.Sprintf("%.1f", float64(st.PagesFree)*4096/(1<<20))
	}
	fmt.Fprintf(w, "SELFTEST mem after %s sys_mb %.1f released_mb %.1f stack_mb %.1f heap_inuse_mb %.1f shim_free_mb %s\n",
		step, mb(m.Sys), mb(m.HeapReleased), mb(m.StackSys), mb(m.HeapInuse), free)
}

// wakeStats is the shim's timer-accuracy counters, for the log.
func wakeStats() string {
	st, err := pv.Stats()
	if err != nil {
		return ""
	}
	return fmt.Sprintf(" late_max_ms %.3f late_1ms %d idle_wakes %d", float64(st.WakeLateMaxNS)/1e6, st.WakesLate1ms, st.IdleWakes)
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// pingPong passes a token around a ring of goroutines.
func pingPong(w io.Writer, c Config) error {
	n := c.Goroutines
	chans := make([]chan int, n+1)
	for i := range chans {
		chans[i] = make(chan int)
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(in <-chan int, out chan<- int) {
			defer wg.Done()
			for v := range in {
				out <- v + 1
			}
			close(out)
		}(chans[i], chans[i+1])
	}
	start := time.Now()
	for r := 0; r < c.Rounds; r++ {
		chans[0] <- 0
		if got := <-chans[n]; got != n {
			return fmt.Errorf("round %d: token came back as %d, want %d", r, got, n)
		}
	}
	el := time.Since(start)
	close(chans[0])
	for range chans[n] {
	}
	wg.Wait()
	fmt.Fprintf(w, "SELFTEST goroutines %d rounds %d handoffs %d elapsed_ms %.1f\n", n, c.Rounds, n*c.Rounds, ms(el))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// sleeps measures time.Sleep with the Go clock and with Xen's. Each
// duration is slept three times and the median reported, so that one
// descheduling of the emulated CPU does not decide the result. First it
// measures the platform's fixed wake-up cost: the median overshoot of a
// 2 ms sleep, long enough that the runtime blocks the vCPU (SCHEDOP_poll
// with a timeout) rather than spinning, so it covers arming the timer,
// Xen's timer firing, the event and resuming the thread. The e2e check
// allows that fixed cost on top of the 5 % (and bounds it): under nested
// software emulation Xen's timer interrupt alone arrives up to about a
// millisecond late, a large part of a 10 ms sleep but not of a 1 s one.
func sleeps(w io.Writer, c Config) error {
	// Quiesce the runtime first: with one P and no async preemption, a
	// background scavenger or GC worker that is mid-quantum when a timer
	// fires delays it, and what is measured here is the shim's timers.
	debug.FreeOSMemory()
	time.Sleep(time.Millisecond) // fault in what the timer path touches first
	const tiny = 2 * time.Millisecond
	var floor []time.Duration
	for i := 0; i < 5; i++ {
		x0 := xenNow()
		time.Sleep(tiny)
		floor = append(floor, xenNow()-x0-tiny)
	}
	fmt.Fprintf(w, "SELFTEST sleepfloor ms %.3f\n", ms(median(floor)))
	for _, d := range c.Sleeps {
		var gos, xens []time.Duration
		for i := 0; i < 3; i++ {
			x0 := xenNow()
			t0 := time.Now()
			time.Sleep(d)
			goEl := time.Since(t0)
			xenEl := xenNow() - x0
			if xenEl < d {
				return fmt.Errorf("sleep %v returned after %v of Xen time", d, xenEl)
			}
			gos, xens = append(gos, goEl), append(xens, xenEl)
		}
		fmt.Fprintf(w, "SELFTEST sleep want_ms %.3f go_ms %.3f xen_ms %.3f%s\n", ms(d), ms(median(gos)), ms(median(xens)), wakeStats())
	}
	return nil
}

func median(v []time.Duration) time.Duration {
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ticker(w io.Writer, c Config) error {
	t := time.NewTicker(c.TickEvery)
	defer t.Stop()
	x0 := xenNow()
	for i := 0; i < c.Ticks; i++ {
		<-t.C
	}
	el := xenNow() - x0
	fmt.Fprintf(w, "SELFTEST ticker ticks %d every_ms %.1f xen_ms %.1f\n", c.Ticks, ms(c.TickEvery), ms(el))
	if el < time.Duration(c.Ticks)*c.TickEvery*9/10 {
		return fmt.Errorf("%d ticks took only %v", c.Ticks, el)
	}
	return nil
}

// gc allocates AllocTotal bytes in 64 KiB pieces, keeping LiveBytes of
// them reachable and checking that every kept piece still holds its
// pattern (a page the shim zeroed or shared by mistake would not).
func gc(w io.Writer, c Config) error {
	const piece = 64 << 10
	live := make([][]byte, c.LiveBytes/piece)
	// Start from the live set of this test alone: the goroutine test leaves
	// ~20 MiB of freed stacks in small holes the 64 KiB pieces cannot reuse;
	// returning them to the shim first keeps one check from starving the next.
	debug.FreeOSMemory()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	var total int64
	for i := 0; total < c.AllocTotal; i++ {
		b := make([]byte, piece)
		tag := byte(i)
		for j := 0; j < piece; j += 512 {
			b[j] = tag
		}
		slot := i % len(live)
		if old := live[slot]; old != nil {
			want := byte(i - len(live))
			for j := 0; j < piece; j += 512 {
				if old[j] != want {
					return fmt.Errorf("live buffer %d corrupted at %d: %#x, want %#x", i-len(live), j, old[j], want)
				}
			}
		}
		live[slot] = b
		total += piece
		if i%16 == 15 {
			// Without asynchronous preemption (the shim runs one P and
			// GODEBUG=asyncpreemptoff=1) the background mark worker only
			// runs when the allocating goroutine yields; a tight loop
			// otherwise outruns the GC until the CPU limiter lets the heap
			// grow past GOMEMLIMIT.
			runtime.Gosched()
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	gcs := after.NumGC - before.NumGC
	fmt.Fprintf(w, "SELFTEST gc allocated_mb %d gcs %d heap_sys_mb %.1f elapsed_ms %.1f\n",
		total>>20, gcs, float64(after.HeapSys)/(1<<20), ms(time.Since(start)))
	runtime.KeepAlive(live)
	return nil
}

// Pattern is the data the hash check uses; the e2e test recomputes its
// sha256 on the host.
func Pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i%251) ^ byte(i>>16)
	}
	return b
}

func hashAndGzip(w io.Writer, c Config) error {
	data := Pattern(c.HashBytes)
	sum := sha256.Sum256(data)
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(z.Bytes()))
	if err != nil {
		return err
	}
	back, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("gzip round trip changed the data")
	}
	fmt.Fprintf(w, "SELFTEST hash bytes %d sha256 %x gzip_bytes %d\n", len(data), sum, z.Len())
	return nil
}

func recovered(w io.Writer, c Config) (err error) {
	msg := func() (m string) {
		defer func() { m = fmt.Sprint(recover()) }()
		var s []int
		i := len(s) + 5
		return fmt.Sprint(s[i])
	}()
	fmt.Fprintf(w, "SELFTEST recover %q\n", msg)
	if msg == "<nil>" {
		return fmt.Errorf("no panic to recover")
	}
	return nil
}
