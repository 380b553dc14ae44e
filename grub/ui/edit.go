package ui

import (
	"github.com/gopvgrub/gopvgrub/console/term"
)

// maxLine bounds what the user can type into one line.
const maxLine = 4096

// lineEdit is an Emacs-style single-line editor: the keys GRUB's editor
// and command line take.
type lineEdit struct {
	buf []rune
	pos int
}

func newLine(s string) *lineEdit {
	r := []rune(s)
	if len(r) > maxLine {
		r = r[:maxLine]
	}
	return &lineEdit{buf: r, pos: len(r)}
}

func (l *lineEdit) String() string { return string(l.buf) }

// key applies k; it reports whether k was an editing key.
func (l *lineEdit) key(k term.Key) bool {
	switch {
	case k.IsText():
		if len(l.buf) < maxLine {
			l.buf = append(l.buf, 0)
			copy(l.buf[l.pos+1:], l.buf[l.pos:])
			l.buf[l.pos] = k.Rune
			l.pos++
		}
	case k.Is(term.Left) || k.Is(term.Ctrl('b')):
		if l.pos > 0 {
			l.pos--
		}
	case k.Is(term.Right) || k.Is(term.Ctrl('f')):
		if l.pos < len(l.buf) {
			l.pos++
		}
	case k.Is(term.Home) || k.Is(term.Ctrl('a')):
		l.pos = 0
	case k.Is(term.End) || k.Is(term.Ctrl('e')):
		l.pos = len(l.buf)
	case k.Is(term.Ctrl('k')):
		l.buf = l.buf[:l.pos]
	case k.Is(term.Ctrl('u')):
		l.buf = append(l.buf[:0], l.buf[l.pos:]...)
		l.pos = 0
	case k.Is(term.Backspace) || k.Is(term.Ctrl('h')):
		if l.pos > 0 {
			l.buf = append(l.buf[:l.pos-1], l.buf[l.pos:]...)
			l.pos--
		}
	case k.Is(term.Delete) || k.Is(term.Ctrl('d')):
		if l.pos < len(l.buf) {
			l.buf = append(l.buf[:l.pos], l.buf[l.pos+1:]...)
		}
	default:
		return false
	}
	return true
}

// view returns the part of the line shown in width columns (scrolled so
// the cursor is visible) and the cursor's column in it.
func (l *lineEdit) view(width int) (string, int) {
	if width < 2 {
		width = 2
	}
	off := 0
	if l.pos >= width {
		off = l.pos - width + 1
	}
	end := min(off+width, len(l.buf))
	return string(l.buf[off:end]), l.pos - off
}
