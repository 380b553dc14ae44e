package grub

import (
	"errors"

	"github.com/gopvgrub/gopvgrub/fs"
)

// FromDisks builds the System for a set of disks (package fs): one Volume
// per whole disk or partition that holds a filesystem fs can read, in
// GRUB's device order. Devices without a readable filesystem are left out;
// their errors are returned so the caller can say why a volume is missing
// (a whole disk that is partitioned, and so has no filesystem of its own,
// is not an error).
func FromDisks(d *fs.Disks) (*System, []error) {
	sys := &System{}
	var errs []error
	for _, dev := range d.Devices() {
		v, err := d.Open(dev)
		if err != nil {
			if !(dev.Part == 0 && errors.Is(err, fs.ErrUnknownFS)) {
				errs = append(errs, err)
			}
			continue
		}
		sys.Volumes = append(sys.Volumes, Volume{
			Device: Device{Disk: dev.Disk, Part: dev.Part, Scheme: dev.Scheme},
			FS:     v, UUID: v.UUID(), Label: v.Label(), Type: v.Type(),
		})
	}
	return sys, errs
}
