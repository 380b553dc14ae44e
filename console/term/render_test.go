package term_test

import (
	"bytes"
	"testing"

	"github.com/gopvgrub/gopvgrub/console/term"
	"github.com/gopvgrub/gopvgrub/console/term/termtest"
)

func TestRenderer(t *testing.T) {
	scr := termtest.NewScreen(20, 5)
	r := term.NewRenderer(scr)
	r.Clear()
	r.ShowCursor(false)
	r.MoveTo(1, 2)
	r.Print("hello")
	r.MoveTo(2, 0)
	r.Reverse(true)
	r.Print(term.Fit("sel", 6))
	r.Reverse(false)
	r.Print("x\x1b[2Jy\x07")
	r.MoveTo(4, 18)
	r.Print("wrap")
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(scr.Errors) > 0 {
		t.Fatalf("screen errors: %v", scr.Errors)
	}
	// "wrap" at column 18 of the last row wraps and scrolls.
	want := []string{"  hello", "sel   x?[2Jy?", "", "                  wr", "ap"}
	for i, w := range want {
		if got := scr.Line(i); got != w {
			t.Errorf("line %d = %q, want %q", i, got, w)
		}
	}
	if got := scr.Highlighted(1); got != "sel" {
		t.Errorf("highlight = %q", got)
	}
	if scr.CursorVisible {
		t.Error("cursor visible")
	}
	r.ClearEOL()
	r.ShowCursor(true)
	r.Flush()
	if !scr.CursorVisible {
		t.Error("cursor hidden")
	}
}

func TestRendererBuffersUntilFlush(t *testing.T) {
	var out bytes.Buffer
	r := term.NewRenderer(&out)
	r.MoveTo(0, 0)
	r.Print("a")
	if out.Len() != 0 {
		t.Fatal("wrote before Flush")
	}
	r.Flush()
	if out.String() != "\x1b[1;1Ha" {
		t.Fatalf("got %q", out.String())
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"é ok", "é ok"},
		{"a\x1b[31mb", "a?[31mb"},
		{"\r\n\t\x00\x7f", "?????"},
		{"\u0085\u009b", "??"},
		{"bad\xff", "bad?"},
	}
	for _, tt := range tests {
		if got := term.Sanitize(tt.in); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		in   string
		w    int
		want string
	}{
		{"abc", 5, "abc  "}, {"abcdef", 3, "abc"}, {"ééé", 2, "éé"}, {"x", 0, ""},
	}
	for _, tt := range tests {
		if got := term.Fit(tt.in, tt.w); got != tt.want {
			t.Errorf("Fit(%q,%d) = %q, want %q", tt.in, tt.w, got, tt.want)
		}
	}
}
