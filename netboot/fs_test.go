package netboot_test

import (
	"errors"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/grub"
)

// TestFS checks the (nd) device as package grub sees it: files fetched
// through an io/fs.FS, a missing file as fs.ErrNotExist, and the menu.lst
// fetched over TFTP resolving its (nd) kernel through grub.System.
func TestFS(t *testing.T) {
	n := newNet(t, nil, map[string][]byte{"/pxe/menu.lst": []byte(menu), "/vmlinuz": []byte("KERNEL")})
	r, err := boot(t, n, fastConfig("(nd)/pxe/menu.lst"))
	if err != nil {
		t.Fatal(err)
	}
	fsys := r.FS(5 * time.Second)
	if b, err := fs.ReadFile(fsys, "vmlinuz"); err != nil || string(b) != "KERNEL" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if st, err := fs.Stat(fsys, "vmlinuz"); err != nil || st.Size() != 6 || st.IsDir() {
		t.Fatalf("Stat = %v, %v", st, err)
	}
	if _, err := fsys.Open("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := fsys.Open("../x"); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("invalid path: %v", err)
	}
	// The file a failed open replaced is fetched again, and ReaderAt works.
	f, err := fsys.Open("pxe/menu.lst")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 7)
	if _, err := f.(io.ReaderAt).ReadAt(b, 10); err != nil || string(b) != menu[10:17] {
		t.Fatalf("ReadAt = %q, %v", b, err)
	}
	sys := &grub.System{Net: fsys}
	k, err := sys.ReadFile(grub.File{Device: grub.Device{Net: true}, Path: "/vmlinuz"}, 100)
	if err != nil || string(k) != "KERNEL" {
		t.Fatalf("grub ReadFile (nd)/vmlinuz = %q, %v", k, err)
	}
	if _, err := sys.ReadFile(grub.File{Device: grub.Device{Net: true}, Path: "/vmlinuz"}, 3); !errors.Is(err, grub.ErrTooLarge) {
		t.Fatalf("limit: %v", err)
	}
}

// TestFSServers: GRUB 2's (tftp,host), (http,host) and http:// paths, as
// a config names them, reach those servers through grub.System.
func TestFSServers(t *testing.T) {
	n := newNet(t, nil, map[string][]byte{"/pxe/menu.lst": []byte(menu)})
	n.http["/boot/vmlinuz"] = []byte("HTTP KERNEL")
	r, err := boot(t, n, fastConfig("(nd)/pxe/menu.lst"))
	if err != nil {
		t.Fatal(err)
	}
	sys := &grub.System{Net: r.FS(5 * time.Second)}
	for _, tc := range []struct {
		path, want string
		err        error
	}{
		{"(tftp,10.0.0.3)/other", "from 10.0.0.3", nil},
		{"(http,10.0.0.3)/boot/vmlinuz", "HTTP KERNEL", nil},
		{"http://10.0.0.3:80/boot/vmlinuz", "HTTP KERNEL", nil},
		{"(http,10.0.0.3)/missing", "", fs.ErrNotExist},
		{"(http,boot.example)/x", "", grub.ErrNoDevice},
	} {
		f, err := grub.ParseFile(tc.path, grub.Device{Net: true}, false)
		if err != nil {
			t.Fatal(err)
		}
		b, err := sys.ReadFile(f, 100)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: %q %v, want %v", tc.path, b, err, tc.err)
			}
			continue
		}
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.path, b, err, tc.want)
		}
	}
}
