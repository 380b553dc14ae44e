// Package termtest holds fakes for testing terminal programs without a
// terminal or a real clock: a scripted byte Source with a fake Clock, and a
// Screen that interprets the subset of ANSI escapes term.Renderer emits, so
// a test can assert exactly what a user would see.
package termtest

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Clock is a manual clock.
type Clock struct{ now time.Time }

// NewClock returns a clock at a fixed, arbitrary instant.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// Now returns the fake time.
func (c *Clock) Now() time.Time { return c.now }

// Advance moves the fake time forward.
func (c *Clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// step is one scripted event: wait, then deliver data.
type step struct {
	wait time.Duration
	data []byte
}

// Script is a term.Source that delivers scripted input on a fake clock.
// Reads never sleep: waiting advances the clock. When the script is used up
// a read that would wait forever returns io.EOF, so a program under test
// that waits for input the test did not provide fails instead of hanging.
type Script struct {
	Clock *Clock
	steps []step
	// Reads counts ReadTimeout calls, to catch busy loops.
	Reads int
}

// NewScript returns an empty script on clock (a new Clock if nil).
func NewScript(clock *Clock) *Script {
	if clock == nil {
		clock = NewClock()
	}
	return &Script{Clock: clock}
}

// Type queues bytes that arrive immediately after the previous event.
func (s *Script) Type(data string) *Script {
	s.steps = append(s.steps, step{data: []byte(data)})
	return s
}

// Wait queues a pause with no input.
func (s *Script) Wait(d time.Duration) *Script {
	s.steps = append(s.steps, step{wait: d})
	return s
}

// Pending reports how many scripted events have not been consumed.
func (s *Script) Pending() int { return len(s.steps) }

// ReadTimeout implements term.Source.
func (s *Script) ReadTimeout(p []byte, d time.Duration) (int, error) {
	s.Reads++
	if s.Reads > 1_000_000 {
		return 0, fmt.Errorf("termtest: more than a million reads: busy loop")
	}
	for len(s.steps) > 0 {
		st := &s.steps[0]
		if st.wait > 0 {
			if d >= 0 && st.wait > d {
				st.wait -= d
				s.Clock.Advance(d)
				return 0, nil
			}
			s.Clock.Advance(st.wait)
			st.wait = 0
		}
		if len(st.data) == 0 {
			s.steps = s.steps[1:]
			continue
		}
		n := copy(p, st.data)
		st.data = st.data[n:]
		if len(st.data) == 0 {
			s.steps = s.steps[1:]
		}
		return n, nil
	}
	if d < 0 {
		return 0, io.EOF
	}
	s.Clock.Advance(d)
	return 0, nil
}

// Screen is a minimal terminal emulator for what term.Renderer and plain
// text output produce: printable text with auto-wrap, CR, LF (scrolling),
// BS, and CSI H, J, K, m (0 and 7), ?25h/l. Anything else is recorded in
// Errors so a test notices output it did not expect.
type Screen struct {
	Rows, Cols    int
	cells         [][]rune
	rev           [][]bool
	row, col      int
	reverse       bool
	CursorVisible bool
	Errors        []string
	esc           []byte
	inEsc         bool
	utf           []byte
}

// NewScreen returns a blank screen of the given size.
func NewScreen(cols, rows int) *Screen {
	s := &Screen{Rows: rows, Cols: cols, CursorVisible: true}
	s.cells = make([][]rune, rows)
	s.rev = make([][]bool, rows)
	for i := range s.cells {
		s.cells[i] = blank(cols)
		s.rev[i] = make([]bool, cols)
	}
	return s
}

func blank(n int) []rune {
	r := make([]rune, n)
	for i := range r {
		r[i] = ' '
	}
	return r
}

// Write interprets p.
func (s *Screen) Write(p []byte) (int, error) {
	for _, b := range p {
		s.byte(b)
	}
	return len(p), nil
}

func (s *Screen) byte(b byte) {
	if s.inEsc {
		s.esc = append(s.esc, b)
		if len(s.esc) == 1 {
			if b != '[' {
				s.Errors = append(s.Errors, fmt.Sprintf("ESC %q", b))
				s.inEsc = false
			}
			return
		}
		if b >= 0x40 && b <= 0x7e {
			s.csi(string(s.esc[1:len(s.esc)-1]), b)
			s.inEsc = false
		} else if len(s.esc) > 32 {
			s.Errors = append(s.Errors, fmt.Sprintf("overlong CSI %q", s.esc))
			s.inEsc = false
		}
		return
	}
	if len(s.utf) > 0 || b >= 0x80 {
		s.utf = append(s.utf, b)
		r := []rune(string(s.utf))
		if len(r) == 1 && r[0] != 0xfffd {
			s.put(r[0])
			s.utf = nil
		} else if len(s.utf) >= 4 {
			s.Errors = append(s.Errors, fmt.Sprintf("bad UTF-8 %q", s.utf))
			s.utf = nil
		}
		return
	}
	switch {
	case b == 0x1b:
		s.inEsc, s.esc = true, s.esc[:0]
	case b == '\r':
		s.col = 0
	case b == '\n':
		s.lineFeed()
	case b == '\b':
		if s.col > 0 {
			s.col--
		}
	case b == 0x07: // bell
	case b < 0x20 || b == 0x7f:
		s.Errors = append(s.Errors, fmt.Sprintf("control byte %#x", b))
	default:
		s.put(rune(b))
	}
}

func (s *Screen) lineFeed() {
	if s.row < s.Rows-1 {
		s.row++
		return
	}
	copy(s.cells, s.cells[1:])
	copy(s.rev, s.rev[1:])
	s.cells[s.Rows-1] = blank(s.Cols)
	s.rev[s.Rows-1] = make([]bool, s.Cols)
}

func (s *Screen) put(r rune) {
	if s.col >= s.Cols {
		s.col = 0
		s.lineFeed()
	}
	s.cells[s.row][s.col] = r
	s.rev[s.row][s.col] = s.reverse
	s.col++
}

func (s *Screen) csi(params string, final byte) {
	switch {
	case final == 'H':
		row, col := 1, 1
		if params != "" {
			if _, err := fmt.Sscanf(params, "%d;%d", &row, &col); err != nil {
				s.Errors = append(s.Errors, "bad CUP "+params)
				return
			}
		}
		s.row, s.col = min(max(row-1, 0), s.Rows-1), min(max(col-1, 0), s.Cols-1)
	case final == 'J' && (params == "2" || params == ""):
		start := 0
		if params == "" {
			start = s.row
			s.clearEOL()
			start++
		}
		for i := start; i < s.Rows; i++ {
			s.cells[i] = blank(s.Cols)
			s.rev[i] = make([]bool, s.Cols)
		}
	case final == 'K' && params == "":
		s.clearEOL()
	case final == 'm' && (params == "" || params == "0"):
		s.reverse = false
	case final == 'm' && params == "7":
		s.reverse = true
	case final == 'h' && params == "?25":
		s.CursorVisible = true
	case final == 'l' && params == "?25":
		s.CursorVisible = false
	default:
		s.Errors = append(s.Errors, fmt.Sprintf("unsupported CSI %q%c", params, final))
	}
}

func (s *Screen) clearEOL() {
	for c := s.col; c < s.Cols; c++ {
		s.cells[s.row][c] = ' '
		s.rev[s.row][c] = false
	}
}

// Line returns row i without trailing spaces.
func (s *Screen) Line(i int) string { return strings.TrimRight(string(s.cells[i]), " ") }

// Lines returns every row without trailing spaces.
func (s *Screen) Lines() []string {
	out := make([]string, s.Rows)
	for i := range out {
		out[i] = s.Line(i)
	}
	return out
}

// String returns the screen as text, trailing blank lines removed.
func (s *Screen) String() string {
	lines := s.Lines()
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}

// Highlighted returns the reverse-video text of row i, trailing spaces trimmed.
func (s *Screen) Highlighted(i int) string {
	var b strings.Builder
	for c, r := range s.cells[i] {
		if s.rev[i][c] {
			b.WriteRune(r)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// HighlightedRows returns the rows that contain reverse video.
func (s *Screen) HighlightedRows() []int {
	var rows []int
	for i := range s.rev {
		for _, v := range s.rev[i] {
			if v {
				rows = append(rows, i)
				break
			}
		}
	}
	return rows
}

// Cursor returns the cursor position (0-based).
func (s *Screen) Cursor() (row, col int) { return s.row, s.col }
