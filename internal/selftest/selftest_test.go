package selftest

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRunOnLinux runs a small self-test on the host: the checks must pass
// on a real kernel, so a failure under Xen points at the shim.
func TestRunOnLinux(t *testing.T) {
	c := Config{
		Goroutines: 1000, Rounds: 3,
		Sleeps: []time.Duration{time.Millisecond}, Ticks: 3, TickEvery: time.Millisecond,
		AllocTotal: 32 << 20, LiveBytes: 1 << 20, HashBytes: 1 << 20,
	}
	var out bytes.Buffer
	if err := Run(&out, c); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"SELFTEST goroutines 1000", "SELFTEST sleep", "SELFTEST ticker ticks 3", "SELFTEST gc", "SELFTEST hash bytes 1048576 sha256 ", "SELFTEST recover \"runtime error: index out of range"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPattern(t *testing.T) {
	p := Pattern(1 << 17)
	// byte(i%251) ^ byte(i>>16), worked out by hand: 65536%251 = 25.
	if p[0] != 0 || p[251] != 0 || p[1<<16] != 25^1 || p[1<<16+1] != 26^1 {
		t.Fatalf("pattern changed: %v %v %v", p[:3], p[251], p[1<<16:1<<16+2])
	}
}
