package bls

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gopvgrub/gopvgrub/grub"
)

func TestParseEntry(t *testing.T) {
	e, err := ParseEntry("abc-6.1+2-1.conf", []byte("# c\n\ntitle  Fedora Linux\nversion 6.1\nlinux\t/vmlinuz\ninitrd /a.img\ninitrd /b.img $x\noptions a=1\noptions  b=2\ndevicetree /dtb\nmachine-id m\nsort-key s\ngrub_arg --unrestricted\ngrub_class kernel\nunknown key\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "abc-6.1" || e.FileName != "abc-6.1+2-1" || e.TriesLeft != 2 || e.Bad() {
		t.Errorf("id/counter: %+v", e)
	}
	if e.Title != "Fedora Linux" || e.Linux != "/vmlinuz" || e.Options != "a=1 b=2" || len(e.Initrds) != 2 || e.MachineID != "m" || e.SortKey != "s" {
		t.Errorf("keys: %+v", e)
	}
	bad, _ := ParseEntry("x+0.conf", []byte("linux /v\n"))
	if !bad.Bad() || bad.ID != "x" {
		t.Errorf("bad entry: %+v", bad)
	}
	plus, _ := ParseEntry("c++-1.conf", []byte("linux /v\n"))
	if plus.ID != "c++-1" || plus.TriesLeft != -1 {
		t.Errorf("'+' in name is not a counter: %+v", plus)
	}
	for _, tc := range []struct{ name, data string }{
		{"nolinux.conf", "title x\n"},
		{"uki.conf", "efi /EFI/Linux/x.efi\n"},
		{"big.conf", strings.Repeat("x", MaxEntrySize+1)},
	} {
		if _, err := ParseEntry(tc.name, []byte(tc.data)); err == nil {
			t.Errorf("%s parsed", tc.name)
		}
	}
}

func TestSort(t *testing.T) {
	es := []Entry{
		{FileName: "fedora-6.5.6", TriesLeft: -1},
		{FileName: "fedora-6.5.12", TriesLeft: -1},
		{FileName: "a", SortKey: "b", MachineID: "2", Version: "1", TriesLeft: -1},
		{FileName: "b", SortKey: "b", MachineID: "1", Version: "1", TriesLeft: -1},
		{FileName: "c", SortKey: "b", MachineID: "1", Version: "2", TriesLeft: -1},
		{FileName: "d", SortKey: "a", MachineID: "9", TriesLeft: -1},
		{FileName: "bad", SortKey: "a", TriesLeft: 0},
	}
	Sort(es)
	var got []string
	for _, e := range es {
		got = append(got, e.FileName)
	}
	if strings.Join(got, " ") != "d c b a fedora-6.5.12 fedora-6.5.6 bad" {
		t.Errorf("order %v", got)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"kernelopts": "root=/x ro", "empty": ""}
	get := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	tests := []struct{ in, want string }{
		{"$kernelopts", "root=/x ro"},
		{"$kernelopts $tuned_params", "root=/x ro"},
		{"a $empty  b", "a b"},
		{"x=\\$kernelopts", "x=\\$kernelopts"},
		{"$", "$"},
		{"${kernelopts}", "${kernelopts}"}, // braces are not BLS syntax: "$" then text
		{"$kernelopts.more", "root=/x ro .more"},
	}
	for _, tt := range tests {
		if got := Expand(tt.in, get); got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"loader/entries/m-6.1.conf":  {Data: []byte("title A\nversion 6.1\nlinux /vmlinuz-6.1\ninitrd /i $extra\noptions $kernelopts q\n")},
		"loader/entries/m-6.10.conf": {Data: []byte("title B\nlinux vmlinuz-6.10\n")},
		"loader/entries/bad.conf":    {Data: []byte("title no linux\n")},
		"loader/loader.conf":         {Data: []byte("timeout 7\ndefault m-6.1.conf\n")},
	}
	sys := &grub.System{Volumes: []grub.Volume{{Device: grub.Device{Part: 2, Scheme: "gpt"}, FS: fsys}}}
	env, _ := grub.ParseEnv([]byte(grub.EnvSignature + "kernelopts=root=/dev/xvda2\nextra=/e.img\n"))
	dir := grub.File{Device: grub.Device{Part: 2, Scheme: "gpt"}, Path: "/loader/entries"}
	m, err := Load(sys, dir, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != 2 || m.Entries[0].Title != "B" || m.Default != 1 || m.Timeout.Seconds() != 7 {
		t.Fatalf("menu %+v", m)
	}
	a := m.Entries[1]
	if a.Cmdline != "root=/dev/xvda2 q" || len(a.Initrds) != 2 || a.Initrds[1].String() != "(hd0,gpt2)/e.img" || m.Entries[0].Kernel.Path != "/vmlinuz-6.10" {
		t.Errorf("entry %+v", a)
	}
	if len(m.Notes) != 1 {
		t.Errorf("notes %v", m.Notes)
	}
	// saved_entry wins over loader.conf
	env, _ = grub.ParseEnv([]byte(grub.EnvSignature + "saved_entry=m-6.10\n"))
	if m, _ := Load(sys, dir, env); m.Default != 0 {
		t.Errorf("saved_entry default %d", m.Default)
	}
	if _, err := Load(sys, grub.File{Device: dir.Device, Path: "/nope"}, nil); err == nil {
		t.Error("missing dir")
	}
	empty := &grub.System{Volumes: []grub.Volume{{Device: dir.Device, FS: fstest.MapFS{"loader/entries/x.txt": {}}}}}
	if _, err := Load(empty, dir, nil); !errors.Is(err, ErrNoEntries) {
		t.Errorf("empty dir: %v", err)
	}
}

func FuzzParseEntry(f *testing.F) {
	f.Add("m-6.1+1-2.conf", []byte("title T\nversion 6.1\nlinux /v\ninitrd /i $x\noptions $kernelopts\n"))
	f.Add("x.conf", []byte("linux\t/v\nsort-key a\nmachine-id b\n"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		e, err := ParseEntry(name, data)
		if err != nil {
			return
		}
		es := []Entry{e, e, {FileName: name, TriesLeft: -1}}
		Sort(es)
		get := func(string) (string, bool) { return "v", true }
		ge := e.GrubEntry(grub.Device{Part: 1}, get)
		if ge.Kind != grub.KindLinux {
			t.Fatalf("kind %s", ge.Kind)
		}
	})
}
