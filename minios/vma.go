package minios

// The Go program's virtual memory areas: what it has mmap'd and with which
// protection. Pages inside a readable/writable area are backed lazily: the
// first touch faults and the shim maps a fresh zeroed frame (Linux's
// demand-zero semantics, which the runtime assumes for every RW mapping).
//
// A fixed, sorted array: no allocation in kernel mode, O(n) updates. The
// runtime keeps a few dozen areas (reservations, heap commits, the index),
// and adjacent areas with equal protection are merged.

const maxVMAs = 1024

type vma struct {
	start, end uint64 // [start, end), page aligned
	prot       uint32 // protRead|protWrite, or 0 for PROT_NONE
}

type vmaSet struct {
	n int
	v [maxVMAs]vma
}

// find returns the index of the area containing addr.
func (s *vmaSet) find(addr uint64) (int, bool) {
	lo, hi := 0, s.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.v[m].end <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < s.n && s.v[lo].start <= addr {
		return lo, true
	}
	return lo, false
}

// isFree reports whether [start, end) overlaps no area.
func (s *vmaSet) isFree(start, end uint64) bool {
	i, ok := s.find(start)
	if ok {
		return false
	}
	return i >= s.n || s.v[i].start >= end
}

// remove takes [start, end) out of every area, splitting at the edges.
// It fails only if a split needs a slot the table does not have.
func (s *vmaSet) remove(start, end uint64) bool {
	for i := 0; i < s.n; i++ {
		a := s.v[i]
		if a.end <= start || a.start >= end {
			continue
		}
		switch {
		case a.start < start && a.end > end: // hole in the middle: split
			if s.n >= maxVMAs {
				return false
			}
			copy(s.v[i+2:s.n+1], s.v[i+1:s.n])
			s.v[i].end = start
			s.v[i+1] = vma{start: end, end: a.end, prot: a.prot}
			s.n++
			return true
		case a.start < start:
			s.v[i].end = start
		case a.end > end:
			s.v[i].start = end
		default: // fully covered: delete
			copy(s.v[i:s.n-1], s.v[i+1:s.n])
			s.n--
			i--
		}
	}
	return true
}

// insert adds [start, end) with prot; the range must be free. Neighbours
// with the same protection are merged.
func (s *vmaSet) insert(start, end uint64, prot uint32) bool {
	i, _ := s.find(start)
	// merge with the left neighbour
	if i > 0 && s.v[i-1].end == start && s.v[i-1].prot == prot {
		s.v[i-1].end = end
		if i < s.n && s.v[i].start == end && s.v[i].prot == prot {
			s.v[i-1].end = s.v[i].end
			copy(s.v[i:s.n-1], s.v[i+1:s.n])
			s.n--
		}
		return true
	}
	if i < s.n && s.v[i].start == end && s.v[i].prot == prot {
		s.v[i].start = start
		return true
	}
	if s.n >= maxVMAs {
		return false
	}
	copy(s.v[i+1:s.n+1], s.v[i:s.n])
	s.v[i] = vma{start: start, end: end, prot: prot}
	s.n++
	return true
}

// findGap returns the highest address a with [a, a+size) free, a >= floor
// and a+size <= top.
func (s *vmaSet) findGap(size, floor, top uint64) (uint64, bool) {
	end := top
	for i := s.n - 1; ; i-- {
		lo := floor
		if i >= 0 {
			if s.v[i].start >= end {
				continue // entirely above the window
			}
			if s.v[i].end > lo {
				lo = s.v[i].end
			}
		}
		if lo <= end && end-lo >= size {
			return end - size, true
		}
		if i < 0 {
			return 0, false
		}
		end = s.v[i].start
		if end <= floor {
			return 0, false
		}
	}
}

// faultAction is what a page fault at an address should do.
type faultAction int

const (
	faultFatal   faultAction = iota // no mapping, or PROT_NONE: the program's bug
	faultMapZero                    // first touch of a RW page: map a zeroed frame
	faultProt                       // write to a read-only area
)

// decideFault classifies a user page fault (error code bits: 1 present,
// 2 write) against the areas.
func (s *vmaSet) decideFault(addr uint64, errcode uint64) faultAction {
	i, ok := s.find(addr)
	if !ok {
		return faultFatal
	}
	prot := s.v[i].prot
	if prot&(protRead|protWrite) == 0 {
		return faultFatal
	}
	if errcode&1 != 0 { // page present: a protection violation
		return faultProt
	}
	if errcode&2 != 0 && prot&protWrite == 0 {
		return faultProt
	}
	return faultMapZero
}
