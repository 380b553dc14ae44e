package grub

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Limits on what a guest's configuration can make us do.
const (
	MaxConfigSize = 1 << 20 // bytes of one config file
	MaxEntries    = 1024    // entries in a menu
	MaxNotes      = 64      // notes kept on a menu
)

// Errors from file access.
var (
	ErrNoDevice = errors.New("no such device")
	ErrTooLarge = errors.New("file too large")
)

// Volume is one filesystem a config can name: a partition, or a whole
// disk without a partition table.
type Volume struct {
	Device Device
	FS     fs.FS // paths are io/fs style: no leading slash
	UUID   string
	Label  string
	Type   string // "ext4", "vfat", … ("" if unknown)
}

// System is the machine as the config parsers and the menu see it: the
// volumes on the guest's disks and, for PV-GRUB's (nd), the network.
// Real disks (package fs) and tests (fstest.MapFS) plug in the same way.
type System struct {
	Volumes []Volume
	Net     fs.FS // files served by the network device; nil if none
}

// NetFS is a network device that reaches more than its default server:
// GRUB 2's (tftp,host) and (http[,host]) name other servers or HTTP. A Net
// that is a plain fs.FS serves only (nd).
type NetFS interface {
	fs.FS
	// Server returns the files of host ("" for the default boot
	// server), over HTTP or TFTP.
	Server(http bool, host string) (fs.FS, error)
}

// Sort orders the volumes as GRUB enumerates devices: by disk, then the
// whole disk before its partitions, then by partition number.
func (s *System) Sort() {
	sort.SliceStable(s.Volumes, func(i, j int) bool {
		a, b := s.Volumes[i].Device, s.Volumes[j].Device
		if a.Disk != b.Disk {
			return a.Disk < b.Disk
		}
		return a.Part < b.Part
	})
}

// Volume returns the volume d names.
func (s *System) Volume(d Device) (*Volume, error) {
	if s != nil && !d.Net {
		for i := range s.Volumes {
			if s.Volumes[i].Device.Same(d) {
				return &s.Volumes[i], nil
			}
		}
	}
	return nil, fmt.Errorf("%w: (%s)", ErrNoDevice, d)
}

// FS returns the filesystem of d, network included.
func (s *System) FS(d Device) (fs.FS, error) {
	if d.Net {
		if s == nil || s.Net == nil {
			return nil, fmt.Errorf("%w: (%s): no network", ErrNoDevice, d)
		}
		if !d.HTTP && d.Host == "" {
			return s.Net, nil
		}
		nf, ok := s.Net.(NetFS)
		if !ok {
			return nil, fmt.Errorf("%w: (%s): the network device serves only its default TFTP server", ErrNoDevice, d)
		}
		fsys, err := nf.Server(d.HTTP, d.Host)
		if err != nil {
			return nil, fmt.Errorf("%w: (%s): %w", ErrNoDevice, d, err)
		}
		return fsys, nil
	}
	v, err := s.Volume(d)
	if err != nil {
		return nil, err
	}
	if v.FS == nil {
		return nil, fmt.Errorf("%w: (%s): no filesystem", ErrNoDevice, d)
	}
	return v.FS, nil
}

// FSPath converts an absolute GRUB path to an io/fs path.
func FSPath(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// Open opens f.
func (s *System) Open(f File) (fs.File, error) {
	fsys, err := s.FS(f.Device)
	if err != nil {
		return nil, err
	}
	return fsys.Open(FSPath(f.Path))
}

// Stat returns f's information.
func (s *System) Stat(f File) (fs.FileInfo, error) {
	fsys, err := s.FS(f.Device)
	if err != nil {
		return nil, err
	}
	return fs.Stat(fsys, FSPath(f.Path))
}

// ReadDir lists directory f.
func (s *System) ReadDir(f File) ([]fs.DirEntry, error) {
	fsys, err := s.FS(f.Device)
	if err != nil {
		return nil, err
	}
	return fs.ReadDir(fsys, FSPath(f.Path))
}

// ReadFile reads f, refusing files larger than max bytes.
func (s *System) ReadFile(f File, max int64) ([]byte, error) {
	fh, err := s.Open(f)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if st, err := fh.Stat(); err == nil {
		if st.IsDir() {
			return nil, fmt.Errorf("%s: is a directory", f)
		}
		if st.Size() > max {
			return nil, fmt.Errorf("%s: %w (%d bytes, limit %d)", f, ErrTooLarge, st.Size(), max)
		}
	}
	// The size can lie (or be unknown); read at most max+1 bytes.
	data, err := io.ReadAll(io.LimitReader(fh, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: %w (limit %d)", f, ErrTooLarge, max)
	}
	return data, nil
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
