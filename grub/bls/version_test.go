package bls

import "testing"

// The examples of the UAPI Version Format Specification.
func TestCompareSpecExamples(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"11", "11", 0},
		{"systemd-123", "systemd-123", 0},
		{"bar-123", "foo-123", -1},
		{"123a", "123", 1},
		{"123.a", "123", 1},
		{"123.a", "123.b", -1},
		{"123a", "123.a", 1},
		{"11α", "11β", 0},
		{"B", "a", -1},
		{"", "0", -1},
		{"0.", "0", 1},
		{"0.0", "0", 1},
		{"0", "~", 1},
		{"", "~", 1},
		{"1_", "1", 0},
		{"_1", "1", 0},
		{"1_", "1.2", -1},
		{"1_2_3", "1.3.3", 1},
		{"1+", "1", 0},
		{"+1", "1", 0},
		{"1+", "1.2", -1},
		{"1+2+3", "1.3.3", 1},
		// leading zeros and big numbers
		{"007", "7", 0},
		{"99999999999999999999999", "99999999999999999999998", 1},
		// kernel versions as they appear in BLS file names
		{"5.14.0-70.13.1.el9_0.x86_64", "5.14.0-162.6.1.el9_1.x86_64", -1},
		{"6.5.6-300.fc39.x86_64", "6.5.12-300.fc39.x86_64", -1},
	}
	for _, tt := range tests {
		if got := Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Compare(tt.b, tt.a); got != -tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
		}
	}
}

// The spec's chain: each compares smaller than everything to its right.
func TestCompareChain(t *testing.T) {
	chain := []string{"122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1",
		"123^post1", "123.a-1", "123.1-1", "123a-1", "124-1"}
	for i := range chain {
		for j := range chain {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := Compare(chain[i], chain[j]); got != want {
				t.Errorf("Compare(%q, %q) = %d, want %d", chain[i], chain[j], got, want)
			}
		}
	}
}

func FuzzCompare(f *testing.F) {
	f.Add("1.2-3", "1.2~rc1")
	f.Add("", "^")
	f.Add("a.b-c^d~e", "0000000000000000000000001")
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := Compare(a, b), Compare(b, a)
		if ab != -ba || ab < -1 || ab > 1 {
			t.Fatalf("Compare(%q,%q)=%d, reverse %d", a, b, ab, ba)
		}
		if Compare(a, a) != 0 {
			t.Fatalf("Compare(%q,%q) != 0", a, a)
		}
	})
}
