// Package term is gopvgrub's terminal layer: it turns the bytes a VT100,
// ANSI or xterm-like terminal sends into key events (Decoder, Reader) and
// draws on such a terminal with ANSI escapes (Renderer).
//
// It is hand-written rather than taken from a terminfo library because the
// guest has no terminfo database and no tty: the PV console is a plain byte
// ring, so the decoder must be a pure state machine whose only notion of time
// is an explicit Flush call made by the caller (a lone ESC is the Esc key
// only once no more bytes arrive for a short while).
//
// Everything here treats its input as hostile: the decoder's state is bounded
// and every byte it is fed comes out in exactly one key (or is the '\n' of a
// "\r\n" pair), and the renderer never passes control characters from text
// through to the terminal.
package term

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Code is the kind of a key.
type Code uint8

// Key codes. KeyRune is text (Key.Rune holds it); Ctrl-letter keys are
// KeyRune with ModCtrl and a lower-case letter.
const (
	KeyNone Code = iota
	KeyRune
	KeyEnter
	KeyTab
	KeyBackspace
	KeyEsc
	KeyUp
	KeyDown
	KeyRight
	KeyLeft
	KeyHome
	KeyEnd
	KeyPgUp
	KeyPgDn
	KeyInsert
	KeyDelete
	KeyF1
	KeyF2
	KeyF3
	KeyF4
	KeyF5
	KeyF6
	KeyF7
	KeyF8
	KeyF9
	KeyF10
	KeyF11
	KeyF12
	// KeyUnknown is a sequence the decoder could not interpret; Key.Seq
	// holds its bytes.
	KeyUnknown
)

var codeNames = [...]string{
	KeyNone: "None", KeyRune: "Rune", KeyEnter: "Enter", KeyTab: "Tab",
	KeyBackspace: "Backspace", KeyEsc: "Esc", KeyUp: "Up", KeyDown: "Down",
	KeyRight: "Right", KeyLeft: "Left", KeyHome: "Home", KeyEnd: "End",
	KeyPgUp: "PgUp", KeyPgDn: "PgDn", KeyInsert: "Insert", KeyDelete: "Delete",
	KeyF1: "F1", KeyF2: "F2", KeyF3: "F3", KeyF4: "F4", KeyF5: "F5", KeyF6: "F6",
	KeyF7: "F7", KeyF8: "F8", KeyF9: "F9", KeyF10: "F10", KeyF11: "F11", KeyF12: "F12",
	KeyUnknown: "Unknown",
}

// String returns the code's name ("Up", "F5").
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", c)
}

// Mod is a set of modifier keys.
type Mod uint8

// Modifiers, as xterm encodes them in CSI parameters (value-1 bit set).
const (
	ModShift Mod = 1 << iota
	ModAlt
	ModCtrl
)

// Key is one decoded key press.
type Key struct {
	Code Code
	Rune rune // for KeyRune
	Mod  Mod
	// Seq is the bytes the key was decoded from. It is set by the Decoder
	// and ignored by Is.
	Seq string
}

// Constructors for keys a caller compares against.
var (
	Enter     = Key{Code: KeyEnter}
	Tab       = Key{Code: KeyTab}
	Backspace = Key{Code: KeyBackspace}
	Esc       = Key{Code: KeyEsc}
	Up        = Key{Code: KeyUp}
	Down      = Key{Code: KeyDown}
	Left      = Key{Code: KeyLeft}
	Right     = Key{Code: KeyRight}
	Home      = Key{Code: KeyHome}
	End       = Key{Code: KeyEnd}
	PgUp      = Key{Code: KeyPgUp}
	PgDn      = Key{Code: KeyPgDn}
	Insert    = Key{Code: KeyInsert}
	Delete    = Key{Code: KeyDelete}
)

// Rune returns the key that types r.
func Rune(r rune) Key { return Key{Code: KeyRune, Rune: r} }

// Ctrl returns Ctrl+letter (Ctrl('a') is what byte 0x01 decodes to).
func Ctrl(letter rune) Key {
	if letter >= 'A' && letter <= 'Z' {
		letter += 'a' - 'A'
	}
	return Key{Code: KeyRune, Rune: letter, Mod: ModCtrl}
}

// Is reports whether k and o are the same key, ignoring Seq.
func (k Key) Is(o Key) bool { return k.Code == o.Code && k.Rune == o.Rune && k.Mod == o.Mod }

// IsText reports whether k types a printable character (no Ctrl or Alt).
func (k Key) IsText() bool {
	return k.Code == KeyRune && k.Mod&(ModCtrl|ModAlt) == 0 && k.Rune >= 0x20 && k.Rune != 0x7f &&
		!(k.Rune >= 0x80 && k.Rune < 0xa0)
}

// String returns the key's stable name: "a", "Space", "Enter", "Ctrl-C",
// "Alt-x", "Ctrl-Up", "Shift-Tab", "F5", "Unknown(1b 5b 39 39 7a)".
// The console-echo test prints these names, so they must not change.
func (k Key) String() string {
	if k.Code == KeyUnknown {
		var b strings.Builder
		b.WriteString("Unknown(")
		for i := 0; i < len(k.Seq); i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%02x", k.Seq[i])
		}
		b.WriteByte(')')
		return b.String()
	}
	var b strings.Builder
	if k.Mod&ModCtrl != 0 {
		b.WriteString("Ctrl-")
	}
	if k.Mod&ModAlt != 0 {
		b.WriteString("Alt-")
	}
	if k.Mod&ModShift != 0 {
		b.WriteString("Shift-")
	}
	if k.Code != KeyRune {
		b.WriteString(k.Code.String())
		return b.String()
	}
	switch r := k.Rune; {
	case r == ' ':
		b.WriteString("Space")
	case k.Mod&ModCtrl != 0 && r >= 'a' && r <= 'z':
		b.WriteRune(r - 'a' + 'A')
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || !utf8.ValidRune(r):
		fmt.Fprintf(&b, "U+%04X", r)
	default:
		b.WriteRune(r)
	}
	return b.String()
}
