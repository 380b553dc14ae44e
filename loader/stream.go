package loader

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Parsing and loading a compressed vmlinux without holding it: the
// parser reads through sparseELF, which keeps only the byte ranges the
// parser asks for as the decompressed stream goes by. A parse that needs
// bytes not kept fails with *errNeed; the stream then reads on to them
// or, if they are behind it, starts over keeping them too. Linux's
// vmlinux takes one pass that stops at the end of its Xen notes (about a
// third of the way in). Load decodes the stream once more, writing each
// segment straight into its destination, and at the end of the stream
// makes the checks that need the file's size by parsing again what was
// kept, now with the size known: the errors are ParseKernelBytes's.

// rewinder is a decompressing stream that can start over.
type rewinder interface {
	io.Reader
	Rewind() error
	Close() error
}

// maxStreamPasses bounds the times a parse starts the stream over (a
// legacy kernel without PT_NOTE notes takes three passes); beyond it the
// vmlinux is decompressed whole, as ParseKernelBytes does. A variable for
// tests.
var maxStreamPasses = 4

// streamChunk is how much is decoded at a time.
const streamChunk = 64 << 10

// kernelStream is what a Kernel from ParseKernelStream keeps.
type kernelStream struct {
	r    rewinder
	kept *sparseELF
}

// parseStream parses the vmlinux r decodes into k. whole decompresses it
// in one piece, the fallback for files that would need too many passes.
func (k *Kernel) parseStream(r rewinder, whole func() ([]byte, error)) error {
	d := &sparseELF{r: r, buf: make([]byte, streamChunk)}
	var last errNeed
	lastPos, lastPasses := ^uint64(0), -1
	for {
		if err := d.fill(); err != nil {
			return fmt.Errorf("loader: %s: %w", k.payloadName(), err)
		}
		err := k.parse(d)
		var need *errNeed
		switch {
		case errors.As(err, &need):
			// Every round reads on or starts over; the same need at the
			// same place again would loop for ever.
			if *need == last && d.pos == lastPos && d.passes == lastPasses {
				return fmt.Errorf("loader: %w: %v", ErrBadELF, need)
			}
			last, lastPos, lastPasses = *need, d.pos, d.passes
			end := satAdd(need.off, need.n)
			if d.keep(need.off, end) {
				continue
			}
			d.later = append(d.later, [2]uint64{need.off, end})
			if d.passes >= maxStreamPasses {
				r.Close()
				b, err := whole()
				if err != nil {
					return fmt.Errorf("loader: %s: %w", k.payloadName(), err)
				}
				k.ELF = b
				return k.parse(memELF(b))
			}
			if err := d.restart(); err != nil {
				return fmt.Errorf("loader: %s: %w", k.payloadName(), err)
			}
		case err != nil && !d.eof:
			// ParseKernelBytes reports a broken stream before a broken
			// ELF, and checks the ELF against its whole size: read to
			// the end, then parse again.
			if err := d.drain(); err != nil {
				return fmt.Errorf("loader: %s: %w", k.payloadName(), err)
			}
		case err != nil:
			return err
		default:
			if d.eof {
				// Nothing is left to check at Load.
				d.spans = nil
			}
			d.r, d.buf, d.later = nil, nil, nil
			k.stream = &kernelStream{r: r, kept: d}
			return nil
		}
	}
}

// span is a byte range of the vmlinux the parser wants kept.
type span struct {
	off, end uint64 // end may lie past the end of the file
	data     []byte // the bytes from off that have streamed by
}

// filled is where the span's bytes end: below the stream position once
// complete, at it while taking in bytes, above it (at off) while ahead.
func (s *span) filled() uint64 { return s.off + uint64(len(s.data)) }

// sparseELF is the elfData of a stream: the spans asked for, and the
// stream position.
type sparseELF struct {
	r      rewinder
	pos    uint64 // bytes decoded so far
	eof    bool   // pos is the file's size
	spans  []*span
	later  [][2]uint64 // wanted, already streamed past: for the next pass
	passes int
	buf    []byte
}

func (d *sparseELF) size() (uint64, bool) { return d.pos, d.eof }

func (d *sparseELF) at(off, n uint64) ([]byte, error) {
	end := satAdd(off, n)
	if d.eof {
		if off >= d.pos {
			return nil, nil
		}
		end = min(end, d.pos)
	}
	if end <= off {
		return nil, nil
	}
	for _, s := range d.spans {
		if s.off <= off && end <= s.filled() {
			return s.data[off-s.off : end-s.off], nil
		}
	}
	return nil, &errNeed{off, n}
}

func (d *sparseELF) want(off, n uint64) {
	end := satAdd(off, n)
	if !d.keep(off, end) {
		d.later = append(d.later, [2]uint64{off, end})
	}
}

// keep arranges for [off, end) to be kept from here on; false if bytes
// of it have streamed by unkept (the stream must start over).
func (d *sparseELF) keep(off, end uint64) bool {
	if d.eof {
		end = min(end, d.pos)
	}
	if end <= off {
		return true
	}
	for _, s := range d.spans {
		if s.off <= off && end <= s.end && (s.filled() >= d.pos || end <= s.filled()) {
			return true // kept, or being kept
		}
	}
	if d.eof {
		return false
	}
	var grow *span
	for _, s := range d.spans {
		if s.off <= off && off <= s.filled() && s.filled() >= d.pos {
			grow = s // not complete yet: extend it
		}
	}
	if grow == nil {
		if off < d.pos {
			return false
		}
		grow = &span{off: off, end: end}
		d.spans = append(d.spans, grow)
	}
	grow.end = max(grow.end, end)
	// Spans ahead that now overlap hold no bytes yet: merge them in.
	d.spans = slices.DeleteFunc(d.spans, func(s *span) bool {
		if s != grow && s.off >= d.pos && s.off < grow.end {
			grow.off, grow.end = min(grow.off, s.off), max(grow.end, s.end)
			return true
		}
		return false
	})
	return true
}

// pending returns how far the stream must go for every span to be
// complete; 0 if they are.
func (d *sparseELF) pending() uint64 {
	var to uint64
	for _, s := range d.spans {
		if s.end > d.pos {
			to = max(to, s.end)
		}
	}
	return to
}

// fill decodes until every span is complete or the stream ends, and no
// further: what is asked for next may start right after.
func (d *sparseELF) fill() error {
	for !d.eof {
		to := d.pending()
		if to == 0 {
			return nil
		}
		if err := d.step(min(uint64(len(d.buf)), to-d.pos)); err != nil {
			return err
		}
	}
	return nil
}

// drain decodes to the end of the stream, filling the spans.
func (d *sparseELF) drain() error {
	for !d.eof {
		if err := d.step(uint64(len(d.buf))); err != nil {
			return err
		}
	}
	return nil
}

func (d *sparseELF) step(n uint64) error {
	k, err := d.r.Read(d.buf[:n])
	chunk, end := d.buf[:k], d.pos+uint64(k)
	for _, s := range d.spans {
		if lo, hi := s.filled(), min(s.end, end); lo >= d.pos && lo < hi {
			s.data = append(s.data, chunk[lo-d.pos:hi-d.pos]...)
		}
	}
	d.pos = end
	if err == io.EOF {
		d.eof = true
		return nil
	}
	return err
}

// restart starts a new pass keeping every span so far and everything
// wanted since.
func (d *sparseELF) restart() error {
	d.passes++
	ranges := d.later
	for _, s := range d.spans {
		ranges = append(ranges, [2]uint64{s.off, s.end})
	}
	if err := d.r.Rewind(); err != nil {
		return err
	}
	d.pos, d.eof, d.spans, d.later = 0, false, nil, nil
	slices.SortFunc(ranges, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	for _, r := range ranges {
		if n := len(d.spans); n > 0 && r[0] <= d.spans[n-1].end {
			d.spans[n-1].end = max(d.spans[n-1].end, r[1])
			continue
		}
		d.spans = append(d.spans, &span{off: r[0], end: r[1]})
	}
	return nil
}

// loadStream is Load for a Kernel from ParseKernelStream.
func (k *Kernel) loadStream(dst []byte) error {
	ks := k.stream
	if ks.r == nil {
		return errors.New("loader: kernel already loaded (its decoder is released after Load)")
	}
	defer func() {
		// The decoder's memory is of no use once the image is built.
		ks.r.Close()
		ks.r = nil
	}()
	copies, zeros := planLoad(k.Segments, k.PStart)
	for _, z := range zeros {
		clear(dst[z.dst : z.dst+z.n])
	}
	if err := ks.r.Rewind(); err != nil {
		return fmt.Errorf("loader: %s: %w", k.payloadName(), err)
	}
	buf := make([]byte, streamChunk)
	var pos uint64
	next, active := 0, []piece(nil)
	for {
		n, err := ks.r.Read(buf)
		chunk, end := buf[:n], pos+uint64(n)
		for next < len(copies) && copies[next].src < end {
			active = append(active, copies[next])
			next++
		}
		active = slices.DeleteFunc(active, func(c piece) bool {
			lo, hi := max(c.src, pos), min(c.src+c.n, end)
			if lo < hi {
				copy(dst[c.dst+(lo-c.src):], chunk[lo-pos:hi-pos])
			}
			return c.src+c.n <= end
		})
		pos = end
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("loader: %s: %w", k.payloadName(), err)
		}
	}
	if kept := ks.kept; kept.spans != nil {
		// The size is known now: the checks that wait for it, by the
		// same parse as ParseKernelBytes's.
		kept.pos, kept.eof = pos, true
		again := &Kernel{Container: k.Container, Compression: k.Compression}
		if err := again.parse(kept); err != nil {
			return err
		}
		kept.spans = nil
	}
	if len(active) > 0 || next < len(copies) {
		// The parse above checked every segment against the size.
		return fmt.Errorf("loader: %w: segment data past end of file", ErrBadELF)
	}
	return nil
}

// piece is a run of the image: n bytes at dst, copied from the vmlinux at
// src (or zeroed).
type piece struct{ dst, src, n uint64 }

// planLoad turns the loadable segments into what Load writes, as
// elf_load_binary leaves it: segments in program-header order, each
// later one overwriting the earlier where they overlap. Each byte of the
// image gets its value from the last segment that covers it, so a stream
// can write the pieces in any order. copies are sorted by src.
func planLoad(segs []Segment, pstart uint64) (copies, zeros []piece) {
	type event struct {
		at    uint64
		start bool
		seg   int
	}
	var ev []event
	for i, s := range segs {
		if s.Loadable && s.Memsz > 0 {
			at := s.Paddr - pstart
			ev = append(ev, event{at, true, i}, event{at + s.Memsz, false, i})
		}
	}
	slices.SortFunc(ev, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	var live segHeap
	ended := map[int]bool{}
	emit := func(lo, hi uint64, i int) {
		s := segs[i]
		at := s.Paddr - pstart
		fileEnd := at + s.Filesz
		if lo < fileEnd {
			c := piece{dst: lo, src: s.Offset + (lo - at), n: min(hi, fileEnd) - lo}
			if n := len(copies); n > 0 && copies[n-1].dst+copies[n-1].n == c.dst && copies[n-1].src+copies[n-1].n == c.src {
				copies[n-1].n += c.n
			} else {
				copies = append(copies, c)
			}
		}
		if lo = max(lo, fileEnd); lo < hi {
			if n := len(zeros); n > 0 && zeros[n-1].dst+zeros[n-1].n == lo {
				zeros[n-1].n += hi - lo
			} else {
				zeros = append(zeros, piece{dst: lo, n: hi - lo})
			}
		}
	}
	for j := 0; j < len(ev); {
		x := ev[j].at
		for ; j < len(ev) && ev[j].at == x; j++ {
			if ev[j].start {
				heap.Push(&live, ev[j].seg)
			} else {
				ended[ev[j].seg] = true
			}
		}
		for live.Len() > 0 && ended[live[0]] {
			heap.Pop(&live)
		}
		if live.Len() > 0 && j < len(ev) {
			emit(x, ev[j].at, live[0])
		}
	}
	slices.SortStableFunc(copies, func(a, b piece) int { return cmp.Compare(a.src, b.src) })
	return copies, zeros
}

// segHeap is a max-heap of segment indexes: the top is the segment whose
// bytes win.
type segHeap []int

func (h segHeap) Len() int           { return len(h) }
func (h segHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h segHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *segHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *segHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
