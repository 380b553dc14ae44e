package xenbus

import (
	"strconv"
	"testing"
)

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"0", 0, true}, {"768", 768, true}, {"51712", 51712, true}, {"4294967295", 1<<32 - 1, true},
		{"", 0, false}, {"00", 0, false}, {"0768", 0, false}, {"-1", 0, false}, {"+1", 0, false},
		{"4294967296", 0, false}, {"12a", 0, false}, {"xvda", 0, false}, {" 1", 0, false},
	} {
		got, ok := parseID(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseID(%q) = %d, %v", tc.in, got, ok)
		}
	}
}

// FuzzParseID: device directory names come from xenstore, which the
// toolstack (and a hostile backend domain with write access) controls.
// Accepted names are exactly the canonical decimal form of the id.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0", "51712", "0768", "4294967296", "", "9x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := parseID(s)
		if ok && strconv.FormatUint(uint64(id), 10) != s {
			t.Fatalf("%q accepted as %d", s, id)
		}
		if !ok {
			if n, err := strconv.ParseUint(s, 10, 32); err == nil && strconv.FormatUint(n, 10) == s {
				t.Fatalf("canonical id %q rejected", s)
			}
		}
	})
}
