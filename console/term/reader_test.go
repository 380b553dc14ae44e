package term_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/console/term"
	"github.com/gopvgrub/gopvgrub/console/term/termtest"
)

func TestReader(t *testing.T) {
	type read struct {
		timeout time.Duration
		want    string // key name, "" for timeout
		elapsed time.Duration
	}
	tests := []struct {
		name   string
		script func(*termtest.Script)
		reads  []read
	}{
		{"immediate key", func(s *termtest.Script) { s.Type("a") },
			[]read{{time.Second, "a", 0}}},
		{"key after a pause", func(s *termtest.Script) { s.Wait(300 * time.Millisecond).Type("\x1b[A") },
			[]read{{time.Second, "Up", 300 * time.Millisecond}}},
		{"timeout", func(s *termtest.Script) { s.Wait(5 * time.Second).Type("x") },
			[]read{{time.Second, "", time.Second}, {time.Second, "", 2 * time.Second}, {-1, "x", 5 * time.Second}}},
		{"lone ESC resolved by delay", func(s *termtest.Script) { s.Type("\x1b").Wait(10 * time.Second).Type("[A") },
			[]read{{-1, "Esc", term.EscDelay}, {-1, "[", 10 * time.Second}, {-1, "A", 10 * time.Second}}},
		{"ESC then sequence bytes within the delay", func(s *termtest.Script) {
			s.Type("\x1b").Wait(20 * time.Millisecond).Type("[").Wait(20 * time.Millisecond).Type("B")
		}, []read{{-1, "Down", 40 * time.Millisecond}}},
		{"several keys in one read", func(s *termtest.Script) { s.Type("ab\r\n") },
			[]read{{0, "a", 0}, {0, "b", 0}, {0, "Enter", 0}, {0, "", 0}}},
		{"ESC resolves at a deadline shorter than the delay", func(s *termtest.Script) { s.Type("\x1b") },
			[]read{{time.Millisecond, "Esc", time.Millisecond}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := termtest.NewClock()
			start := clock.Now()
			s := termtest.NewScript(clock)
			tt.script(s)
			r := term.NewReader(s, clock)
			for i, rd := range tt.reads {
				k, ok, err := r.ReadKey(rd.timeout)
				if err != nil {
					t.Fatalf("read %d: %v", i, err)
				}
				got := ""
				if ok {
					got = k.String()
				}
				if got != rd.want {
					t.Errorf("read %d = %q, want %q", i, got, rd.want)
				}
				if el := clock.Now().Sub(start); el != rd.elapsed {
					t.Errorf("read %d: elapsed %v, want %v", i, el, rd.elapsed)
				}
			}
		})
	}
}

func TestReaderEOF(t *testing.T) {
	s := termtest.NewScript(nil)
	s.Type("\x1b[")
	r := term.NewReader(s, s.Clock)
	// The held "ESC [" is delivered before the end of input is reported.
	k, ok, err := r.ReadKey(-1)
	if err != nil || !ok || k.String() != "Alt-[" {
		t.Fatalf("got %v %v %v", k, ok, err)
	}
	if _, _, err := r.ReadKey(-1); !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want EOF", err)
	}
}
