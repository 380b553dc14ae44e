// Package discover finds a guest's boot configuration and parses it into a
// grub.Menu.
//
// The config is named by the PV kernel command line (Xen's extra=) in
// PV-GRUB's syntax, "(hd0,0)/boot/grub/menu.lst" with GRUB legacy's
// 0-based partition numbers ("(hd0,msdos1)" is read as GRUB 2's), or
// "(nd)/path" for a network boot. Without one, every volume is probed, in
// GRUB's device order (disk by disk, the whole disk before its partitions),
// for the paths in Probes; the first config that yields a menu wins.
//
// The probe order within a volume follows PyGrub's (anchors.md §1.1), so a
// guest moved from PyGrub boots the same config:
//
//  1. GRUB 2 grub.cfg: what today's distros maintain (update-grub,
//     grub2-mkconfig); on Fedora/RHEL/AL2023 it drives the BLS entries
//     through blscfg, so it comes before them.
//  2. BLS entry directories with no grub.cfg: systemd-boot style installs.
//  3. extlinux/syslinux configs (Alpine and small distros), as PyGrub
//     probes them, plus SYSLINUX's own locations.
//  4. GRUB legacy menu.lst/grub.conf last, as PyGrub does: images that
//     carry both (Debian upgraded from GRUB legacy, Ubuntu's EC2 images
//     with update-grub-legacy-ec2) keep grub.cfg current too; extra= picks
//     menu.lst explicitly, as PV-GRUB users already do.
package discover

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/gopvgrub/gopvgrub/grub"
	"github.com/gopvgrub/gopvgrub/grub/bls"
	"github.com/gopvgrub/gopvgrub/grub/extlinux"
	"github.com/gopvgrub/gopvgrub/grub/legacy"
	"github.com/gopvgrub/gopvgrub/grub/script"
)

// Probe is a place a config may be.
type Probe struct {
	Path   string
	Format grub.Format
}

// Probes is the order configs are looked for on each volume.
var Probes = []Probe{
	{"/boot/grub/grub.cfg", grub.FormatGrubCfg},
	{"/boot/grub2/grub.cfg", grub.FormatGrubCfg},
	{"/grub/grub.cfg", grub.FormatGrubCfg},
	{"/grub2/grub.cfg", grub.FormatGrubCfg},
	{"/boot/loader/entries", grub.FormatBLS},
	{"/loader/entries", grub.FormatBLS},
	{"/boot/extlinux/extlinux.conf", grub.FormatExtlinux},
	{"/boot/extlinux.conf", grub.FormatExtlinux},
	{"/extlinux/extlinux.conf", grub.FormatExtlinux},
	{"/extlinux.conf", grub.FormatExtlinux},
	{"/boot/syslinux/syslinux.cfg", grub.FormatExtlinux},
	{"/syslinux/syslinux.cfg", grub.FormatExtlinux},
	{"/boot/grub/menu.lst", grub.FormatMenuLst},
	{"/boot/grub/grub.conf", grub.FormatMenuLst},
	{"/grub/menu.lst", grub.FormatMenuLst},
	{"/grub/grub.conf", grub.FormatMenuLst},
}

// Errors.
var (
	ErrNotFound  = errors.New("no boot configuration found")
	ErrBadExtra  = errors.New("bad config location")
	ErrNoNetwork = errors.New("network boot (nd) is not available")
)

// ParseExtra finds the config location in a PV command line: the first
// word starting with "(" (PV-GRUB's argv[1]) or "http://" (HTTP boot); a
// leading --vtpm-label=… is skipped as PV-GRUB does. ok is false when there
// is none.
func ParseExtra(extra string) (f grub.File, ok bool, err error) {
	for _, w := range strings.Fields(extra) {
		if strings.HasPrefix(w, "--vtpm-label=") {
			continue
		}
		if !strings.HasPrefix(w, "(") && !strings.HasPrefix(w, "http://") {
			continue
		}
		f, err := grub.ParseFile(w, grub.Device{}, true)
		if err != nil {
			return grub.File{}, false, fmt.Errorf("%w: %q: %v", ErrBadExtra, w, err)
		}
		if f.Path == "/" {
			return grub.File{}, false, fmt.Errorf("%w: %q names no file", ErrBadExtra, w)
		}
		return f, true, nil
	}
	return grub.File{}, false, nil
}

// DetectFormat guesses a config's format from its name, then its text.
func DetectFormat(name string, data []byte) grub.Format {
	base := path.Base(name)
	switch {
	case base == "menu.lst" || base == "grub.conf":
		return grub.FormatMenuLst
	case base == "extlinux.conf" || base == "syslinux.cfg" || base == "isolinux.cfg" ||
		strings.Contains(name, "pxelinux.cfg/"):
		return grub.FormatExtlinux
	case base == "entries" && strings.HasSuffix(path.Dir(name), "loader"):
		return grub.FormatBLS
	case strings.HasSuffix(base, ".cfg") && strings.Contains(name, "grub"):
		return grub.FormatGrubCfg
	}
	s := string(data)
	for _, line := range strings.Split(s, "\n") {
		w := strings.ToLower(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(w, "menuentry ") || strings.HasPrefix(w, "submenu ") ||
			w == "blscfg" || strings.HasPrefix(w, "set ") || strings.HasPrefix(w, "insmod "):
			return grub.FormatGrubCfg
		case strings.HasPrefix(w, "title ") || strings.HasPrefix(w, "title\t"):
			return grub.FormatMenuLst
		case strings.HasPrefix(w, "label ") || strings.HasPrefix(w, "label\t"):
			return grub.FormatExtlinux
		}
	}
	return grub.FormatGrubCfg
}

// Load parses the config at f in the given format ("" to detect it).
func Load(sys *grub.System, f grub.File, format grub.Format) (*grub.Menu, error) {
	if format == "" {
		if st, err := sys.Stat(f); err == nil && st.IsDir() {
			format = grub.FormatBLS
		} else {
			head, _ := sys.ReadFile(f, grub.MaxConfigSize)
			format = DetectFormat(f.Path, head)
		}
	}
	switch format {
	case grub.FormatMenuLst:
		return legacy.Load(sys, f)
	case grub.FormatExtlinux:
		return extlinux.Load(sys, f)
	case grub.FormatBLS:
		return bls.Load(sys, f, grubenv(sys, f.Device))
	default:
		return script.Load(sys, f)
	}
}

// Parse parses config text that did not come from a disk (PV-GRUB's
// ramdisk= module holding a menu.lst, or a file fetched by TFTP), as if it
// were at f.
func Parse(sys *grub.System, f grub.File, data []byte) (*grub.Menu, error) {
	switch DetectFormat(f.Path, data) {
	case grub.FormatMenuLst:
		return legacy.Parse(sys, f, data)
	case grub.FormatExtlinux:
		return extlinux.Parse(sys, f, data)
	default:
		return script.Parse(sys, f, data)
	}
}

// grubenv finds the GRUB environment block on a volume, for BLS entries'
// $kernelopts.
func grubenv(sys *grub.System, d grub.Device) *grub.Env {
	for _, p := range []string{"/boot/grub2/grubenv", "/grub2/grubenv", "/boot/grub/grubenv", "/grub/grubenv"} {
		data, err := sys.ReadFile(grub.File{Device: d, Path: p}, grub.MaxEnvSize)
		if err != nil {
			continue
		}
		if env, err := grub.ParseEnv(data); err == nil {
			return env
		}
	}
	return nil
}

// Attempt records one config that was tried and why it was not used.
type Attempt struct {
	File grub.File
	Err  error
}

// NotFoundError lists what discovery tried.
type NotFoundError struct {
	Volumes  int
	Attempts []Attempt
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v on %d volume(s)", ErrNotFound, e.Volumes)
	for _, a := range e.Attempts {
		fmt.Fprintf(&b, "; %s: %v", a.File, a.Err)
	}
	return b.String()
}

func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// Discover returns the menu named by extra, or the first one found by
// probing every volume.
func Discover(sys *grub.System, extra string) (*grub.Menu, error) {
	f, ok, err := ParseExtra(extra)
	if err != nil {
		return nil, err
	}
	if ok {
		if f.Device.Net && sys.Net == nil {
			return nil, fmt.Errorf("%w: %s needs the network layer", ErrNoNetwork, f)
		}
		m, err := Load(sys, f, "")
		if err != nil {
			return m, fmt.Errorf("config %s (from the command line): %w", f, err)
		}
		return m, nil
	}
	sys.Sort()
	nf := &NotFoundError{Volumes: len(sys.Volumes)}
	for _, v := range sys.Volumes {
		if v.FS == nil {
			continue
		}
		for _, p := range Probes {
			st, err := fs.Stat(v.FS, grub.FSPath(p.Path))
			if err != nil {
				continue
			}
			if (p.Format == grub.FormatBLS) != st.IsDir() {
				continue
			}
			cf := grub.File{Device: v.Device, Path: p.Path}
			m, err := Load(sys, cf, p.Format)
			if err == nil && len(m.Entries) > 0 {
				return m, nil
			}
			if err == nil {
				err = errors.New("no entries")
			}
			if len(nf.Attempts) < 32 {
				nf.Attempts = append(nf.Attempts, Attempt{cf, err})
			}
		}
	}
	return nil, nf
}
