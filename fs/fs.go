// Package fs reads the guest's disks: partition tables (MBR with logical
// partitions, GPT, or none), read-only filesystems exposed as io/fs file
// systems (ext2/3/4, FAT12/16/32, ISO 9660 with Rock Ridge and Joliet,
// squashfs), GRUB device names and GRUB's `search`.
//
// Every byte it parses comes from the guest, so every parser here treats
// its input as hostile: sizes and offsets are bounds-checked, allocations
// derived from the disk are capped, chains and trees are walked with loop
// checks, and each parser has a fuzz target.
//
// The formats are our own code (subpackages ext4, fat, iso9660, squashfs)
// rather than go-diskfs, which the design notes suggested for all but
// ext4. Tried against mutated real images, go-diskfs v1.9.4 broke the
// unikernel's rules, where a panic or an unbounded allocation kills the
// bootloader and recover() is no defence: FAT12 panics with an index out
// of range in File.Read, ISO 9660 panics in its Joliet path-table parser
// and attempts a 1.2 GB allocation, squashfs panics with slice bounds out
// of range in readMetadata (12 panics in 20,000 one-to-four-byte edits of
// a 4 KiB image).
//
// Paths follow GRUB: absolute paths (convert them with CleanPath),
// symlinks followed at most 40 times, "." and "..", case-insensitive names
// on FAT (and on plain ISO 9660 names).
package fs

import (
	"errors"
	"io"
	iofs "io/fs"
	"strings"

	"github.com/gopvgrub/gopvgrub/fs/ext4"
	"github.com/gopvgrub/gopvgrub/fs/fat"
	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
	"github.com/gopvgrub/gopvgrub/fs/iso9660"
	"github.com/gopvgrub/gopvgrub/fs/squashfs"
)

// Errors shared by every format; test with errors.Is.
var (
	// ErrUnknownFS is returned by Open when no format recognises the volume.
	ErrUnknownFS = errors.New("unknown filesystem")
	// ErrCorrupt marks inconsistent on-disk structures (bad offsets,
	// loops, checksum mismatches).
	ErrCorrupt = vfs.ErrCorrupt
	// ErrChecksum marks a metadata checksum mismatch (also ErrCorrupt).
	ErrChecksum = vfs.ErrChecksum
	// ErrTooLarge marks sizes or counts beyond what we agree to allocate.
	ErrTooLarge = vfs.ErrTooLarge
	// ErrSymlinkLoop is returned after 40 symbolic link hops.
	ErrSymlinkLoop = vfs.ErrSymlinkLoop
	// ErrNotDir is returned when a path walks through a non-directory.
	ErrNotDir = vfs.ErrNotDir
	// ErrUnsupported (errors.ErrUnsupported) marks features we refuse,
	// such as unknown ext4 INCOMPAT features or LZO squashfs.
	ErrUnsupported = errors.ErrUnsupported
)

// Volume is one mounted filesystem. Paths are io/fs paths (no leading
// slash); use CleanPath for GRUB's absolute ones.
type Volume interface {
	iofs.FS
	iofs.ReadDirFS
	iofs.StatFS
	iofs.ReadLinkFS
	Type() string  // "ext4", "ext3", "ext2", "vfat", "iso9660", "squashfs"
	UUID() string  // as blkid prints it (compare case-insensitively)
	Label() string // as blkid prints it
}

// Warnings returns what a volume tolerated but the user may want to know,
// such as an ext4 journal that needs recovery.
func Warnings(v Volume) []string {
	if w, ok := v.(interface{ Warnings() []string }); ok {
		return w.Warnings()
	}
	return nil
}

// SetReadFileLimit caps what ReadFile (and so fs.ReadFile) on any volume
// will allocate for one file; the default is 256 MiB. Larger files are
// refused with ErrTooLarge: stream them with Open and ReadAt instead.
func SetReadFileLimit(n int64) { vfs.MaxReadFile.Store(n) }

// Open probes the volume in r (size bytes) and opens it. A volume whose
// signature matches but whose structures are damaged gives that format's
// error, not ErrUnknownFS, so the user learns what is wrong with it.
func Open(r io.ReaderAt, size int64) (Volume, error) {
	// Each opener returns a typed nil pointer on failure; never let it
	// become a non-nil Volume.
	var v Volume
	var err error
	switch {
	case ext4.Probe(r):
		var f *ext4.FS
		if f, err = ext4.Open(r, size); err == nil {
			v = f
		}
	case squashfs.Probe(r):
		var f *squashfs.FS
		if f, err = squashfs.Open(r, size); err == nil {
			v = f
		}
	case iso9660.Probe(r):
		var f *iso9660.FS
		if f, err = iso9660.Open(r, size); err == nil {
			v = f
		}
	case fat.Probe(r):
		var f *fat.FS
		if f, err = fat.Open(r, size); err == nil {
			v = f
		}
	default:
		return nil, ErrUnknownFS
	}
	return v, err
}

// SearchKind selects what Find and Disks.Search compare.
type SearchKind int

const (
	// SearchUUID matches the filesystem UUID, ignoring case (search --fs-uuid).
	SearchUUID SearchKind = iota + 1
	// SearchLabel matches the label exactly (search --label).
	SearchLabel
	// SearchFile matches volumes holding this absolute path as a
	// non-directory (search --file).
	SearchFile
)

// Find returns the indexes of the volumes matching key, in order (nil
// entries are skipped), with GRUB's comparison rules.
func Find(vols []Volume, kind SearchKind, key string) []int {
	var out []int
	for i, v := range vols {
		if v != nil && matches(v, kind, key) {
			out = append(out, i)
		}
	}
	return out
}

func matches(v Volume, kind SearchKind, key string) bool {
	switch kind {
	case SearchUUID:
		return v.UUID() != "" && strings.EqualFold(v.UUID(), key)
	case SearchLabel:
		return v.Label() == key
	case SearchFile:
		p, err := CleanPath(key)
		if err != nil {
			return false
		}
		fi, err := v.Stat(p)
		return err == nil && !fi.IsDir()
	}
	return false
}
