package fs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	iofs "io/fs"
	"reflect"
	"testing"

	"github.com/gopvgrub/gopvgrub/fs"
	"github.com/gopvgrub/gopvgrub/fs/internal/imgtest"
)

func iofsValid(p string) bool { return iofs.ValidPath(p) }

type memDisk struct{ *bytes.Reader }

func (d memDisk) Size() int64 { return d.Reader.Size() }

func disk(b []byte) fs.Disk { return memDisk{bytes.NewReader(b)} }

// TestPartitionSeeds checks the seed tables made by sfdisk and sgdisk in
// testdata/fs/mkseeds.sh, whose layout the script spells out.
func TestPartitionSeeds(t *testing.T) {
	mbr, err := fs.Partitions(disk(imgtest.Seed(t, "mbr-logical.img")))
	if err != nil {
		t.Fatal(err)
	}
	want := []fs.Partition{
		{Number: 1, Scheme: "msdos", Start: 2 * 512, Size: 4 * 512, Type: "0x83", UUID: "0badcafe-01"},
		{Number: 5, Scheme: "msdos", Start: 9 * 512, Size: 4 * 512, Type: "0x83", UUID: "0badcafe-05"},
		{Number: 6, Scheme: "msdos", Start: 17 * 512, Size: 4 * 512, Type: "0x0c", UUID: "0badcafe-06"},
		{Number: 7, Scheme: "msdos", Start: 25 * 512, Size: 4 * 512, Type: "0x83", UUID: "0badcafe-07"},
	}
	if !reflect.DeepEqual(mbr, want) {
		t.Errorf("MBR seed:\n got %+v\nwant %+v", mbr, want)
	}
	gpt, err := fs.Partitions(disk(imgtest.Seed(t, "gpt.img")))
	if err != nil {
		t.Fatal(err)
	}
	if len(gpt) != 2 || gpt[0].Number != 1 || gpt[0].Label != "one" || gpt[0].Start != 8*512 || gpt[0].Size != 4096 ||
		gpt[1].Number != 3 || gpt[1].Label != "three" || gpt[1].Type != "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" {
		t.Errorf("GPT seed: %+v", gpt)
	}
}

// mbrWith writes a 4-entry table into sector lba of img.
func mbrWith(img []byte, lba int, entries ...[4]uint32) {
	s := img[lba*512:]
	for i, e := range entries {
		p := s[446+16*i:]
		p[0] = byte(e[0])
		p[4] = byte(e[1])
		binary.LittleEndian.PutUint32(p[8:], e[2])
		binary.LittleEndian.PutUint32(p[12:], e[3])
	}
	s[510], s[511] = 0x55, 0xAA
}

func TestPartitionsSynthetic(t *testing.T) {
	cases := []struct {
		name   string
		build  func(img []byte)
		want   []int // partition numbers
		bad    bool  // ErrBadPartitionTable expected
		noneOK bool  // nil, nil expected
	}{
		{"no signature", func(img []byte) {}, nil, false, true},
		{"boot flag not 0 or 0x80 (a boot sector)", func(img []byte) {
			mbrWith(img, 0, [4]uint32{0x29, 0x83, 2, 4})
		}, nil, false, true},
		{"primaries keep their slots", func(img []byte) {
			mbrWith(img, 0, [4]uint32{0, 0, 0, 0}, [4]uint32{0x80, 0x83, 2, 4}, [4]uint32{0, 0, 0, 0}, [4]uint32{0, 0x07, 10, 4})
		}, []int{2, 4}, false, false},
		{"partition at sector 0 (isohybrid) is skipped", func(img []byte) {
			mbrWith(img, 0, [4]uint32{0x80, 0x17, 0, 64})
		}, nil, false, false},
		{"partition beyond the disk is dropped", func(img []byte) {
			mbrWith(img, 0, [4]uint32{0, 0x83, 2, 4}, [4]uint32{0, 0x83, 1 << 30, 4})
		}, []int{1}, false, false},
		{"EBR chain loops", func(img []byte) {
			mbrWith(img, 0, [4]uint32{0, 0x05, 8, 40})
			mbrWith(img, 8, [4]uint32{0, 0x83, 1, 2}, [4]uint32{0, 0x05, 8, 10})
			mbrWith(img, 16, [4]uint32{0, 0x83, 1, 2}, [4]uint32{0, 0x05, 8, 10}) // links to itself
		}, []int{5, 6}, true, false},
		{"EBR chain leaves the disk", func(img []byte) {
			mbrWith(img, 0, [4]uint32{0, 0x0f, 8, 40})
			mbrWith(img, 8, [4]uint32{0, 0x83, 1, 2}, [4]uint32{0, 0x05, 1 << 20, 10})
		}, []int{5}, true, false},
		{"EBR without a signature", func(img []byte) {
			mbrWith(img, 0, [4]uint32{0, 0x85, 8, 40})
		}, nil, true, false},
		{"GPT header with a huge entry count", func(img []byte) {
			mbrWith(img, 0, [4]uint32{0, 0xEE, 1, 127})
			h := img[512:]
			copy(h, "EFI PART")
			binary.LittleEndian.PutUint32(h[12:], 92)
			binary.LittleEndian.PutUint64(h[24:], 1)
			binary.LittleEndian.PutUint64(h[72:], 2)
			binary.LittleEndian.PutUint32(h[80:], 1<<31)
			binary.LittleEndian.PutUint32(h[84:], 128)
			binary.LittleEndian.PutUint32(h[16:], crc32IEEE(h[:92]))
		}, nil, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := make([]byte, 64*512)
			c.build(img)
			parts, err := fs.Partitions(disk(img))
			if c.bad != errors.Is(err, fs.ErrBadPartitionTable) {
				t.Errorf("err = %v, want bad table: %v", err, c.bad)
			}
			if c.noneOK && (parts != nil || err != nil) {
				t.Errorf("got %+v, %v; want nil, nil", parts, err)
			}
			var nums []int
			for _, p := range parts {
				nums = append(nums, p.Number)
				if p.Start <= 0 || p.Start+p.Size > int64(len(img)) {
					t.Errorf("partition %d outside the disk: %+v", p.Number, p)
				}
			}
			if !reflect.DeepEqual(nums, c.want) {
				t.Errorf("numbers %v, want %v", nums, c.want)
			}
		})
	}
}

// FuzzPartitions fuzzes edits of the real MBR and GPT seeds.
func FuzzPartitions(f *testing.F) {
	seeds := [][]byte{imgtest.Seed(f, "mbr-logical.img"), imgtest.Seed(f, "gpt.img")}
	f.Add([]byte{0, 0})
	f.Add([]byte{1, 0})
	f.Add(append([]byte{1, 0}, imgtest.Edit(512+80, 0xff)...))
	f.Add(append([]byte{0, 0}, imgtest.Edit(8*512+446+16+8, 0)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		img := imgtest.Patched(seeds, in)
		parts, err := fs.Partitions(disk(img))
		if err != nil && parts == nil {
			return
		}
		for _, p := range parts {
			if p.Start <= 0 || p.Size <= 0 || p.Start+p.Size > int64(len(img)) {
				t.Fatalf("partition outside the disk: %+v", p)
			}
		}
	})
}
