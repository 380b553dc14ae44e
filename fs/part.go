package fs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"

	"github.com/gopvgrub/gopvgrub/fs/internal/vfs"
)

// Disk is a whole block device: a blkfront device or an image file.
type Disk interface {
	io.ReaderAt
	Size() int64
}

// SectorSizer is implemented by disks whose logical sectors are not 512
// bytes (a Xen vbd's "sector-size"); partition tables count in sectors.
type SectorSizer interface {
	SectorSize() int
}

// Partition is one entry of a partition table.
type Partition struct {
	Number      int    // GRUB 2 number: msdos1.., gpt1.. (logical partitions start at 5)
	Scheme      string // "msdos", "gpt", or "" for the whole disk
	Start, Size int64  // bytes
	Type        string // MBR: "0x83"; GPT: the type GUID
	UUID        string // PARTUUID as blkid prints it
	Label       string // GPT partition name
}

// ErrBadPartitionTable marks a partition table we cannot trust.
var ErrBadPartitionTable = errors.New("bad partition table")

const (
	// maxLogical caps an extended partition's chain of EBRs.
	maxLogical = 256
	// maxGPTEntries and maxGPTEntrySize cap the GPT entry array (sgdisk
	// writes 128 entries of 128 bytes).
	maxGPTEntries   = 4096
	maxGPTEntrySize = 4096
	maxGPTArray     = 1 << 20
)

func badTable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadPartitionTable, fmt.Sprintf(format, args...))
}

// Partitions reads the partition table of d: MBR with extended and
// logical partitions, or GPT behind a protective MBR. A disk without a
// table (a filesystem on the whole disk, the common PV case of xvda1
// handed to the guest as a disk) gives nil, nil: probe the whole disk.
//
// We parse MBR ourselves because go-diskfs reads only the four primary
// entries and we need the EBR chain of logical partitions. GPT is ours
// too, although go-diskfs's GPT reader survived our fuzzing: it is a
// hundred lines against the spec, and one parser for both tables gives
// one set of caps (entry count and size, EBR chain length), one fuzz
// target and GRUB's numbering in one place.
func Partitions(d Disk) ([]Partition, error) {
	ss := int64(512)
	if s, ok := d.(SectorSizer); ok && s.SectorSize() >= 512 && s.SectorSize() <= 65536 && s.SectorSize()&(s.SectorSize()-1) == 0 {
		ss = int64(s.SectorSize())
	}
	size := d.Size()
	if size < 512 {
		return nil, nil
	}
	mbr := make([]byte, 512)
	if err := vfs.ReadFullAt(d, mbr, 0); err != nil {
		return nil, fmt.Errorf("mbr: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, nil
	}
	for i := range 4 {
		if mbr[446+16*i]&0x7F != 0 {
			// Not a partition table: boot code or a FAT/NTFS boot sector
			// (GRUB rejects such a table for the same reason).
			return nil, nil
		}
	}
	for i := range 4 {
		if mbr[446+16*i+4] == 0xEE {
			return gptPartitions(d, size, ss)
		}
	}
	return msdosPartitions(d, mbr, size, ss)
}

type mbrEntry struct {
	typ          byte
	start, count int64
}

func mbrEntries(b []byte) [4]mbrEntry {
	var out [4]mbrEntry
	for i := range out {
		e := b[446+16*i:]
		out[i] = mbrEntry{e[4], int64(binary.LittleEndian.Uint32(e[8:])), int64(binary.LittleEndian.Uint32(e[12:]))}
	}
	return out
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0F || t == 0x85 }

// clamp keeps a partition inside the disk; a partition starting past the
// end is dropped (false).
func clamp(p *Partition, size int64) bool {
	if p.Start <= 0 || p.Start >= size || p.Size <= 0 {
		return false
	}
	p.Size = min(p.Size, size-p.Start)
	return true
}

// msdosPartitions numbers partitions as GRUB's part_msdos does: the four
// MBR slots are 1-4 whether used or not, and every non-empty,
// non-extended entry of each EBR in the chain takes the next number from 5.
func msdosPartitions(d Disk, mbr []byte, size, ss int64) ([]Partition, error) {
	sig := binary.LittleEndian.Uint32(mbr[440:])
	var parts []Partition
	add := func(n int, e mbrEntry, base int64) {
		p := Partition{Number: n, Scheme: "msdos", Start: (base + e.start) * ss, Size: e.count * ss,
			Type: fmt.Sprintf("%#02x", e.typ), UUID: fmt.Sprintf("%08x-%02x", sig, n)}
		if clamp(&p, size) {
			parts = append(parts, p)
		}
	}
	var ext int64 = -1
	for i, e := range mbrEntries(mbr) {
		switch {
		case e.typ == 0:
		case isExtended(e.typ):
			if ext < 0 {
				ext = e.start
			}
		default:
			add(i+1, e, 0)
		}
	}
	if ext <= 0 {
		return parts, nil
	}
	// Walk the EBR chain: each EBR's next link is relative to the start of
	// the extended partition, its logical partition to the EBR itself.
	seen := map[int64]bool{}
	next := 5
	buf := make([]byte, 512)
	for ebr := ext; ; {
		if seen[ebr] {
			return parts, badTable("msdos: loop in the extended partition chain at sector %d", ebr)
		}
		if len(seen) >= maxLogical {
			return parts, badTable("msdos: more than %d logical partitions", maxLogical)
		}
		seen[ebr] = true
		if ebr*ss >= size {
			return parts, badTable("msdos: extended boot record at sector %d beyond the disk", ebr)
		}
		if err := vfs.ReadFullAt(d, buf, ebr*ss); err != nil {
			return parts, fmt.Errorf("msdos: extended boot record: %w", err)
		}
		if buf[510] != 0x55 || buf[511] != 0xAA {
			return parts, badTable("msdos: extended boot record at sector %d has no signature", ebr)
		}
		link := int64(-1)
		for _, e := range mbrEntries(buf) {
			switch {
			case e.typ == 0:
			case isExtended(e.typ):
				if link < 0 {
					link = e.start
				}
			default:
				add(next, e, ebr)
				next++
			}
		}
		if link <= 0 {
			return parts, nil
		}
		ebr = ext + link
	}
}

// guid formats a GPT GUID (mixed-endian) as lower-case text.
func guid(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

func gptPartitions(d Disk, size, ss int64) ([]Partition, error) {
	var firstErr error
	sizes := []int64{ss}
	if ss == 512 {
		sizes = append(sizes, 4096) // 4Kn disks seen through a 512-byte view
	}
	for _, s := range sizes {
		if size < 2*s {
			continue
		}
		parts, alt, err := readGPT(d, size, s, 1)
		if err == nil {
			return parts, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		// The primary header is damaged: try the backup, where the
		// primary says it is or else in the last sector.
		for _, lba := range []int64{alt, size/s - 1} {
			if lba > 1 && lba < size/s {
				if parts, _, err := readGPT(d, size, s, lba); err == nil {
					return parts, nil
				}
			}
		}
	}
	return nil, firstErr
}

// readGPT parses the GPT header at sector lba and its entry array; it
// also returns the alternate header's sector for the caller's fallback.
func readGPT(d Disk, size, ss, lba int64) ([]Partition, int64, error) {
	h := make([]byte, ss)
	if err := vfs.ReadFullAt(d, h, lba*ss); err != nil {
		return nil, 0, fmt.Errorf("gpt: header: %w", err)
	}
	if !bytes.Equal(h[:8], []byte("EFI PART")) {
		return nil, 0, badTable("gpt: no header signature at sector %d", lba)
	}
	alt := int64(binary.LittleEndian.Uint64(h[32:]))
	hsize := int64(binary.LittleEndian.Uint32(h[12:]))
	if hsize < 92 || hsize > ss {
		return nil, alt, badTable("gpt: header size %d", hsize)
	}
	want := binary.LittleEndian.Uint32(h[16:])
	hc := bytes.Clone(h[:hsize])
	clear(hc[16:20])
	if got := crc32.ChecksumIEEE(hc); got != want {
		return nil, alt, badTable("gpt: header checksum %#08x, computed %#08x", want, got)
	}
	if my := int64(binary.LittleEndian.Uint64(h[24:])); my != lba {
		return nil, alt, badTable("gpt: header at sector %d says it is at %d", lba, my)
	}
	entLBA := binary.LittleEndian.Uint64(h[72:])
	count := int64(binary.LittleEndian.Uint32(h[80:]))
	esize := int64(binary.LittleEndian.Uint32(h[84:]))
	if count > maxGPTEntries || esize < 128 || esize > maxGPTEntrySize || esize%8 != 0 || count*esize > maxGPTArray {
		return nil, alt, badTable("gpt: %d entries of %d bytes", count, esize)
	}
	if entLBA < 2 || entLBA >= uint64(size/ss) || int64(entLBA)*ss+count*esize > size {
		return nil, alt, badTable("gpt: entry array at sector %d beyond the disk", entLBA)
	}
	arr := make([]byte, count*esize)
	if err := vfs.ReadFullAt(d, arr, int64(entLBA)*ss); err != nil {
		return nil, alt, fmt.Errorf("gpt: entries: %w", err)
	}
	if want, got := binary.LittleEndian.Uint32(h[88:]), crc32.ChecksumIEEE(arr); want != got {
		return nil, alt, badTable("gpt: entry array checksum %#08x, computed %#08x", want, got)
	}
	var parts []Partition
	for i := range count {
		e := arr[i*esize : (i+1)*esize]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first, last := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
		if first > last || last >= uint64(size/ss) {
			continue
		}
		p := Partition{Number: int(i) + 1, Scheme: "gpt", Start: int64(first) * ss, Size: int64(last-first+1) * ss,
			Type: guid(e[0:16]), UUID: guid(e[16:32]), Label: gptName(e[56:128])}
		if clamp(&p, size) {
			parts = append(parts, p)
		}
	}
	return parts, alt, nil
}

func gptName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
