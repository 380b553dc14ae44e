package fs

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrBadDevice is returned for device names ParseDevice does not accept.
var ErrBadDevice = errors.New("bad device name")

// ErrBadPath is returned for paths that are not absolute GRUB paths or
// that climb above the root.
var ErrBadPath = errors.New("bad path")

// Device names a disk or one of its partitions the way GRUB does: legacy
// menu.lst counts partitions from 0, GRUB 2 from 1.
type Device struct {
	Disk   int    // hdN
	Part   int    // 0 = whole disk, else GRUB 2 number (msdos5 = first logical)
	Scheme string // "msdos", "gpt", or "" = whichever table the disk has
}

const maxDeviceNumber = 1 << 16

// ParseDevice parses "(hd0)", "(hd0,0)" (legacy: partition 0 is the
// first), "(hd0,msdos1)", "(hd1,gpt2)" or "hd0,1" (GRUB 2: 1 is the first).
func ParseDevice(s string, legacy bool) (Device, error) {
	bad := func() (Device, error) { return Device{}, fmt.Errorf("%w: %q", ErrBadDevice, s) }
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "(") {
		if !strings.HasSuffix(t, ")") {
			return bad()
		}
		t = t[1 : len(t)-1]
	}
	disk, part, hasPart := strings.Cut(t, ",")
	if !strings.HasPrefix(disk, "hd") {
		return bad()
	}
	n, ok := number(disk[2:])
	if !ok {
		return bad()
	}
	d := Device{Disk: n}
	if !hasPart {
		return d, nil
	}
	for _, scheme := range []string{"msdos", "gpt"} {
		if rest, ok := strings.CutPrefix(part, scheme); ok {
			p, ok := number(rest)
			if !ok || p == 0 {
				return bad()
			}
			d.Part, d.Scheme = p, scheme
			return d, nil
		}
	}
	p, ok := number(part)
	if !ok {
		return bad()
	}
	if legacy {
		p++
	}
	if p == 0 || p >= maxDeviceNumber {
		return bad()
	}
	d.Part = p
	return d, nil
}

func number(s string) (int, bool) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n < maxDeviceNumber
}

// String is the canonical GRUB 2 form: "(hd0)", "(hd0,msdos1)", "(hd0,1)".
func (d Device) String() string {
	if d.Part == 0 {
		return fmt.Sprintf("(hd%d)", d.Disk)
	}
	return fmt.Sprintf("(hd%d,%s%d)", d.Disk, d.Scheme, d.Part)
}

// SplitDevicePath splits "(hd0,0)/boot/grub/menu.lst" into "(hd0,0)" and
// "/boot/grub/menu.lst"; a path without a device gives "" and the path.
func SplitDevicePath(s string) (device, p string, err error) {
	if !strings.HasPrefix(s, "(") {
		return "", s, nil
	}
	i := strings.IndexByte(s, ')')
	if i < 0 {
		return "", "", fmt.Errorf("%w: %q has no closing parenthesis", ErrBadDevice, s)
	}
	return s[:i+1], s[i+1:], nil
}

// CleanPath converts an absolute GRUB path ("/boot/grub/menu.lst") to an
// io/fs path ("boot/grub/menu.lst"; "/" becomes "."). Repeated slashes,
// "." and ".." are resolved lexically; a path that is relative, holds a
// NUL, is not UTF-8 (io/fs paths must be) or climbs above the root is
// refused.
func CleanPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 || !utf8.ValidString(p) {
		return "", fmt.Errorf("%w: %q is not an absolute UTF-8 path", ErrBadPath, p)
	}
	depth := 0
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", fmt.Errorf("%w: %q climbs above the root", ErrBadPath, p)
			}
		default:
			depth++
		}
	}
	c := path.Clean(p)
	if c == "/" {
		return ".", nil
	}
	return c[1:], nil
}
