package grub

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Errors about device and file names.
var (
	ErrBadDevice         = errors.New("bad device name")
	ErrUnsupportedDevice = errors.New("unsupported device")
	ErrBadPath           = errors.New("bad file name")
)

// MaxDisk and MaxPart bound the numbers a device name may carry.
const (
	MaxDisk = 255
	MaxPart = 255
)

// Device names a disk, a partition or the network, as GRUB does.
//
// It mirrors package fs's Device (Disk, Part, Scheme) and adds the network
// device of PV-GRUB's "(nd)" syntax, which a network layer serves.
type Device struct {
	Net    bool   // the network device: (nd), GRUB 2's (tftp[,host]) or (http[,host])
	HTTP   bool   // for Net: fetched over HTTP rather than TFTP
	Host   string // for Net: the server named in (tftp,host), if any
	Disk   int    // 0-based: hd0 is the first disk
	Part   int    // 0 = the whole disk, else the GRUB 2 (1-based) number
	Scheme string // "msdos", "gpt" or "" when the name did not say
}

// ParseDevice parses a GRUB device name, with or without parentheses:
// "hd0", "hd0,1", "hd0,msdos1", "hd0,gpt2", "nd", "tftp,10.0.0.1",
// "http,10.0.0.1".
// With legacy set, a bare partition number is GRUB legacy's 0-based one,
// so "(hd0,0)" is the first partition, as in PV-GRUB's extra= syntax and
// menu.lst; otherwise it is GRUB 2's 1-based number.
func ParseDevice(s string, legacy bool) (Device, error) {
	orig := s
	if strings.HasPrefix(s, "(") {
		if !strings.HasSuffix(s, ")") {
			return Device{}, fmt.Errorf("%w: %q", ErrBadDevice, orig)
		}
		s = s[1 : len(s)-1]
	}
	switch s {
	case "nd", "tftp":
		return Device{Net: true}, nil
	case "http":
		return Device{Net: true, HTTP: true}, nil
	}
	for _, proto := range []string{"tftp", "http"} {
		if h, ok := strings.CutPrefix(s, proto+","); ok {
			if h == "" || strings.ContainsAny(h, "(),/ ") {
				return Device{}, fmt.Errorf("%w: %q", ErrBadDevice, orig)
			}
			return Device{Net: true, HTTP: proto == "http", Host: h}, nil
		}
	}
	disk, part, hasPart := strings.Cut(s, ",")
	num, ok := strings.CutPrefix(disk, "hd")
	if !ok {
		return Device{}, fmt.Errorf("%w: %q (only hdN disks and the network are known)", ErrUnsupportedDevice, orig)
	}
	d := Device{}
	var err error
	if d.Disk, err = smallNumber(num, MaxDisk); err != nil {
		return Device{}, fmt.Errorf("%w: %q", ErrBadDevice, orig)
	}
	if !hasPart {
		return d, nil
	}
	if strings.Contains(part, ",") {
		return Device{}, fmt.Errorf("%w: %q (nested partitions)", ErrUnsupportedDevice, orig)
	}
	switch {
	case strings.HasPrefix(part, "msdos"):
		d.Scheme, part = "msdos", part[len("msdos"):]
	case strings.HasPrefix(part, "gpt"):
		d.Scheme, part = "gpt", part[len("gpt"):]
	}
	n, err := smallNumber(part, MaxPart)
	if err != nil {
		return Device{}, fmt.Errorf("%w: %q", ErrBadDevice, orig)
	}
	if legacy && d.Scheme == "" {
		n++
	}
	if n == 0 {
		return Device{}, fmt.Errorf("%w: %q (GRUB 2 partitions count from 1)", ErrBadDevice, orig)
	}
	d.Part = n
	return d, nil
}

func smallNumber(s string, max int) (int, error) {
	if s == "" || len(s) > 3 {
		return 0, ErrBadDevice
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max || strings.HasPrefix(s, "+") {
		return 0, ErrBadDevice
	}
	return n, nil
}

// String returns the GRUB 2 name without parentheses: "hd0,msdos1", "hd1",
// "nd".
func (d Device) String() string {
	if d.Net {
		switch {
		case d.HTTP && d.Host != "":
			return "http," + d.Host
		case d.HTTP:
			return "http"
		case d.Host != "":
			return "tftp," + d.Host
		}
		return "nd"
	}
	s := "hd" + strconv.Itoa(d.Disk)
	if d.Part > 0 {
		s += "," + d.Scheme + strconv.Itoa(d.Part)
	}
	return s
}

// Same reports whether d and o name the same device; a name that did not
// say its partition scheme matches either scheme.
func (d Device) Same(o Device) bool {
	if d.Net || o.Net {
		return d.Net == o.Net && d.HTTP == o.HTTP && d.Host == o.Host
	}
	if d.Disk != o.Disk || d.Part != o.Part {
		return false
	}
	return d.Scheme == "" || o.Scheme == "" || d.Scheme == o.Scheme
}

// MarshalText makes a Device a JSON string.
func (d Device) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a GRUB 2 device name.
func (d *Device) UnmarshalText(b []byte) error {
	v, err := ParseDevice(string(b), false)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// File is a file on a device: what a kernel or initrd path resolves to.
type File struct {
	Device Device
	Path   string // absolute and clean: "/boot/vmlinuz"
}

// String returns "(hd0,msdos1)/boot/vmlinuz".
func (f File) String() string { return "(" + f.Device.String() + ")" + f.Path }

// MarshalText makes a File a JSON string.
func (f File) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText parses "(dev)/path".
func (f *File) UnmarshalText(b []byte) error {
	v, err := ParseFile(string(b), Device{}, false)
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// ParseFile resolves a GRUB file name: "(hd0,0)/boot/vmlinuz" names its
// device, "/boot/vmlinuz" is on root. legacy is as for ParseDevice.
func ParseFile(s string, root Device, legacy bool) (File, error) {
	f := File{Device: root}
	p := s
	if rest, ok := strings.CutPrefix(s, "http://"); ok {
		// A URL, as GRUB 2's http module and iPXE take them.
		host, path, _ := strings.Cut(rest, "/")
		if host == "" || strings.ContainsAny(host, "(),@ ") {
			return File{}, fmt.Errorf("%w: %q: no server", ErrBadPath, s)
		}
		f.Device, p = Device{Net: true, HTTP: true, Host: host}, "/"+path
	} else if strings.HasPrefix(s, "(") {
		end := strings.IndexByte(s, ')')
		if end < 0 {
			return File{}, fmt.Errorf("%w: %q: no closing parenthesis", ErrBadPath, s)
		}
		d, err := ParseDevice(s[:end+1], legacy)
		if err != nil {
			return File{}, err
		}
		f.Device, p = d, s[end+1:]
	}
	if p == "" {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") {
		return File{}, fmt.Errorf("%w: %q: not an absolute path", ErrBadPath, s)
	}
	if len(p) > MaxPath {
		return File{}, fmt.Errorf("%w: %q: longer than %d bytes", ErrBadPath, s[:64], MaxPath)
	}
	f.Path = path.Clean(p)
	return f, nil
}

// MaxPath bounds file names.
const MaxPath = 4096
