package term

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Renderer draws on an ANSI terminal. Output is buffered until Flush so a
// whole screen goes to the console in one write.
type Renderer struct {
	w   io.Writer
	buf bytes.Buffer
}

// NewRenderer returns a Renderer writing to w.
func NewRenderer(w io.Writer) *Renderer { return &Renderer{w: w} }

// Clear homes the cursor and erases the screen, resetting attributes.
func (r *Renderer) Clear() { r.buf.WriteString("\x1b[0m\x1b[H\x1b[2J") }

// MoveTo puts the cursor at row, col (0-based).
func (r *Renderer) MoveTo(row, col int) {
	r.buf.WriteString("\x1b[")
	r.buf.WriteString(strconv.Itoa(max(row, 0) + 1))
	r.buf.WriteByte(';')
	r.buf.WriteString(strconv.Itoa(max(col, 0) + 1))
	r.buf.WriteByte('H')
}

// ClearEOL erases from the cursor to the end of the line.
func (r *Renderer) ClearEOL() { r.buf.WriteString("\x1b[K") }

// Reverse turns reverse video (the highlight) on or off.
func (r *Renderer) Reverse(on bool) {
	if on {
		r.buf.WriteString("\x1b[7m")
	} else {
		r.buf.WriteString("\x1b[0m")
	}
}

// ShowCursor shows or hides the cursor.
func (r *Renderer) ShowCursor(on bool) {
	if on {
		r.buf.WriteString("\x1b[?25h")
	} else {
		r.buf.WriteString("\x1b[?25l")
	}
}

// Print writes text at the cursor, with control characters made harmless.
func (r *Renderer) Print(s string) { r.buf.WriteString(Sanitize(s)) }

// Newline moves to the start of the next line (scrolling at the bottom).
func (r *Renderer) Newline() { r.buf.WriteString("\r\n") }

// Flush writes what was drawn.
func (r *Renderer) Flush() error {
	if r.buf.Len() == 0 {
		return nil
	}
	_, err := r.w.Write(r.buf.Bytes())
	r.buf.Reset()
	return err
}

// Sanitize makes s safe to print on a terminal: C0 and C1 control
// characters, DEL and invalid UTF-8 become '?', so text from a guest's
// config can never inject escape sequences into the console.
func Sanitize(s string) string {
	clean := true
	for _, c := range s {
		if !printable(c) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if printable(c) {
			b.WriteRune(c)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

func printable(c rune) bool {
	return c >= 0x20 && c != 0x7f && !(c >= 0x80 && c < 0xa0) && c != utf8.RuneError
}

// Width is the number of terminal columns s takes. Every rune counts as one
// column: the PV console has no font information, and the menu only pads
// and truncates with it.
func Width(s string) int { return utf8.RuneCountInString(s) }

// Fit returns s cut or space-padded to exactly w columns.
func Fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := 0
	for i := range s {
		if n == w {
			return s[:i]
		}
		n++
	}
	return s + strings.Repeat(" ", w-n)
}
