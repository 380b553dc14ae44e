package grub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestParseDevice(t *testing.T) {
	tests := []struct {
		in     string
		legacy bool
		want   Device
		str    string
		err    error
	}{
		{"(hd0,0)", true, Device{Disk: 0, Part: 1}, "hd0,1", nil},
		{"(hd0,4)", true, Device{Part: 5}, "hd0,5", nil}, // first logical partition
		{"hd0,1", false, Device{Part: 1}, "hd0,1", nil},
		{"(hd1)", true, Device{Disk: 1}, "hd1", nil},
		{"hd0,msdos1", false, Device{Part: 1, Scheme: "msdos"}, "hd0,msdos1", nil},
		{"(hd0,msdos1)", true, Device{Part: 1, Scheme: "msdos"}, "hd0,msdos1", nil}, // scheme: GRUB 2 numbering even in legacy mode
		{"hd2,gpt15", false, Device{Disk: 2, Part: 15, Scheme: "gpt"}, "hd2,gpt15", nil},
		{"(nd)", true, Device{Net: true}, "nd", nil},
		{"tftp,10.0.0.1", false, Device{Net: true, Host: "10.0.0.1"}, "tftp,10.0.0.1", nil},
		{"(http)", false, Device{Net: true, HTTP: true}, "http", nil},
		{"(http,10.0.0.1:8080)", false, Device{Net: true, HTTP: true, Host: "10.0.0.1:8080"}, "http,10.0.0.1:8080", nil},
		{"(tftp)", true, Device{Net: true}, "nd", nil},
		{"(http,)", false, Device{}, "", ErrBadDevice},
		{"(tftp,a/b)", false, Device{}, "", ErrBadDevice},
		{"hd0,0", false, Device{}, "", ErrBadDevice}, // GRUB 2 counts from 1
		{"hd256", false, Device{}, "", ErrBadDevice},
		{"hd0,-1", true, Device{}, "", ErrBadDevice},
		{"hd0,+1", true, Device{}, "", ErrBadDevice},
		{"hd,1", true, Device{}, "", ErrBadDevice},
		{"(hd0,0", true, Device{}, "", ErrBadDevice},
		{"hd0,msdos5,bsd1", false, Device{}, "", ErrUnsupportedDevice},
		{"lvmid/abc/def", false, Device{}, "", ErrUnsupportedDevice},
		{"fd0", true, Device{}, "", ErrUnsupportedDevice},
		{"loop0", false, Device{}, "", ErrUnsupportedDevice},
		{"", false, Device{}, "", ErrUnsupportedDevice},
	}
	for _, tt := range tests {
		got, err := ParseDevice(tt.in, tt.legacy)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("ParseDevice(%q) error %v, want %v", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDevice(%q, %v) = %+v, %v; want %+v", tt.in, tt.legacy, got, err, tt.want)
			continue
		}
		if got.String() != tt.str {
			t.Errorf("%q: String() = %q, want %q", tt.in, got.String(), tt.str)
		}
	}
}

func TestDeviceSame(t *testing.T) {
	a := Device{Part: 1}
	if !a.Same(Device{Part: 1, Scheme: "gpt"}) || !(Device{Part: 1, Scheme: "msdos"}).Same(a) {
		t.Error("unspecified scheme should match either")
	}
	if (Device{Part: 1, Scheme: "msdos"}).Same(Device{Part: 1, Scheme: "gpt"}) {
		t.Error("msdos1 matched gpt1")
	}
	if a.Same(Device{Part: 2}) || a.Same(Device{Disk: 1, Part: 1}) || a.Same(Device{Net: true}) {
		t.Error("different devices matched")
	}
	nd := Device{Net: true}
	if !nd.Same(Device{Net: true}) || nd.Same(Device{Net: true, HTTP: true}) || nd.Same(Device{Net: true, Host: "10.0.0.2"}) {
		t.Error("network devices: servers and protocols must tell them apart")
	}
}

func TestParseFile(t *testing.T) {
	root := Device{Part: 1, Scheme: "msdos"}
	tests := []struct {
		in     string
		legacy bool
		want   string
		bad    bool
	}{
		{"/boot/vmlinuz", false, "(hd0,msdos1)/boot/vmlinuz", false},
		{"(hd0,0)/vmlinuz", true, "(hd0,1)/vmlinuz", false},
		{"(hd1,gpt2)/a//b/../c/./d", false, "(hd1,gpt2)/a/c/d", false},
		{"/../../etc/passwd", false, "(hd0,msdos1)/etc/passwd", false},
		{"(nd)/pxe/menu.lst", true, "(nd)/pxe/menu.lst", false},
		{"(hd0)", true, "(hd0)/", false},
		{"(http,10.0.0.1)/boot/vmlinuz", false, "(http,10.0.0.1)/boot/vmlinuz", false},
		{"http://10.0.0.1:8080/boot/vmlinuz", false, "(http,10.0.0.1:8080)/boot/vmlinuz", false},
		{"http://10.0.0.1", false, "(http,10.0.0.1)/", false},
		{"http:///vmlinuz", false, "", true},
		{"http://a@b/x", false, "", true},
		{"vmlinuz", false, "", true},
		{"(hd0,1", false, "", true},
		{"(hd0,0)+1", true, "", true},
		{"/" + strings.Repeat("a", MaxPath), false, "", true},
	}
	for _, tt := range tests {
		f, err := ParseFile(tt.in, root, tt.legacy)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseFile(%q) = %v, want an error", tt.in, f)
			}
			continue
		}
		if err != nil || f.String() != tt.want {
			t.Errorf("ParseFile(%q) = %v, %v; want %s", tt.in, f, err, tt.want)
		}
	}
}

func testMenu() *Menu {
	return &Menu{Entries: []Entry{
		{Title: "Debian", ID: "simple"},
		{Title: "Debian 6.1", ID: "d61", Submenu: []string{"Advanced"}, SubmenuIDs: []string{"adv"}},
		{Title: "Debian 6.1 (recovery)", ID: "d61r", Submenu: []string{"Advanced"}, SubmenuIDs: []string{"adv"}},
		{Title: "Deep", ID: "deep", Submenu: []string{"Advanced", "Older"}, SubmenuIDs: []string{"adv", "old"}},
		{Title: "Title > with angle", ID: "angle"},
		{Title: "Last", ID: "last"},
	}}
}

func TestFind(t *testing.T) {
	m := testMenu()
	tests := []struct {
		spec string
		want int
	}{
		{"0", 0}, {"2", 4}, {"3", 5}, {"4", -1},
		{"1", 1}, // a submenu alone: its first entry
		{"1>0", 1}, {"1>1", 2}, {"1>2>0", 3}, {"1>2", 3}, {"1>3", -1},
		{"adv>d61r", 2}, {"Advanced>Debian 6.1 (recovery)", 2}, {"adv>old>deep", 3},
		{"simple", 0}, {"Debian", 0}, {"last", 5},
		{"Title >> with angle", 4}, {"angle", 4},
		{"0>1", -1}, {"nosuch", -1}, {"", -1}, {"-1", -1}, {"99999999", -1},
	}
	for _, tt := range tests {
		if got := m.Find(tt.spec); got != tt.want {
			t.Errorf("Find(%q) = %d, want %d", tt.spec, got, tt.want)
		}
	}
}

func TestItems(t *testing.T) {
	m := testMenu()
	top := m.Items(nil)
	var titles []string
	for _, it := range top {
		titles = append(titles, it.Title)
	}
	if got := strings.Join(titles, "|"); got != "Debian|Advanced|Title > with angle|Last" {
		t.Errorf("top level = %q", got)
	}
	if top[1].Entry != -1 || top[3].Entry != 5 {
		t.Errorf("items = %+v", top)
	}
	sub := m.Items([]string{"Advanced"})
	if len(sub) != 3 || sub[2].Title != "Older" || sub[2].Entry != -1 {
		t.Errorf("Advanced = %+v", sub)
	}
}

func TestMenuJSONRoundTrip(t *testing.T) {
	k := File{Device: Device{Part: 1, Scheme: "gpt"}, Path: "/vmlinuz"}
	for _, timeout := range []time.Duration{-1, 0, 1500 * time.Millisecond, 5 * time.Second} {
		m := &Menu{Format: FormatGrubCfg, Source: k, Default: 0, Timeout: timeout,
			Entries: []Entry{{Title: "x", Kind: KindLinux, Kernel: &k, Root: k.Device}}}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Menu
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if back.Timeout != timeout || back.Entries[0].Kernel.String() != "(hd0,gpt1)/vmlinuz" {
			t.Errorf("round trip of %s: timeout %v, kernel %v", b, back.Timeout, back.Entries[0].Kernel)
		}
	}
}

// Vectors from `openssl passwd -1 -salt SALT PASSWORD` (and Python's crypt).
func TestMD5Crypt(t *testing.T) {
	tests := []struct{ pw, salt, want string }{
		{"", "saltsalt", "$1$saltsalt$5Jhcit4zN9UlGiA0txPkO0"},
		{"a", "ab", "$1$ab$NM4FR4Dl/CzoTSJTd3YJ3."},
		{"password", "saltsalt", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"},
		{"password", "ab", "$1$ab$oKsM6dtDD2L1bKowOBX.7."},
		{"0123456789abcdefghij-long-password-over-16", "saltsalt", "$1$saltsalt$RwP29WGZ0aVhTqVwHJ74Z."},
		{"gopvgrub", "CeNt6sLt", "$1$CeNt6sLt$J/Qebdnx0JUNrcZQntijG/"},
		{"gopvgrub", "CeNt6sLtEXTRA", "$1$CeNt6sLt$J/Qebdnx0JUNrcZQntijG/"}, // salt cut at 8
	}
	for _, tt := range tests {
		if got := MD5Crypt(tt.pw, tt.salt); got != tt.want {
			t.Errorf("MD5Crypt(%q, %q) = %s, want %s", tt.pw, tt.salt, got, tt.want)
		}
	}
}

func TestPasswordCheck(t *testing.T) {
	// PBKDF2 vectors from Python's hashlib.pbkdf2_hmac('sha512', …).
	pb := "grub.pbkdf2.sha512.1000.00112233445566778899AABBCCDDEEFF.B68775C94754CE6DBDAB37F8B61C3C7D012B1417609EB78076B9981F49868357F238E4B3E59513C1B63C7B21AC60892860906ACE13979483D711399C3D34A78F"
	pb2 := "grub.pbkdf2.sha512.2.DEADBEEF.4A933DF194466F73B3663964331486528E4DF5DCFE325E067F2EA8B4F1AC9199671CE21C3EBB1215029FED436E6FCC4ED5310B6A70C6EB5A5C4CBF187C615742"
	tests := []struct {
		kind, secret, try string
		ok                bool
	}{
		{PassPlain, "topsecret", "topsecret", true},
		{PassPlain, "topsecret", "topsecre", false},
		{PassPlain, "topsecret", "", false},
		{PassMD5, "$1$CeNt6sLt$J/Qebdnx0JUNrcZQntijG/", "gopvgrub", true},
		{PassMD5, "$1$CeNt6sLt$J/Qebdnx0JUNrcZQntijG/", "gopvgrub ", false},
		{PassPBKDF2, pb, "gopvgrub", true},
		{PassPBKDF2, pb, "gopvgruB", false},
		{PassPBKDF2, pb2, "secret", true},
	}
	for _, tt := range tests {
		p, err := NewPassword("u", tt.kind, tt.secret)
		if err != nil {
			t.Fatalf("NewPassword(%s, %s): %v", tt.kind, tt.secret, err)
		}
		if got := p.Check(tt.try); got != tt.ok {
			t.Errorf("%s %s: Check(%q) = %v, want %v", tt.kind, tt.secret, tt.try, got, tt.ok)
		}
	}
	bad := []struct{ kind, secret string }{
		{PassMD5, "$5$rounds$abc"},
		{PassMD5, "$1$salt"},
		{PassMD5, "$1$toolongsalt$J/Qebdnx0JUNrcZQntijG/"},
		{PassPBKDF2, "grub.pbkdf2.sha512.0.AA.BB"},
		{PassPBKDF2, "grub.pbkdf2.sha512.99999999.AA.BB"},
		{PassPBKDF2, "grub.pbkdf2.sha256.10.AA.BB"},
		{PassPBKDF2, "grub.pbkdf2.sha512.10.XYZ.BB"},
		{PassPBKDF2, "grub.pbkdf2.sha512.10.AA."},
		{"scrypt", "x"},
	}
	for _, b := range bad {
		if _, err := NewPassword("", b.kind, b.secret); !errors.Is(err, ErrBadPassword) {
			t.Errorf("NewPassword(%s, %q) err = %v, want ErrBadPassword", b.kind, b.secret, err)
		}
	}
}

func TestAuth(t *testing.T) {
	admin, _ := NewPassword("admin", PassPlain, "a")
	bob, _ := NewPassword("bob", PassPlain, "b")
	entryPW, _ := NewPassword("", PassPlain, "e")
	m := &Menu{Auth: &Auth{Users: []Password{admin, bob}, Superusers: []string{"admin"}}}
	locked := &Entry{Locked: true}
	forBob := &Entry{Locked: true, Users: []string{"bob"}}
	open := &Entry{}
	own := &Entry{Password: &entryPW}
	tests := []struct {
		name      string
		got, want bool
	}{
		{"admin edits", m.CanEdit("admin", "a"), true},
		{"bob cannot edit", m.CanEdit("bob", "b"), false},
		{"wrong password", m.CanEdit("admin", "b"), false},
		{"locked needs login", m.BootLocked(locked), true},
		{"admin boots locked", m.CanBoot(locked, "admin", "a"), true},
		{"bob not listed", m.CanBoot(locked, "bob", "b"), false},
		{"bob listed", m.CanBoot(forBob, "bob", "b"), true},
		{"unrestricted", m.BootLocked(open), false},
		{"unrestricted boots", m.CanBoot(open, "", ""), true},
		{"own password", m.CanBoot(own, "", "e"), true},
		{"own password wrong", m.CanBoot(own, "", "x"), false},
		{"no auth: edit", (&Menu{}).CanEdit("", ""), true},
		{"no auth: lock ignored", (&Menu{}).BootLocked(locked), false},
		{"named users", m.Auth.NamedUsers(), true},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v", tt.name, tt.got)
		}
	}
}

func TestParseEnv(t *testing.T) {
	block := EnvSignature + "saved_entry=gnulinux-advanced>gnulinux-6.1\nkernelopts=root=/dev/x ro\nesc=a\\\\b\\\nc\n" + strings.Repeat("#", 900)
	env, err := ParseEnv([]byte(block))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"saved_entry": "gnulinux-advanced>gnulinux-6.1", "kernelopts": "root=/dev/x ro", "esc": "a\\b\nc"}
	for k, v := range want {
		if got, _ := env.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if strings.Join(env.Names, ",") != "saved_entry,kernelopts,esc" {
		t.Errorf("names %v", env.Names)
	}
	// A broken line ends parsing but keeps what came before.
	env, err = ParseEnv([]byte(EnvSignature + "a=1\nbroken"))
	if err != nil || len(env.Names) != 1 {
		t.Errorf("truncated: %v %v", env, err)
	}
	if _, err := ParseEnv([]byte("not an env block")); !errors.Is(err, ErrBadEnv) {
		t.Errorf("no signature: %v", err)
	}
	if _, err := ParseEnv(make([]byte, MaxEnvSize+1)); !errors.Is(err, ErrBadEnv) {
		t.Errorf("oversized: %v", err)
	}
	var nilEnv *Env
	if _, ok := nilEnv.Get("x"); ok {
		t.Error("nil env has x")
	}
}

func FuzzParseEnv(f *testing.F) {
	f.Add([]byte(EnvSignature + "a=b\n#####"))
	f.Add([]byte(EnvSignature + "a=b\\"))
	f.Add([]byte(EnvSignature + "x\ny=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnv(data)
		if err != nil {
			return
		}
		if len(env.Names) != len(env.Values) {
			t.Fatalf("%d names, %d values", len(env.Names), len(env.Values))
		}
	})
}

func TestCommandsRoundTrip(t *testing.T) {
	root := Device{Part: 1}
	k := File{Device: root, Path: "/vmlinuz"}
	other := File{Device: Device{Disk: 1, Part: 2, Scheme: "gpt"}, Path: "/initrd"}
	tests := []struct {
		e      Entry
		legacy bool
		want   string
	}{
		{Entry{Kind: KindLinux, Root: root, Kernel: &k, Cmdline: "ro quiet", Initrds: []File{{Device: root, Path: "/initrd.img"}, other}}, true,
			"root (hd0,0)|kernel /vmlinuz ro quiet|initrd /initrd.img (hd1,gpt2)/initrd"},
		{Entry{Kind: KindLinux, Root: root, Kernel: &k}, false,
			"root (hd0,1)|linux /vmlinuz"},
		{Entry{Kind: KindMultiboot, Root: root, Kernel: &k, Cmdline: "dom0_mem=1G", Modules: []Module{{File: other, Args: "ro"}}}, true,
			"root (hd0,0)|multiboot /vmlinuz dom0_mem=1G|module (hd1,gpt2)/initrd ro"},
	}
	for _, tt := range tests {
		lines := tt.e.Commands(tt.legacy)
		if got := strings.Join(lines, "|"); got != tt.want {
			t.Errorf("Commands = %q, want %q", got, tt.want)
			continue
		}
		back, err := ParseCommands(lines, Device{}, tt.legacy)
		if err != nil {
			t.Fatalf("ParseCommands(%q): %v", lines, err)
		}
		if strings.Join(back.Commands(tt.legacy), "|") != tt.want {
			t.Errorf("round trip of %q gave %q", tt.want, back.Commands(tt.legacy))
		}
	}
}

func TestParseCommands(t *testing.T) {
	def := Device{Part: 1, Scheme: "msdos"}
	e, err := ParseCommands([]string{"# comment", "", "set root=(hd0,gpt2)", "linux16 /boot/vmlinuz a  b", "module /extra.img", "boot"}, def, false)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kernel.String() != "(hd0,gpt2)/boot/vmlinuz" || e.Cmdline != "a  b" || len(e.Initrds) != 1 || e.Kind != KindLinux {
		t.Errorf("got %+v", e)
	}
	bad := [][]string{
		{"initrd /x"},               // no kernel yet
		{"linux"},                   // no file
		{"root (fd0)", "linux /v"},  // bad device
		{"linux v"},                 // relative path
		{"frobnicate"},              // unknown
		{"root (hd0,0)"},            // no kernel at all
		{"linux /v", "initrd"},      // initrd without files
		{"linux /v", "module"},      // module without file
		{"linux /v", "initrd (hd0"}, // bad initrd name
	}
	for _, lines := range bad {
		if _, err := ParseCommands(lines, def, true); err == nil {
			t.Errorf("ParseCommands(%q) succeeded", lines)
		}
	}
}

func TestSystem(t *testing.T) {
	big := strings.Repeat("x", 100)
	sys := &System{
		Volumes: []Volume{
			{Device: Device{Disk: 1, Part: 1}, FS: fstest.MapFS{"b": {Data: []byte("B")}}},
			{Device: Device{Disk: 0, Part: 2}, FS: fstest.MapFS{}},
			{Device: Device{Disk: 0}, FS: fstest.MapFS{"boot/f": {Data: []byte(big)}, "dir/x": {}}},
		},
		Net: fstest.MapFS{"pxe/menu.lst": {Data: []byte("N")}},
	}
	sys.Sort()
	if d := sys.Volumes[0].Device; d.Disk != 0 || d.Part != 0 {
		t.Errorf("sort: first is %v", d)
	}
	f := File{Device: Device{}, Path: "/boot/f"}
	if data, err := sys.ReadFile(f, 100); err != nil || len(data) != 100 {
		t.Errorf("ReadFile = %d, %v", len(data), err)
	}
	if _, err := sys.ReadFile(f, 99); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit: %v", err)
	}
	if _, err := sys.ReadFile(File{Path: "/dir"}, 100); err == nil {
		t.Error("read a directory")
	}
	if data, err := sys.ReadFile(File{Device: Device{Net: true}, Path: "/pxe/menu.lst"}, 10); err != nil || string(data) != "N" {
		t.Errorf("net: %q %v", data, err)
	}
	if _, err := sys.FS(Device{Disk: 5}); !errors.Is(err, ErrNoDevice) {
		t.Errorf("missing device: %v", err)
	}
	if _, err := (&System{}).FS(Device{Net: true}); !errors.Is(err, ErrNoDevice) {
		t.Errorf("no network: %v", err)
	}
	// Other servers need a NetFS; a plain fs.FS serves only (nd).
	if _, err := sys.FS(Device{Net: true, HTTP: true}); !errors.Is(err, ErrNoDevice) {
		t.Errorf("http on a plain fs.FS: %v", err)
	}
	sys.Net = servers{"": fstest.MapFS{"a": {Data: []byte("nd")}}, "http,10.0.0.9": fstest.MapFS{"a": {Data: []byte("web")}}}
	for _, tc := range []struct {
		dev  Device
		want string
	}{
		{Device{Net: true}, "nd"},
		{Device{Net: true, HTTP: true, Host: "10.0.0.9"}, "web"},
		{Device{Net: true, Host: "10.0.0.9"}, ""},
	} {
		data, err := sys.ReadFile(File{Device: tc.dev, Path: "/a"}, 10)
		if tc.want == "" {
			if !errors.Is(err, ErrNoDevice) {
				t.Errorf("(%s): %q %v, want ErrNoDevice", tc.dev, data, err)
			}
		} else if err != nil || string(data) != tc.want {
			t.Errorf("(%s): %q %v, want %q", tc.dev, data, err, tc.want)
		}
	}
	if FSPath("/") != "." || FSPath("/a/../../b") != "b" || FSPath("//x//y/") != "x/y" {
		t.Error("FSPath")
	}
}

// servers is a NetFS over fixed file systems, keyed by "http,host" or
// "tftp,host" ("" is the default server).
type servers map[string]fstest.MapFS

func (s servers) Open(name string) (fs.File, error) { return s[""].Open(name) }

func (s servers) Server(http bool, host string) (fs.FS, error) {
	k := "tftp," + host
	if http {
		k = "http," + host
	}
	if f, ok := s[k]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("no server %s", k)
}
