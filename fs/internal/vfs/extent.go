package vfs

import (
	"fmt"
	"io"
	"sort"
)

// MaxIO caps one read from the device: large enough to stream kernels at
// full speed, small enough for any block frontend.
const MaxIO = 1 << 20

// Extent maps Length bytes of a file at Logical to the device at Physical.
// Bytes of the file covered by no extent read as zeros (holes), and so do
// Zero extents (ext4 unwritten extents).
type Extent struct {
	Logical, Physical, Length int64
	Zero                      bool
}

// ExtentReader reads a file laid out as extents on a device.
type ExtentReader struct {
	dev  io.ReaderAt
	size int64
	ext  []Extent
}

// NewExtentReader checks that the extents are sorted, do not overlap and
// lie within [0, devSize), then returns a reader for a file of size bytes.
func NewExtentReader(dev io.ReaderAt, devSize, size int64, ext []Extent) (*ExtentReader, error) {
	var end int64
	for i, e := range ext {
		if e.Length <= 0 || e.Logical < end || e.Logical > (1<<62)-e.Length {
			return nil, Corruptf("extent %d (logical %d, length %d) overlaps or is empty", i, e.Logical, e.Length)
		}
		if !e.Zero && (e.Physical < 0 || e.Physical > devSize || e.Length > devSize-e.Physical) {
			return nil, Corruptf("extent %d (%d bytes at %d) outside the %d-byte volume", i, e.Length, e.Physical, devSize)
		}
		end = e.Logical + e.Length
	}
	return &ExtentReader{dev: dev, size: size, ext: ext}, nil
}

// ReadAt fills p from the extents, reading each contiguous piece with as
// few device reads as MaxIO allows.
func (r *ExtentReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > r.size-off {
		p = p[:r.size-off]
	}
	n := 0
	i := sort.Search(len(r.ext), func(i int) bool { return r.ext[i].Logical+r.ext[i].Length > off })
	for n < len(p) {
		pos := off + int64(n)
		if i >= len(r.ext) || r.ext[i].Logical > pos {
			// A hole up to the next extent (or the end).
			hole := int64(len(p) - n)
			if i < len(r.ext) {
				hole = min(hole, r.ext[i].Logical-pos)
			}
			clear(p[n : n+int(hole)])
			n += int(hole)
			continue
		}
		e := r.ext[i]
		chunk := min(int64(len(p)-n), e.Logical+e.Length-pos)
		if e.Zero {
			clear(p[n : n+int(chunk)])
			n += int(chunk)
		} else {
			chunk = min(chunk, MaxIO)
			if err := ReadFullAt(r.dev, p[n:n+int(chunk)], e.Physical+pos-e.Logical); err != nil {
				return n, err
			}
			n += int(chunk)
		}
		if pos+chunk >= e.Logical+e.Length {
			i++
		}
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// ReadFullAt reads exactly len(p) bytes at off; a short read is an error
// that names the offset (a truncated image, usually).
func ReadFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)
}
