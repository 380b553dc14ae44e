package fs

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrNoDevice is returned for a disk or partition that does not exist.
var ErrNoDevice = errors.New("no such device")

// Disks is the guest's set of disks, hd0 first. It resolves GRUB device
// names to volumes, caching what it opens, and implements `search`.
// It is safe for concurrent use.
type Disks struct {
	disks []Disk

	mu    sync.Mutex
	parts map[int]partsResult
	vols  map[Device]volResult
}

type partsResult struct {
	parts []Partition
	err   error
}

type volResult struct {
	v   Volume
	err error
}

// NewDisks makes a set of disks; disks[i] is hd<i>.
func NewDisks(disks ...Disk) *Disks {
	return &Disks{disks: disks, parts: map[int]partsResult{}, vols: map[Device]volResult{}}
}

// Len is the number of disks.
func (s *Disks) Len() int { return len(s.disks) }

// Partitions returns disk i's partition table (nil for a partitionless disk).
func (s *Disks) Partitions(i int) ([]Partition, error) {
	if i < 0 || i >= len(s.disks) {
		return nil, fmt.Errorf("%w: (hd%d)", ErrNoDevice, i)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partitions(i)
}

func (s *Disks) partitions(i int) ([]Partition, error) {
	r, ok := s.parts[i]
	if !ok {
		r.parts, r.err = Partitions(s.disks[i])
		s.parts[i] = r
	}
	return r.parts, r.err
}

// Devices lists every device in GRUB's search order: each disk, then its
// partitions. A disk whose table cannot be read contributes itself only.
func (s *Disks) Devices() []Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Device
	for i := range s.disks {
		out = append(out, Device{Disk: i})
		parts, _ := s.partitions(i)
		for _, p := range parts {
			out = append(out, Device{Disk: i, Part: p.Number, Scheme: p.Scheme})
		}
	}
	return out
}

// Partition resolves dev to its partition ("" scheme matches either
// table); the whole disk gives a Partition with Number 0.
func (s *Disks) Partition(dev Device) (Partition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partition(dev)
}

func (s *Disks) partition(dev Device) (Partition, error) {
	if dev.Disk < 0 || dev.Disk >= len(s.disks) {
		return Partition{}, fmt.Errorf("%w: %s", ErrNoDevice, dev)
	}
	d := s.disks[dev.Disk]
	if dev.Part == 0 {
		return Partition{Size: d.Size()}, nil
	}
	parts, err := s.partitions(dev.Disk)
	if err != nil {
		return Partition{}, fmt.Errorf("%s: %w", dev, err)
	}
	for _, p := range parts {
		if p.Number == dev.Part && (dev.Scheme == "" || dev.Scheme == p.Scheme) {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("%w: %s", ErrNoDevice, dev)
}

// Open opens the filesystem on dev (ErrUnknownFS if it has none).
func (s *Disks) Open(dev Device) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.partition(dev)
	if err != nil {
		return nil, err
	}
	key := dev
	if dev.Part != 0 {
		key.Scheme = p.Scheme
	}
	if r, ok := s.vols[key]; ok {
		return r.v, r.err
	}
	var r volResult
	r.v, r.err = Open(io.NewSectionReader(s.disks[dev.Disk], p.Start, p.Size), p.Size)
	if r.err != nil {
		r.v, r.err = nil, fmt.Errorf("%s: %w", key, r.err)
	}
	s.vols[key] = r
	return r.v, r.err
}

// Search returns the devices whose filesystem matches, in Devices order,
// as grub.cfg's `search` finds them (the first is what --set takes).
func (s *Disks) Search(kind SearchKind, key string) []Device {
	var out []Device
	for _, dev := range s.Devices() {
		v, err := s.Open(dev)
		if err == nil && matches(v, kind, key) {
			out = append(out, dev)
		}
	}
	return out
}
