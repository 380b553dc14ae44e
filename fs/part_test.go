package fs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/fs"
	"github.com/gopvgrub/gopvgrub/fs/internal/imgtest"
)

// fileDisk is an image file as a Disk.
type fileDisk struct {
	*os.File
	size int64
}

func (d fileDisk) Size() int64 { return d.size }

func openDisk(t *testing.T, name string) fileDisk {
	f, size := imgtest.Open(t, name)
	return fileDisk{f, size}
}

// sfdiskTable is what `sfdisk --json` says about a disk: the reference
// our partition parser is checked against.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string
		ID         string
		SectorSize int64
		Partitions []struct {
			Node        string
			Start, Size int64
			Type        string
			UUID        string
			Name        string
		}
	}
}

func sfdiskJSON(t *testing.T, img string) sfdiskTable {
	t.Helper()
	var tab sfdiskTable
	if err := json.Unmarshal([]byte(imgtest.Run(t, nil, "sfdisk", "--json", img)), &tab); err != nil {
		t.Fatal(err)
	}
	return tab
}

// expectedPartitions converts sfdisk's view into our Partition values
// (extended containers are not partitions GRUB names).
func expectedPartitions(t *testing.T, img string) []fs.Partition {
	tab := sfdiskJSON(t, img).PartitionTable
	var out []fs.Partition
	for _, p := range tab.Partitions {
		n, err := strconv.Atoi(strings.TrimPrefix(p.Node, img))
		if err != nil {
			t.Fatalf("sfdisk node %q", p.Node)
		}
		e := fs.Partition{Number: n, Start: p.Start * tab.SectorSize, Size: p.Size * tab.SectorSize, Label: p.Name}
		switch tab.Label {
		case "dos":
			typ, _ := strconv.ParseUint(p.Type, 16, 8)
			if typ == 0x05 || typ == 0x0F || typ == 0x85 {
				continue
			}
			id, _ := strconv.ParseUint(strings.TrimPrefix(tab.ID, "0x"), 16, 32)
			e.Scheme, e.Type, e.UUID = "msdos", fmt.Sprintf("%#02x", typ), fmt.Sprintf("%08x-%02x", id, n)
		case "gpt":
			e.Scheme, e.Type, e.UUID = "gpt", strings.ToLower(p.Type), strings.ToLower(p.UUID)
		}
		out = append(out, e)
	}
	return out
}

// buildMBRDisk makes a disk with one primary and three logical
// partitions holding ext4, FAT16, ext2 and squashfs.
func buildMBRDisk(t *testing.T, dir string) (disk string, fsImages map[int]string) {
	disk = filepath.Join(dir, "mbr.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 128<<20); err != nil {
		t.Fatal(err)
	}
	script := "label: dos\nlabel-id: 0x12345678\n" +
		"start=2048, size=32768, type=83, bootable\n" +
		"start=34816, size=225280, type=5\n" +
		"start=36864, size=65536, type=6\n" +
		"start=104448, size=32768, type=83\n" +
		"start=139264, size=32768, type=83\n"
	imgtest.Run(t, nil, "bash", "-c", "sfdisk -q \"$1\" <<< \"$2\"", "sh", disk, script)
	fsImages = map[int]string{}
	for n, mk := range map[int]func(img string){
		1: func(img string) { mkfsExt(t, img, "16M", "-t", "ext4", "-L", "rootfs", "-d", smallTree) },
		5: func(img string) {
			imgtest.Run(t, nil, "mkfs.fat", "-F", "16", "-n", "ESPLIKE", "-C", img, "32768")
			mcopyTree(t, variant(t, smallTree, "links"), img)
		},
		6: func(img string) { mkfsExt(t, img, "16M", "-t", "ext2", "-L", "data") },
		7: func(img string) {
			imgtest.Run(t, nil, "mksquashfs", smallTree, img, "-quiet", "-noappend", "-no-progress")
		},
	} {
		img := filepath.Join(dir, fmt.Sprintf("part%d.img", n))
		mk(img)
		fsImages[n] = img
	}
	for _, p := range expectedPartitions(t, disk) {
		if st, err := os.Stat(fsImages[p.Number]); err != nil || st.Size() > p.Size {
			t.Fatalf("partition %d: image does not fit: %v", p.Number, err)
		}
		imgtest.WriteAt(t, disk, p.Start, fsImages[p.Number])
	}
	return disk, fsImages
}

func mkfsExt(t *testing.T, img, size string, args ...string) {
	imgtest.Run(t, nil, "mke2fs", append(append([]string{"-q", "-F"}, args...), img, size)...)
}

func TestPartitionsMBRLogical(t *testing.T) {
	dir := t.TempDir()
	disk, images := buildMBRDisk(t, dir)
	d := openDisk(t, disk)
	got, err := fs.Partitions(d)
	if err != nil {
		t.Fatal(err)
	}
	want := expectedPartitions(t, disk)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Partitions:\n got %+v\nwant %+v", got, want)
	}
	if len(got) != 4 || got[1].Number != 5 || got[1].UUID != "12345678-05" {
		t.Errorf("logical partitions not numbered from 5: %+v", got)
	}

	disks := fs.NewDisks(d)
	var devs []string
	for _, dev := range disks.Devices() {
		devs = append(devs, dev.String())
	}
	if w := "(hd0) (hd0,msdos1) (hd0,msdos5) (hd0,msdos6) (hd0,msdos7)"; strings.Join(devs, " ") != w {
		t.Errorf("Devices() = %v, want %s", devs, w)
	}
	types := map[string]string{"(hd0,msdos1)": "ext4", "(hd0,msdos5)": "vfat", "(hd0,msdos6)": "ext2", "(hd0,msdos7)": "squashfs"}
	for _, dev := range disks.Devices() {
		v, err := disks.Open(dev)
		if dev.Part == 0 {
			if !errors.Is(err, fs.ErrUnknownFS) {
				t.Errorf("Open(%s) = %v, want ErrUnknownFS", dev, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%s): %v", dev, err)
			continue
		}
		if v.Type() != types[dev.String()] {
			t.Errorf("%s: type %q, want %q", dev, v.Type(), types[dev.String()])
		}
		id := imgtest.Blkid(t, images[dev.Part])
		if v.UUID() != id["UUID"] || v.Label() != id["LABEL"] {
			t.Errorf("%s: UUID, label %q, %q; blkid %q, %q", dev, v.UUID(), v.Label(), id["UUID"], id["LABEL"])
		}
	}

	// GRUB's search, by UUID (any case), label and file.
	uuid := imgtest.Blkid(t, images[6])["UUID"]
	searches := []struct {
		kind fs.SearchKind
		key  string
		want string
	}{
		{fs.SearchUUID, strings.ToUpper(uuid), "(hd0,msdos6)"},
		{fs.SearchLabel, "data", "(hd0,msdos6)"},
		{fs.SearchLabel, "DATA", ""},
		{fs.SearchLabel, "ESPLIKE", "(hd0,msdos5)"},
		{fs.SearchFile, "/boot/grub/grub.cfg", "(hd0,msdos1) (hd0,msdos5) (hd0,msdos7)"},
		{fs.SearchFile, "/boot/grub", ""},
		{fs.SearchFile, "/nonexistent", ""},
	}
	for _, s := range searches {
		var got []string
		for _, dev := range disks.Search(s.kind, s.key) {
			got = append(got, dev.String())
		}
		if strings.Join(got, " ") != s.want {
			t.Errorf("Search(%v, %q) = %v, want %q", s.kind, s.key, got, s.want)
		}
	}

	// Legacy (hd0,5) is GRUB 2's msdos6; a scheme that does not match fails.
	dev, err := fs.ParseDevice("(hd0,5)", true)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := disks.Open(dev); err != nil || v.Label() != "data" {
		t.Errorf("Open(legacy (hd0,5)) = %v, %v; want the ext2 labelled data", v, err)
	}
	for _, bad := range []fs.Device{{Disk: 0, Part: 1, Scheme: "gpt"}, {Disk: 0, Part: 2}, {Disk: 1}} {
		if _, err := disks.Open(bad); !errors.Is(err, fs.ErrNoDevice) {
			t.Errorf("Open(%s) = %v, want ErrNoDevice", bad, err)
		}
	}
}

func buildGPTDisk(t *testing.T, dir string) string {
	disk := filepath.Join(dir, "gpt.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil {
		t.Fatal(err)
	}
	imgtest.Run(t, nil, "sgdisk", "-n", "1:2048:+8M", "-t", "1:8300", "-c", "1:boot part",
		"-n", "2:0:+16M", "-t", "2:ef00", "-c", "2:ESP", "-n", "4:0:+8M", "-t", "4:8300", "-c", "4:ünï", disk)
	return disk
}

func TestPartitionsGPT(t *testing.T) {
	dir := t.TempDir()
	disk := buildGPTDisk(t, dir)
	want := expectedPartitions(t, disk)
	if len(want) != 3 || want[2].Number != 4 {
		t.Fatalf("sfdisk sees %+v", want)
	}
	ext := filepath.Join(dir, "p4.img")
	mkfsExt(t, ext, "8M", "-t", "ext4", "-L", "fourth", "-d", smallTree)
	imgtest.WriteAt(t, disk, want[2].Start, ext)

	corrupt := func(name string, off int64, n int) string {
		c := filepath.Join(dir, name)
		imgtest.Run(t, nil, "cp", "--sparse=always", disk, c)
		f, err := os.OpenFile(c, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(make([]byte, n), off); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, img := range []string{
		disk,
		corrupt("no-primary-header.img", 512, 512),     // the backup header takes over
		corrupt("no-primary-entries.img", 1024, 16384), // primary entries fail their CRC
	} {
		d := openDisk(t, img)
		got, err := fs.Partitions(d)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(img), err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Partitions:\n got %+v\nwant %+v", filepath.Base(img), got, want)
		}
		disks := fs.NewDisks(d)
		v, err := disks.Open(fs.Device{Disk: 0, Part: 4, Scheme: "gpt"})
		if err != nil || v.Label() != "fourth" {
			t.Errorf("%s: Open((hd0,gpt4)) = %v, %v", filepath.Base(img), v, err)
		}
	}
	// Both headers gone: an error, not a guess.
	img := corrupt("no-headers.img", 512, 512)
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(make([]byte, 512), 64<<20-512)
	f.Close()
	if _, err := fs.Partitions(openDisk(t, img)); !errors.Is(err, fs.ErrBadPartitionTable) {
		t.Errorf("GPT without headers: %v, want ErrBadPartitionTable", err)
	}
}

// A filesystem on the whole disk (the PV case of xvda1 handed over as a
// disk) has no partition table, whatever its boot sector looks like.
func TestPartitionsWholeDisk(t *testing.T) {
	dir := t.TempDir()
	ext := filepath.Join(dir, "ext4.img")
	mkfsExt(t, ext, "8M", "-t", "ext4", "-L", "whole", "-d", smallTree)
	vfat := filepath.Join(dir, "fat.img")
	imgtest.Run(t, nil, "mkfs.fat", "-F", "32", "-n", "WHOLEFAT", "-C", vfat, "65536")
	for _, img := range []string{ext, vfat} {
		parts, err := fs.Partitions(openDisk(t, img))
		if parts != nil || err != nil {
			t.Errorf("%s: Partitions = %+v, %v; want nil, nil", filepath.Base(img), parts, err)
		}
	}
	disks := fs.NewDisks(openDisk(t, vfat), openDisk(t, ext))
	var got []string
	for _, dev := range disks.Search(fs.SearchFile, "/boot/grub/menu.lst") {
		got = append(got, dev.String())
	}
	if strings.Join(got, " ") != "(hd1)" {
		t.Errorf("search --file across disks = %v, want (hd1)", got)
	}
	if devs := disks.Search(fs.SearchLabel, "WHOLEFAT"); len(devs) != 1 || devs[0] != (fs.Device{}) {
		t.Errorf("search --label WHOLEFAT = %v, want (hd0)", devs)
	}
}
