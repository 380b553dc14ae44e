package term

import (
	"bytes"
	"strings"
	"testing"
)

func names(keys []Key) string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = k.String()
	}
	return strings.Join(s, " ")
}

func decodeAll(in string) []Key {
	var d Decoder
	keys := d.Feed(nil, []byte(in))
	return d.Flush(keys)
}

func TestDecode(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"a", "a"},
		{"aZ9 ~", "a Z 9 Space ~"},
		{"\x1b[A\x1b[B\x1b[C\x1b[D", "Up Down Right Left"},
		{"\x1bOA\x1bOB\x1bOC\x1bOD", "Up Down Right Left"},
		{"\x1b[H\x1b[F\x1bOH\x1bOF", "Home End Home End"},
		{"\x1b[1~\x1b[4~\x1b[7~\x1b[8~", "Home End Home End"},
		{"\x1b[5~\x1b[6~", "PgUp PgDn"},
		{"\x1b[2~\x1b[3~", "Insert Delete"},
		{"\x1bOP\x1bOQ\x1bOR\x1bOS", "F1 F2 F3 F4"},
		{"\x1b[11~\x1b[12~\x1b[13~\x1b[14~\x1b[15~", "F1 F2 F3 F4 F5"},
		{"\x1b[17~\x1b[18~\x1b[19~\x1b[20~\x1b[21~\x1b[23~\x1b[24~", "F6 F7 F8 F9 F10 F11 F12"},
		{"\x1b[[A\x1b[[E", "F1 F5"}, // Linux console
		{"\x1b[1;5A", "Ctrl-Up"},
		{"\x1b[1;2B", "Shift-Down"},
		{"\x1b[1;3C", "Alt-Right"},
		{"\x1b[1;6D", "Ctrl-Shift-Left"},
		{"\x1b[1;8H", "Ctrl-Alt-Shift-Home"},
		{"\x1b[5;5~", "Ctrl-PgUp"},
		{"\x1b[3;2~", "Shift-Delete"},
		{"\x1b[1;2P", "Shift-F1"},
		{"\x1b[15;5~", "Ctrl-F5"},
		{"\x1bOa", "Ctrl-Up"}, // rxvt
		{"\x1bO5A", "Ctrl-Up"},
		{"\x1b[Z", "Shift-Tab"},
		{"\x1bOM", "Enter"},
		{"\x01\x05\x0b\x03\x1a", "Ctrl-A Ctrl-E Ctrl-K Ctrl-C Ctrl-Z"},
		{"\x18", "Ctrl-X"},
		{"\x00", "Ctrl-Space"},
		{"\x1c\x1d\x1e\x1f", `Ctrl-\ Ctrl-] Ctrl-^ Ctrl-_`},
		{"\r", "Enter"},
		{"\n", "Enter"},
		{"\r\n", "Enter"},
		{"\r\r", "Enter Enter"},
		{"\n\n", "Enter Enter"},
		{"\r\n\n", "Enter Enter"},
		{"\n\r", "Enter Enter"},
		{"\t", "Tab"},
		{"\x7f\x08", "Backspace Backspace"},
		{"\x1b", "Esc"},
		{"\x1b\x1b", "Esc Esc"},
		{"\x1bx", "Alt-x"},
		{"\x1b\x7f", "Alt-Backspace"},
		{"\x1b\x01", "Esc Ctrl-A"},
		{"\x1b[", "Alt-["},
		{"\x1bO", "Alt-O"},
		{"é€😀", "é € 😀"},
		{"\xe2\x82", "Unknown(e2 82)"},    // truncated UTF-8
		{"\xe2\x82a", "Unknown(e2 82) a"}, // broken UTF-8
		{"\xff\xc0\x80", "Unknown(ff) Unknown(c0) Unknown(80)"},
		{"\xed\xa0\x80", "Unknown(ed a0 80)"},        // surrogate
		{"\xf0\x82\x82\xac", "Unknown(f0 82 82 ac)"}, // overlong
		{"\xc2\x85", "U+0085"},                       // C1 control as text
		{"\x1b[99z", "Unknown(1b 5b 39 39 7a)"},
		{"\x1b[?1;2c", "Unknown(1b 5b 3f 31 3b 32 63)"},
		{"\x1b[<0;10;5M", "Unknown(1b 5b 3c 30 3b 31 30 3b 35 4d)"},
		{"\x1b[99~", "Unknown(1b 5b 39 39 7e)"},
		{"\x1b[1;99A", "Unknown(1b 5b 31 3b 39 39 41)"},
		{"\x1b[2A", "Unknown(1b 5b 32 41)"},
		{"\x1b[1", "Unknown(1b 5b 31)"},
		{"\x1b[1\x1b[A", "Unknown(1b 5b 31) Up"},
		{"\x1b[1\ra", "Unknown(1b 5b 31) Enter a"},
		{"\x1bO\x1b", "Unknown(1b 4f) Esc"},
		{"\x1b[[\x01", "Unknown(1b 5b 5b) Ctrl-A"},
		{"\x1b[[Z", "Unknown(1b 5b 5b 5a)"},
		{"\x1bOz", "Unknown(1b 4f 7a)"},
		{"\x1b[" + strings.Repeat("1", 40) + "A", "Unknown(1b 5b " + strings.TrimSpace(strings.Repeat("31 ", 30)) + ") 1 1 1 1 1 1 1 1 1 1 A"},
	}
	for _, tt := range tests {
		if got := names(decodeAll(tt.in)); got != tt.want {
			t.Errorf("decode %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestDecodeWaitsForSequence checks that an incomplete sequence stays
// pending (no key) until its last byte or a Flush.
func TestDecodeWaitsForSequence(t *testing.T) {
	var d Decoder
	for _, b := range []byte("\x1b[1;5") {
		if keys := d.Feed(nil, []byte{b}); len(keys) != 0 {
			t.Fatalf("after %q got keys %v", b, names(keys))
		}
	}
	if d.Pending() != 5 {
		t.Fatalf("pending = %d, want 5", d.Pending())
	}
	if got := names(d.Feed(nil, []byte("A"))); got != "Ctrl-Up" {
		t.Fatalf("got %q", got)
	}
	if d.Pending() != 0 {
		t.Fatalf("pending = %d after complete sequence", d.Pending())
	}
	// A lone ESC is held until Flush.
	if keys := d.Feed(nil, []byte{0x1b}); len(keys) != 0 {
		t.Fatalf("ESC produced %v", names(keys))
	}
	if got := names(d.Flush(nil)); got != "Esc" {
		t.Fatalf("flush = %q", got)
	}
	if got := d.Flush(nil); len(got) != 0 {
		t.Fatalf("second flush = %v", names(got))
	}
}

// TestCRLFAcrossFeeds: "\r" then "\n" in separate reads is one Enter, but
// not once a Flush (a timeout) came between them.
func TestCRLFAcrossFeeds(t *testing.T) {
	var d Decoder
	k := d.Feed(nil, []byte("\r"))
	k = d.Feed(k, []byte("\n"))
	if names(k) != "Enter" || d.Dropped() != 1 {
		t.Fatalf("got %q dropped %d", names(k), d.Dropped())
	}
	k = d.Feed(nil, []byte("\r"))
	k = d.Flush(k)
	k = d.Feed(k, []byte("\n"))
	if names(k) != "Enter Enter" {
		t.Fatalf("got %q", names(k))
	}
}

func TestSeqRoundTrip(t *testing.T) {
	in := "a\x1b[1;5A\x1bOP\xe2\x82\xac\x1b[99z\x1bx\x01"
	keys := decodeAll(in)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k.Seq)
	}
	if b.String() != in {
		t.Fatalf("seqs %q != input %q", b.String(), in)
	}
}

func TestKeyIs(t *testing.T) {
	keys := decodeAll("\x05\x1b[A\x1b[1;5Ax")
	want := []Key{Ctrl('E'), Up, {Code: KeyUp, Mod: ModCtrl}, Rune('x')}
	for i, w := range want {
		if !keys[i].Is(w) {
			t.Errorf("key %d = %v, want %v", i, keys[i], w)
		}
	}
	if keys[1].Is(keys[2]) {
		t.Error("Up is Ctrl-Up")
	}
	if !Rune('x').IsText() || Ctrl('x').IsText() || (Key{Code: KeyRune, Rune: 0x85}).IsText() {
		t.Error("IsText wrong")
	}
}

// checkInvariants is the property both the test and the fuzzer check: every
// byte is accounted for, state is bounded, and decoding does not depend on
// how the input is split into reads.
func checkInvariants(t *testing.T, in []byte) {
	var d Decoder
	whole := d.Feed(nil, in)
	if d.Pending() > MaxSeq {
		t.Fatalf("pending %d > MaxSeq", d.Pending())
	}
	whole = d.Flush(whole)
	if d.Pending() != 0 {
		t.Fatalf("pending %d after flush", d.Pending())
	}
	var seqs []byte
	for _, k := range whole {
		if k.Seq == "" {
			t.Fatalf("key %v has no bytes", k)
		}
		if k.Code == KeyNone {
			t.Fatalf("KeyNone emitted")
		}
		seqs = append(seqs, k.Seq...)
	}
	if int64(len(seqs))+d.Dropped() != int64(len(in)) {
		t.Fatalf("keys cover %d bytes + %d dropped, input %d", len(seqs), d.Dropped(), len(in))
	}
	// Removing the dropped bytes ('\n' after '\r') must give the keys' bytes.
	if d.Dropped() == 0 && !bytes.Equal(seqs, in) {
		t.Fatalf("key bytes %q != input %q", seqs, in)
	}
	var d2 Decoder
	var bytewise []Key
	for _, b := range in {
		bytewise = d2.Feed(bytewise, []byte{b})
		if d2.Pending() > MaxSeq {
			t.Fatalf("pending %d > MaxSeq", d2.Pending())
		}
	}
	bytewise = d2.Flush(bytewise)
	if len(bytewise) != len(whole) {
		t.Fatalf("byte-at-a-time gave %d keys, whole %d", len(bytewise), len(whole))
	}
	for i := range whole {
		if whole[i] != bytewise[i] {
			t.Fatalf("key %d: whole %v, bytewise %v", i, whole[i], bytewise[i])
		}
	}
}

func TestInvariants(t *testing.T) {
	inputs := []string{
		"", "plain text", "\x1b[1;5A\r\n\x1b", "\xff\xfe\x1b[\x1b[[", strings.Repeat("\x1b[", 50),
		"\x1b[" + strings.Repeat("9", 100), "\r\n\r\n\n\r", "é\x1b\xc3\xa9",
	}
	for _, in := range inputs {
		checkInvariants(t, []byte(in))
	}
}

func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		"a", "\x1b[A", "\x1bOP", "\x1b[1;5A", "\x1b[15;5~", "\x1b[[A", "\r\n", "\x1b",
		"\xe2\x82\xac", "\xff", "\x1b[?1;2c", "\x1b[" + strings.Repeat("1;", 30),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkInvariants(t, in)
		for _, k := range decodeAll(string(in)) {
			if k.String() == "" {
				t.Fatalf("key %#v has no name", k)
			}
		}
	})
}
