package layout

import "fmt"

// TablePage identifies one page-table page of the layout.
type TablePage struct {
	PFN     uint64
	Level   int // 1 = L1 … 4 = L4
	Mapping int // 0 boot region, 1 INIT_P2M list
	// From is the first virtual address (48-bit, as the builder masks
	// them) the page's entries cover.
	From uint64
}

// tablePage is the level-l (0-based) table k of mapping m.
func (l *Layout) tablePage(m, lvl int, k uint64) TablePage {
	lv := l.Mappings[m].Levels[lvl]
	span := uint64(1) << (pageShift + 9*(lvl+1)) // bytes one table covers
	return TablePage{PFN: lv.PFN + k, Level: lvl + 1, Mapping: m, From: lv.From + k*span}
}

// TablePages lists every page-table page in PFN order: the boot region's
// L4, L3s, L2s and L1s, then the INIT_P2M list's L3s, L2s and L1s.
func (l *Layout) TablePages() []TablePage {
	var out []TablePage
	for m := range l.Mappings {
		for lvl := levels - 1; lvl >= 0; lvl-- {
			for k := uint64(0); k < l.Mappings[m].Levels[lvl].Tables; k++ {
				out = append(out, l.tablePage(m, lvl, k))
			}
		}
	}
	return out
}

// IsTablePFN reports whether pfn holds a page table (and so must be
// mapped read-only).
func (l *Layout) IsTablePFN(pfn uint64) bool {
	for _, m := range l.Mappings {
		first := m.Levels[levels-1].PFN
		if pfn >= first && pfn < first+m.Area.Tables {
			return true
		}
	}
	return false
}

// prot is get_pg_prot.
func (l *Layout) prot(lvl int, pfn uint64) uint64 {
	if lvl > 0 {
		return ProtUpper
	}
	if l.IsTablePFN(pfn) {
		return ProtL1RO
	}
	return ProtL1
}

// PageTable returns the 512 entries of page-table page i (an index into
// TablePages), given the machine frame of every PFN: entry = mfn<<12 |
// flags, pointing at the next level's table or, in an L1, at the mapped
// page. It follows setup_pgtables_pv: each level's tables of a mapping
// cover [From, To] of that level contiguously, and receive an entry for
// every next-level table (or, for L1, every page) of every mapping that
// falls inside.
func (l *Layout) PageTable(i int, p2m func(pfn uint64) uint64) ([]uint64, error) {
	var tp TablePage
	var lvRange Level
	n := 0
	found := false
	for m := range l.Mappings {
		for lvl := levels - 1; lvl >= 0 && !found; lvl-- {
			lv := l.Mappings[m].Levels[lvl]
			if i < n+int(lv.Tables) {
				tp = l.tablePage(m, lvl, uint64(i-n))
				lvRange = lv
				found = true
			}
			n += int(lv.Tables)
		}
		if found {
			break
		}
	}
	if !found || i < 0 {
		return nil, fmt.Errorf("layout: no page table %d (%d in all)", i, n)
	}
	lvl := tp.Level - 1
	shift := uint(pageShift + 9*lvl) // bytes one entry covers, log2
	from, to := lvRange.From, lvRange.To
	// This page holds entries [first, first+512) of the level's array.
	first := (tp.From - from) >> shift
	last := first + tableEntries - 1
	entries := make([]uint64, tableEntries)
	for _, m2 := range l.Mappings {
		var sub Level
		if lvl > 0 {
			sub = m2.Levels[lvl-1]
			if sub.Tables == 0 {
				continue
			}
		} else {
			sub = m2.Area
		}
		if sub.From >= to || sub.To <= from {
			continue
		}
		ps := (max(from, sub.From) - from) >> shift
		pe := (min(to, sub.To) - from) >> shift
		pfn := (max(from, sub.From)-sub.From)>>shift + sub.PFN
		for p := max(ps, first); p <= min(pe, last); p++ {
			q := pfn + (p - ps)
			entries[p-first] = p2m(q)<<pageShift | l.prot(lvl, q)
		}
	}
	return entries, nil
}
