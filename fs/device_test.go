package fs_test

import (
	"errors"
	"testing"

	"github.com/gopvgrub/gopvgrub/fs"
)

func TestParseDevice(t *testing.T) {
	cases := []struct {
		in     string
		legacy bool
		want   fs.Device
		str    string
		err    bool
	}{
		{"(hd0)", false, fs.Device{Disk: 0}, "(hd0)", false},
		{"(hd0)", true, fs.Device{Disk: 0}, "(hd0)", false},
		{"(hd0,0)", true, fs.Device{Disk: 0, Part: 1}, "(hd0,1)", false},
		{"(hd0,4)", true, fs.Device{Disk: 0, Part: 5}, "(hd0,5)", false},
		{"(hd0,0)", false, fs.Device{}, "", true}, // GRUB 2 counts from 1
		{"(hd0,1)", false, fs.Device{Disk: 0, Part: 1}, "(hd0,1)", false},
		{"(hd0,msdos1)", false, fs.Device{Disk: 0, Part: 1, Scheme: "msdos"}, "(hd0,msdos1)", false},
		{"(hd0,msdos5)", true, fs.Device{Disk: 0, Part: 5, Scheme: "msdos"}, "(hd0,msdos5)", false},
		{"(hd1,gpt2)", false, fs.Device{Disk: 1, Part: 2, Scheme: "gpt"}, "(hd1,gpt2)", false},
		{"hd0,1", false, fs.Device{Disk: 0, Part: 1}, "(hd0,1)", false},
		{" (hd12) ", false, fs.Device{Disk: 12}, "(hd12)", false},
		{"(hd0,gpt0)", false, fs.Device{}, "", true},
		{"(hd0,msdos)", false, fs.Device{}, "", true},
		{"(nd)", true, fs.Device{}, "", true},
		{"(fd0)", false, fs.Device{}, "", true},
		{"(cd)", false, fs.Device{}, "", true},
		{"(hd0,0,a)", true, fs.Device{}, "", true},
		{"(hd0,msdos1,bsd1)", false, fs.Device{}, "", true},
		{"(hd)", false, fs.Device{}, "", true},
		{"(hd-1)", false, fs.Device{}, "", true},
		{"(hd99999999999)", false, fs.Device{}, "", true},
		{"(hd0,65535)", true, fs.Device{}, "", true}, // would become 65536
		{"(hd0,65535)", false, fs.Device{Disk: 0, Part: 65535}, "(hd0,65535)", false},
		{"(hd0", false, fs.Device{}, "", true},
		{"", false, fs.Device{}, "", true},
	}
	for _, c := range cases {
		got, err := fs.ParseDevice(c.in, c.legacy)
		if c.err {
			if !errors.Is(err, fs.ErrBadDevice) {
				t.Errorf("ParseDevice(%q, %v) = %v, %v; want ErrBadDevice", c.in, c.legacy, got, err)
			}
			continue
		}
		if err != nil || got != c.want || got.String() != c.str {
			t.Errorf("ParseDevice(%q, %v) = %+v (%s), %v; want %+v (%s)", c.in, c.legacy, got, got, err, c.want, c.str)
		}
	}
}

func TestCleanPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/", "."},
		{"/boot/grub/menu.lst", "boot/grub/menu.lst"},
		{"//boot///grub/", "boot/grub"},
		{"/boot/./grub/../grub/grub.cfg", "boot/grub/grub.cfg"},
		{"/boot/..", "."},
		{"/..", ""},
		{"/boot/../../etc", ""},
		{"boot/grub", ""},
		{"", ""},
		{"/boot\x00/x", ""},
	}
	for _, c := range cases {
		got, err := fs.CleanPath(c.in)
		if c.want == "" {
			if !errors.Is(err, fs.ErrBadPath) {
				t.Errorf("CleanPath(%q) = %q, %v; want ErrBadPath", c.in, got, err)
			}
		} else if err != nil || got != c.want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestSplitDevicePath(t *testing.T) {
	cases := []struct{ in, dev, path string }{
		{"(hd0,0)/boot/grub/menu.lst", "(hd0,0)", "/boot/grub/menu.lst"},
		{"(hd0)", "(hd0)", ""},
		{"/boot/vmlinuz", "", "/boot/vmlinuz"},
	}
	for _, c := range cases {
		dev, p, err := fs.SplitDevicePath(c.in)
		if err != nil || dev != c.dev || p != c.path {
			t.Errorf("SplitDevicePath(%q) = %q, %q, %v", c.in, dev, p, err)
		}
	}
	if _, _, err := fs.SplitDevicePath("(hd0/boot"); !errors.Is(err, fs.ErrBadDevice) {
		t.Errorf("unclosed device: %v", err)
	}
}

func FuzzParseDevice(f *testing.F) {
	for _, s := range []string{"(hd0)", "(hd0,0)", "(hd0,msdos5)", "(hd1,gpt2)", "hd0,1", "(nd)", "(hd0,65535)"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, legacy bool) {
		d, err := fs.ParseDevice(s, legacy)
		if err != nil {
			return
		}
		// The canonical form parses back to the same device.
		if back, err := fs.ParseDevice(d.String(), false); err != nil || back != d {
			t.Errorf("%q -> %+v -> %q -> %+v, %v", s, d, d.String(), back, err)
		}
	})
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/boot/grub/grub.cfg", "/a/../..", "//x/./y/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := fs.CleanPath(s)
		if err != nil {
			return
		}
		if !iofsValid(p) {
			t.Errorf("CleanPath(%q) = %q, not a valid io/fs path", s, p)
		}
	})
}
