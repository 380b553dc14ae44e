package fs_test

import (
	"errors"
	"hash/crc32"
	"io/fs"
	"testing"
	"testing/fstest"

	gfs "github.com/gopvgrub/gopvgrub/fs"
	"github.com/gopvgrub/gopvgrub/fs/internal/imgtest"
)

func crc32IEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// fakeVolume is a Volume over a MapFS, to test Find's rules alone.
type fakeVolume struct {
	fstest.MapFS
	uuid, label string
}

func (v fakeVolume) Type() string  { return "fake" }
func (v fakeVolume) UUID() string  { return v.uuid }
func (v fakeVolume) Label() string { return v.label }
func (v fakeVolume) ReadLink(string) (string, error) {
	return "", fs.ErrInvalid
}
func (v fakeVolume) Lstat(name string) (fs.FileInfo, error) { return v.MapFS.Stat(name) }

func TestFind(t *testing.T) {
	vols := []gfs.Volume{
		fakeVolume{fstest.MapFS{"boot/grub/grub.cfg": {}}, "0A1B-2C3D", "EFI"},
		nil,
		fakeVolume{fstest.MapFS{"boot/vmlinuz": {}}, "6f1e0c2a-1111-2222-3333-444455556666", "root"},
		fakeVolume{fstest.MapFS{"boot/grub/grub.cfg": {}}, "", ""},
	}
	cases := []struct {
		kind gfs.SearchKind
		key  string
		want []int
	}{
		{gfs.SearchUUID, "0a1b-2c3d", []int{0}},
		{gfs.SearchUUID, "6F1E0C2A-1111-2222-3333-444455556666", []int{2}},
		{gfs.SearchUUID, "", nil},
		{gfs.SearchLabel, "root", []int{2}},
		{gfs.SearchLabel, "ROOT", nil},
		{gfs.SearchFile, "/boot/grub/grub.cfg", []int{0, 3}},
		{gfs.SearchFile, "/boot/grub", nil}, // a directory is not a file
		{gfs.SearchFile, "boot/vmlinuz", nil},
		{gfs.SearchFile, "/boot/../boot/vmlinuz", []int{2}},
	}
	for _, c := range cases {
		got := gfs.Find(vols, c.kind, c.key)
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) || (len(got) > 1 && got[1] != c.want[1]) {
			t.Errorf("Find(%v, %q) = %v, want %v", c.kind, c.key, got, c.want)
		}
	}
}

func TestOpenProbe(t *testing.T) {
	if v, err := gfs.Open(disk(make([]byte, 1<<20)), 1<<20); v != nil || !errors.Is(err, gfs.ErrUnknownFS) {
		t.Errorf("Open(zeros) = %v, %v; want nil, ErrUnknownFS", v, err)
	}
	seeds := map[string]string{"ext4.img": "ext4", "ext2.img": "ext2", "fat12.img": "vfat", "fat32.img": "vfat",
		"iso9660.iso": "iso9660", "squashfs-xz.img": "squashfs"}
	for seed, typ := range seeds {
		b := imgtest.Seed(t, seed)
		v, err := gfs.Open(disk(b), int64(len(b)))
		if err != nil || v.Type() != typ {
			t.Errorf("Open(%s) = %v, %v; want %s", seed, v, err, typ)
		}
		// A damaged volume of a known kind reports its own error, and
		// never a non-nil Volume.
		b[len(b)/3] ^= 0xff
		b = b[:len(b)/2]
		if v, err := gfs.Open(disk(b), int64(len(b))); err != nil && v != nil {
			t.Errorf("Open(damaged %s) = non-nil %v with %v", seed, v, err)
		}
	}
}
