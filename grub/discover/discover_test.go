package discover

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gopvgrub/gopvgrub/grub"
)

func TestParseExtra(t *testing.T) {
	tests := []struct {
		extra string
		want  string
		ok    bool
		bad   bool
	}{
		{"(hd0,0)/boot/grub/menu.lst", "(hd0,1)/boot/grub/menu.lst", true, false},
		{"  --vtpm-label=x (hd1,4)/grub/menu.lst console=hvc0", "(hd1,5)/grub/menu.lst", true, false},
		{"(hd0,msdos2)/boot/grub/grub.cfg", "(hd0,msdos2)/boot/grub/grub.cfg", true, false},
		{"(nd)/pxe/menu.lst", "(nd)/pxe/menu.lst", true, false},
		{"http://10.0.0.1/pxe/grub.cfg console=hvc0", "(http,10.0.0.1)/pxe/grub.cfg", true, false},
		{"(http,10.0.0.1:8080)/menu.lst", "(http,10.0.0.1:8080)/menu.lst", true, false},
		{"http://10.0.0.1", "", false, true},
		{"(hd0)/boot/grub/menu.lst", "(hd0)/boot/grub/menu.lst", true, false},
		{"", "", false, false},
		{"console=hvc0 quiet", "", false, false},
		{"(fd0)/x", "", false, true},
		{"(hd0,0)", "", false, true},
		{"(hd0,0)boot", "", false, true},
	}
	for _, tt := range tests {
		f, ok, err := ParseExtra(tt.extra)
		if tt.bad {
			if !errors.Is(err, ErrBadExtra) {
				t.Errorf("ParseExtra(%q) err = %v, want ErrBadExtra", tt.extra, err)
			}
			continue
		}
		if err != nil || ok != tt.ok || (ok && f.String() != tt.want) {
			t.Errorf("ParseExtra(%q) = %v, %v, %v; want %s", tt.extra, f, ok, err, tt.want)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name, data string
		want       grub.Format
	}{
		{"/boot/grub/menu.lst", "", grub.FormatMenuLst},
		{"/grub/grub.conf", "menuentry x {", grub.FormatMenuLst},
		{"/boot/extlinux/extlinux.conf", "", grub.FormatExtlinux},
		{"/pxelinux.cfg/default", "", grub.FormatExtlinux},
		{"/boot/loader/entries", "", grub.FormatBLS},
		{"/EFI/ubuntu/grub.cfg", "", grub.FormatGrubCfg},
		{"/config", "# x\n  title Foo\nkernel /k", grub.FormatMenuLst},
		{"/config", "LABEL a\n KERNEL /k", grub.FormatExtlinux},
		{"/config", "set default=0\n", grub.FormatGrubCfg},
		{"/config", "", grub.FormatGrubCfg},
	}
	for _, tt := range tests {
		if got := DetectFormat(tt.name, []byte(tt.data)); got != tt.want {
			t.Errorf("DetectFormat(%q) = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func vol(d grub.Device, files map[string]string) grub.Volume {
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return grub.Volume{Device: d, FS: m}
}

const lst = "title L\nkernel /k\n"
const cfg = "menuentry G { linux /k; }\n"
const ext = "PROMPT 1\nLABEL E\n KERNEL /k\n"

func TestProbeOrder(t *testing.T) {
	p1 := grub.Device{Part: 1}
	tests := []struct {
		name    string
		volumes []grub.Volume
		want    string // format and source of the menu found
	}{
		{"grub.cfg before menu.lst", []grub.Volume{vol(p1, map[string]string{"boot/grub/menu.lst": lst, "boot/grub/grub.cfg": cfg})}, "grub.cfg (hd0,1)/boot/grub/grub.cfg"},
		{"grub2 dir", []grub.Volume{vol(p1, map[string]string{"boot/grub2/grub.cfg": cfg, "boot/extlinux.conf": ext})}, "grub.cfg (hd0,1)/boot/grub2/grub.cfg"},
		{"BLS before extlinux", []grub.Volume{vol(p1, map[string]string{"loader/entries/a.conf": "linux /k\n", "extlinux.conf": ext})}, "bls (hd0,1)/loader/entries"},
		{"extlinux before menu.lst", []grub.Volume{vol(p1, map[string]string{"boot/syslinux/syslinux.cfg": ext, "grub/menu.lst": lst})}, "extlinux (hd0,1)/boot/syslinux/syslinux.cfg"},
		{"menu.lst", []grub.Volume{vol(p1, map[string]string{"grub/grub.conf": lst})}, "menu.lst (hd0,1)/grub/grub.conf"},
		{"whole disk first, then partitions, disk 0 first", []grub.Volume{
			vol(grub.Device{Disk: 1}, map[string]string{"boot/grub/grub.cfg": cfg}),
			vol(grub.Device{Part: 2}, map[string]string{"boot/grub/menu.lst": lst}),
			vol(grub.Device{}, map[string]string{"README": "x"}),
		}, "menu.lst (hd0,2)/boot/grub/menu.lst"},
		{"broken config skipped", []grub.Volume{
			vol(p1, map[string]string{"boot/grub/grub.cfg": "set timeout=1\n", "boot/grub/menu.lst": lst}),
		}, "menu.lst (hd0,1)/boot/grub/menu.lst"},
		{"a directory named like a config is skipped", []grub.Volume{
			vol(p1, map[string]string{"boot/grub/grub.cfg/x": "", "grub/menu.lst": lst}),
		}, "menu.lst (hd0,1)/grub/menu.lst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Discover(&grub.System{Volumes: tt.volumes}, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := string(m.Format) + " " + m.Source.String(); got != tt.want {
				t.Errorf("found %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	sys := &grub.System{Volumes: []grub.Volume{
		vol(grub.Device{Part: 1}, map[string]string{"boot/grub/grub.cfg": "garbage {", "boot/grub/menu.lst": "timeout 1\n"}),
		{Device: grub.Device{Part: 2}}, // no filesystem
	}}
	_, err := Discover(sys, "")
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNotFound) || len(nf.Attempts) != 2 {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(err.Error(), "(hd0,1)/boot/grub/menu.lst") {
		t.Errorf("message lacks the attempts: %v", err)
	}
	if _, err := Discover(sys, "(nd)/menu.lst"); !errors.Is(err, ErrNoNetwork) {
		t.Errorf("(nd) without network: %v", err)
	}
	if _, err := Discover(sys, "(hd0,5)/menu.lst"); err == nil {
		t.Error("missing extra config found")
	}
	if _, err := Discover(sys, "(hd0,x)/menu.lst"); !errors.Is(err, ErrBadExtra) {
		t.Errorf("bad extra: %v", err)
	}
	// The network serves (nd) when a network layer provides it.
	sys.Net = fstest.MapFS{"pxe/menu.lst": {Data: []byte(lst)}}
	m, err := Discover(sys, "(nd)/pxe/menu.lst")
	if err != nil || m.Format != grub.FormatMenuLst || m.Entries[0].Root.String() != "nd" {
		t.Errorf("(nd): %v %+v", err, m)
	}
}

func TestParseFromMemory(t *testing.T) {
	f := grub.File{Device: grub.Device{Part: 1}, Path: "/ramdisk"}
	for data, want := range map[string]grub.Format{lst: grub.FormatMenuLst, cfg: grub.FormatGrubCfg, ext: grub.FormatExtlinux} {
		m, err := Parse(nil, f, []byte(data))
		if err != nil || m.Format != want {
			t.Errorf("Parse(%q) = %v, %v", data, m, err)
		}
	}
}
