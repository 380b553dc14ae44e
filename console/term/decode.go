package term

import "unicode/utf8"

// MaxSeq bounds the bytes the decoder holds while a sequence is incomplete.
// Real key sequences are at most a dozen bytes; anything longer is reported
// as Unknown and decoding starts afresh, so no input can make the state grow.
const MaxSeq = 32

type decState uint8

const (
	stGround decState = iota
	stEsc             // ESC seen
	stCSI             // ESC [
	stLinuxF          // ESC [ [  (Linux console F1-F5)
	stSS3             // ESC O
	stUTF8            // inside a multi-byte UTF-8 character
)

// Decoder turns terminal input bytes into keys. It is a pure state machine:
// feed it bytes with Feed, and call Flush when no byte has arrived for a
// short while (see Reader) so that a lone ESC becomes the Esc key.
//
// The zero Decoder is ready to use.
type Decoder struct {
	st      decState
	pend    [MaxSeq]byte
	n       int
	need    int  // total bytes of the UTF-8 character being read
	afterCR bool // the last key was a '\r' Enter: swallow one '\n'
	dropped int64
}

// Pending returns how many bytes are held waiting for the rest of a sequence.
func (d *Decoder) Pending() int { return d.n }

// Dropped returns how many bytes were consumed without producing a key: the
// '\n' of each "\r\n" pair, which is one Enter.
func (d *Decoder) Dropped() int64 { return d.dropped }

// Feed decodes p and appends the complete keys to dst, returning it.
func (d *Decoder) Feed(dst []Key, p []byte) []Key {
	for _, b := range p {
		dst = d.step(dst, b)
	}
	return dst
}

// Flush resolves a held, incomplete sequence: the caller calls it when no
// input has arrived for a short time. A lone ESC becomes Esc, "ESC [" and
// "ESC O" become Alt-[ and Alt-O, anything else Unknown.
func (d *Decoder) Flush(dst []Key) []Key {
	d.afterCR = false
	if d.n == 0 {
		return dst
	}
	seq := string(d.pend[:d.n])
	switch {
	case d.st == stEsc:
		dst = append(dst, Key{Code: KeyEsc, Seq: seq})
	case d.n == 2 && (d.st == stCSI || d.st == stSS3):
		dst = append(dst, Key{Code: KeyRune, Rune: rune(d.pend[1]), Mod: ModAlt, Seq: seq})
	default:
		dst = append(dst, Key{Code: KeyUnknown, Seq: seq})
	}
	d.reset()
	return dst
}

func (d *Decoder) reset() { d.st, d.n, d.need = stGround, 0, 0 }

func (d *Decoder) push(b byte) { d.pend[d.n] = b; d.n++ }

// emitPending reports the held bytes as one key and resets.
func (d *Decoder) emit(dst []Key, k Key) []Key {
	k.Seq = string(d.pend[:d.n])
	d.reset()
	return append(dst, k)
}

func (d *Decoder) unknown(dst []Key) []Key { return d.emit(dst, Key{Code: KeyUnknown}) }

func (d *Decoder) step(dst []Key, b byte) []Key {
	switch d.st {
	case stGround:
		return d.ground(dst, b)
	case stEsc:
		switch {
		case b == '[':
			d.push(b)
			d.st = stCSI
		case b == 'O':
			d.push(b)
			d.st = stSS3
		case b == 0x1b:
			// ESC ESC: the first one was the Esc key.
			dst = d.emit(dst, Key{Code: KeyEsc})
			d.push(b)
			d.st = stEsc
		case b >= 0x20 && b < 0x7f:
			d.push(b)
			dst = d.emit(dst, Key{Code: KeyRune, Rune: rune(b), Mod: ModAlt})
		case b == 0x7f:
			d.push(b)
			dst = d.emit(dst, Key{Code: KeyBackspace, Mod: ModAlt})
		default:
			// ESC followed by a control or non-ASCII byte: Esc, then
			// decode the byte on its own.
			dst = d.emit(dst, Key{Code: KeyEsc})
			dst = d.ground(dst, b)
		}
	case stCSI:
		switch {
		case d.n == 2 && b == '[':
			d.push(b)
			d.st = stLinuxF
		case b >= 0x20 && b <= 0x3f: // parameter and intermediate bytes
			d.push(b)
			if d.n == MaxSeq {
				dst = d.unknown(dst)
			}
		case b >= 0x40 && b <= 0x7e: // final byte
			d.push(b)
			dst = d.emit(dst, decodeCSI(d.pend[2:d.n-1], b))
		default:
			// A control byte, ESC or DEL inside the sequence ends it:
			// what we have is unknown, and b starts afresh.
			dst = d.unknown(dst)
			dst = d.ground(dst, b)
		}
	case stLinuxF:
		if b >= 0x20 && b < 0x7f {
			d.push(b)
			k := Key{Code: KeyUnknown}
			if b >= 'A' && b <= 'E' {
				k = Key{Code: KeyF1 + Code(b-'A')}
			}
			dst = d.emit(dst, k)
		} else {
			dst = d.unknown(dst)
			dst = d.ground(dst, b)
		}
	case stSS3:
		switch {
		case (b >= '0' && b <= '9') || b == ';':
			d.push(b)
			if d.n == MaxSeq {
				dst = d.unknown(dst)
			}
		case b >= 0x40 && b <= 0x7e:
			d.push(b)
			dst = d.emit(dst, decodeSS3(d.pend[2:d.n-1], b))
		default:
			dst = d.unknown(dst)
			dst = d.ground(dst, b)
		}
	case stUTF8:
		if b < 0x80 || b > 0xbf {
			dst = d.unknown(dst)
			return d.ground(dst, b)
		}
		d.push(b)
		if d.n == d.need {
			r, size := utf8.DecodeRune(d.pend[:d.n])
			if r == utf8.RuneError || size != d.n {
				return d.unknown(dst)
			}
			dst = d.emit(dst, Key{Code: KeyRune, Rune: r})
		}
	}
	return dst
}

func (d *Decoder) ground(dst []Key, b byte) []Key {
	if d.afterCR {
		d.afterCR = false
		if b == '\n' {
			d.dropped++
			return dst
		}
	}
	d.push(b)
	switch {
	case b == 0x1b:
		d.st = stEsc
		return dst
	case b == '\r':
		d.afterCR = true
		return d.emit(dst, Key{Code: KeyEnter})
	case b == '\n':
		return d.emit(dst, Key{Code: KeyEnter})
	case b == '\t':
		return d.emit(dst, Key{Code: KeyTab})
	case b == 0x7f || b == 0x08:
		return d.emit(dst, Key{Code: KeyBackspace})
	case b == 0:
		return d.emit(dst, Key{Code: KeyRune, Rune: ' ', Mod: ModCtrl})
	case b < 0x1b:
		return d.emit(dst, Key{Code: KeyRune, Rune: rune('a' + b - 1), Mod: ModCtrl})
	case b < 0x20: // 0x1c..0x1f: Ctrl-\ Ctrl-] Ctrl-^ Ctrl-_
		return d.emit(dst, Key{Code: KeyRune, Rune: rune(b + 0x40), Mod: ModCtrl})
	case b < 0x80:
		return d.emit(dst, Key{Code: KeyRune, Rune: rune(b)})
	}
	// A UTF-8 lead byte starts a character; anything else is garbage.
	switch {
	case b >= 0xc2 && b <= 0xdf:
		d.need = 2
	case b >= 0xe0 && b <= 0xef:
		d.need = 3
	case b >= 0xf0 && b <= 0xf4:
		d.need = 4
	default:
		return d.unknown(dst)
	}
	d.st = stUTF8
	return dst
}

// mods converts an xterm modifier parameter (1 + bitmask) to Mod.
func mods(p int) (Mod, bool) {
	if p < 1 || p > 16 {
		return 0, false
	}
	p--
	m := Mod(p & 7)
	if p&8 != 0 { // Meta: treat as Alt
		m |= ModAlt
	}
	return m, true
}

// params parses "1;5" into numbers; empty fields are -1. ok is false for
// private sequences (<, =, >, ?), intermediates, or absurd numbers.
func params(p []byte) (out [4]int, n int, ok bool) {
	out = [4]int{-1, -1, -1, -1}
	if len(p) == 0 {
		return out, 0, true
	}
	cur, have := 0, false
	for _, c := range p {
		switch {
		case c >= '0' && c <= '9':
			cur = cur*10 + int(c-'0')
			have = true
			if cur > 9999 {
				return out, 0, false
			}
		case c == ';':
			if n == len(out)-1 {
				return out, 0, false
			}
			if have {
				out[n] = cur
			}
			n++
			cur, have = 0, false
		default:
			return out, 0, false
		}
	}
	if have {
		out[n] = cur
	}
	return out, n + 1, true
}

var tildeKeys = map[int]Code{
	1: KeyHome, 2: KeyInsert, 3: KeyDelete, 4: KeyEnd, 5: KeyPgUp, 6: KeyPgDn,
	7: KeyHome, 8: KeyEnd,
	11: KeyF1, 12: KeyF2, 13: KeyF3, 14: KeyF4, 15: KeyF5,
	17: KeyF6, 18: KeyF7, 19: KeyF8, 20: KeyF9, 21: KeyF10, 23: KeyF11, 24: KeyF12,
}

var letterKeys = map[byte]Code{
	'A': KeyUp, 'B': KeyDown, 'C': KeyRight, 'D': KeyLeft, 'H': KeyHome, 'F': KeyEnd,
	'P': KeyF1, 'Q': KeyF2, 'R': KeyF3, 'S': KeyF4,
}

// decodeCSI interprets ESC [ <p> <final>.
func decodeCSI(p []byte, final byte) Key {
	unknown := Key{Code: KeyUnknown}
	ps, n, ok := params(p)
	if !ok || n > 2 {
		return unknown
	}
	var m Mod
	if n == 2 {
		if m, ok = mods(ps[1]); !ok {
			return unknown
		}
	}
	switch final {
	case '~':
		c, found := tildeKeys[ps[0]]
		if !found {
			return unknown
		}
		return Key{Code: c, Mod: m}
	case 'Z':
		if n != 0 {
			return unknown
		}
		return Key{Code: KeyTab, Mod: ModShift}
	}
	c, found := letterKeys[final]
	if !found {
		return unknown
	}
	// ESC[A, ESC[1;5A; F1-F4 only with an explicit modifier (ESC[1;2P),
	// since plain ESC[P is "delete character" on some terminals' output.
	switch {
	case n == 0 && final < 'P':
	case n == 2 && (ps[0] == 1 || ps[0] == -1):
	default:
		return unknown
	}
	return Key{Code: c, Mod: m}
}

// decodeSS3 interprets ESC O <p> <final>.
func decodeSS3(p []byte, final byte) Key {
	unknown := Key{Code: KeyUnknown}
	ps, n, ok := params(p)
	if !ok || n > 2 {
		return unknown
	}
	var m Mod
	switch n {
	case 1: // ESC O 5 A (some terminals put the modifier alone)
		if m, ok = mods(ps[0]); !ok {
			return unknown
		}
	case 2:
		if m, ok = mods(ps[1]); !ok {
			return unknown
		}
	}
	switch {
	case final == 'M':
		return Key{Code: KeyEnter, Mod: m}
	case final >= 'a' && final <= 'd' && n == 0: // rxvt Ctrl-arrows
		return Key{Code: letterKeys[final-'a'+'A'], Mod: ModCtrl}
	}
	c, found := letterKeys[final]
	if !found {
		return unknown
	}
	return Key{Code: c, Mod: m}
}
