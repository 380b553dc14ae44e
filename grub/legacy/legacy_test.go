package legacy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gopvgrub/gopvgrub/grub"
)

var cfg = grub.File{Device: grub.Device{Part: 1}, Path: "/boot/grub/menu.lst"}

func sys(files map[string]string) *grub.System {
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return &grub.System{Volumes: []grub.Volume{{Device: grub.Device{Part: 1}, FS: m}}}
}

func summary(m *grub.Menu) string {
	var b strings.Builder
	for _, e := range m.Entries {
		k := "-"
		if e.Kernel != nil {
			k = e.Kernel.String()
		}
		fmt.Fprintf(&b, "%s [%s %s] %s", e.Path(), e.Kind, k, e.Cmdline)
		for _, i := range e.Initrds {
			fmt.Fprintf(&b, " +%s", i)
		}
		for _, mod := range e.Modules {
			fmt.Fprintf(&b, " mod:%s %s", mod.File, mod.Args)
		}
		if e.Locked {
			b.WriteString(" locked")
		}
		if e.Password != nil {
			b.WriteString(" pw")
		}
		if e.SaveDefault {
			b.WriteString(" save")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "default=%d fallback=%v timeout=%v hidden=%v", m.Default, m.Fallback, m.Timeout, m.Hidden)
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, src string
		files     map[string]string
		want      string
	}{
		{"basic", "default 1\ntimeout 3\ntitle A\nroot (hd0,0)\nkernel /vmlinuz ro\ninitrd /initrd\ntitle B\nkernel (hd1,2)/k x=1  y\n",
			nil, "A [linux (hd0,1)/vmlinuz] ro +(hd0,1)/initrd\nB [linux (hd1,3)/k] x=1  y\ndefault=1 fallback=[] timeout=3s hidden=false"},
		{"= syntax, comments, CRLF", "# c\r\ndefault=0\r\ntimeout=0\r\nhiddenmenu\r\n\r\ntitle=X\r\n  kernel=/k a\r\n",
			nil, "X [linux (hd0,1)/k] a\ndefault=0 fallback=[] timeout=0s hidden=true"},
		{"global root", "root (hd0,1)\ntitle A\nkernel /k\ntitle B\nroot (hd1)\nkernel /k\n",
			nil, "A [linux (hd0,2)/k] \nB [linux (hd1)/k] \ndefault=0 fallback=[] timeout=-1ns hidden=false"},
		{"module as initrd (PV-GRUB)", "title A\nkernel /vmlinuz\nmodule /initrd.gz\nmodulenounzip /extra\n",
			nil, "A [linux (hd0,1)/vmlinuz]  +(hd0,1)/initrd.gz +(hd0,1)/extra\ndefault=0 fallback=[] timeout=-1ns hidden=false"},
		{"xen multiboot", "title X\nkernel /boot/xen-4.1-amd64.gz dom0_mem=512M\nmodule /vmlinuz ro\nmodule /initrd\ntitle T\nkernel --type=multiboot /boot/hv\nmodule /m\n",
			nil, "X [multiboot (hd0,1)/boot/xen-4.1-amd64.gz] dom0_mem=512M mod:(hd0,1)/vmlinuz ro mod:(hd0,1)/initrd \nT [multiboot (hd0,1)/boot/hv]  mod:(hd0,1)/m \ndefault=0 fallback=[] timeout=-1ns hidden=false"},
		{"fallback and bad default", "default 9\nfallback 1 0 7\ntitle A\nkernel /a\ntitle B\nkernel /b\n",
			nil, "A [linux (hd0,1)/a] \nB [linux (hd0,1)/b] \ndefault=0 fallback=[1 0] timeout=-1ns hidden=false"},
		{"lock, passwords, savedefault", "password --md5 $1$CeNt6sLt$J/Qebdnx0JUNrcZQntijG/\ntitle A\nlock\nkernel /a\nsavedefault\ntitle B\npassword secret\nkernel /b\n",
			nil, "A [linux (hd0,1)/a]  locked save\nB [linux (hd0,1)/b]  pw\ndefault=0 fallback=[] timeout=-1ns hidden=false"},
		{"default saved", "default saved\ntitle A\nkernel /a\ntitle B\nkernel /b\n",
			map[string]string{"boot/grub/default": "0:1\n# WARNING: comment: with colons\n"}, "default=1"},
		{"default saved without file", "default saved\ntitle A\nkernel /a\ntitle B\nkernel /b\n", nil, "default=0"},
		{"chainloader and empty title", "title W\nrootnoverify (hd0,1)\nchainloader +1\ntitle Empty\n",
			nil, "W [chainload -] \nEmpty [none -] \ndefault=0 fallback=[] timeout=-1ns hidden=false"},
		{"configfile in an entry is a submenu", "title Other\nconfigfile /boot/grub/other.lst\ntitle Last\nkernel /l\n",
			map[string]string{"boot/grub/other.lst": "title O1\nkernel /o1\ntitle O2\nkernel /o2\n"},
			"Other>O1 [linux (hd0,1)/o1] \nOther>O2 [linux (hd0,1)/o2] \nLast [linux (hd0,1)/l] \ndefault=0"},
		{"global configfile replaces", "timeout 9\nconfigfile /boot/grub/other.lst\ntitle Never\nkernel /n\n",
			map[string]string{"boot/grub/other.lst": "timeout 1\ntitle O1\nkernel /o1\n"}, "O1 [linux (hd0,1)/o1] \ndefault=0 fallback=[] timeout=1s"},
		{"default counts a configfile submenu as one", "default 1\ntitle Sub\nconfigfile /boot/grub/other.lst\ntitle Last\nkernel /l\n",
			map[string]string{"boot/grub/other.lst": "title O1\nkernel /o1\ntitle O2\nkernel /o2\n"}, "default=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(sys(tt.files), cfg, []byte(tt.src))
			if err != nil {
				t.Fatalf("%v", err)
			}
			if got := summary(m); !strings.Contains(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s\nnotes %v", got, tt.want, m.Notes)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, src string
		files     map[string]string
		note      string
		err       error
	}{
		{"no entries", "timeout 5\n", nil, "", ErrNoEntries},
		{"bad device", "title A\nroot (fd0)\nkernel /k\n", nil, "unsupported device", nil},
		{"bad timeout", "timeout soon\ntitle A\nkernel /k\n", nil, "bad timeout", nil},
		{"unknown command", "frob\ntitle A\nkernel /k\nwibble\n", nil, "unknown command", nil},
		{"relative kernel", "title A\nkernel vmlinuz\n", nil, "not an absolute path", nil},
		{"bad md5", "password --md5 nothash\ntitle A\nkernel /k\n", nil, "MD5", nil},
		{"configfile loop", "title L\nconfigfile /boot/grub/menu.lst\n", map[string]string{"boot/grub/menu.lst": "title L\nconfigfile /boot/grub/menu.lst\n"}, "", nil},
		{"configfile missing", "title L\nconfigfile /nope\n", nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(sys(tt.files), cfg, []byte(tt.src))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			all := strings.Join(m.Notes, "\n")
			for _, e := range m.Entries {
				all += strings.Join(e.Notes, "\n")
			}
			if !strings.Contains(all, tt.note) {
				t.Errorf("notes %q lack %q", all, tt.note)
			}
		})
	}
	if _, err := Load(sys(nil), cfg); err == nil {
		t.Error("missing file loaded")
	}
	if _, err := Parse(nil, cfg, make([]byte, grub.MaxConfigSize+1)); err == nil {
		t.Error("oversized parsed")
	}
}

// TestFanOut: configfile fan-out (every title loading the same file) is
// bounded by the file budget, not exponential.
func TestFanOut(t *testing.T) {
	self := strings.Repeat("title T\nconfigfile /boot/grub/menu.lst\n", 50)
	m, _ := Load(sys(map[string]string{"boot/grub/menu.lst": self}), cfg)
	if m == nil || len(m.Entries) > grub.MaxEntries {
		t.Fatalf("menu %v", m)
	}
}

func FuzzMenuLst(f *testing.F) {
	for _, s := range []string{
		"default saved\ntimeout 5\ntitle A\nroot (hd0,0)\nkernel /vmlinuz ro\ninitrd /initrd\nsavedefault\n",
		"password --md5 $1$CeNt6sLt$J/Qebdnx0JUNrcZQntijG/\ntitle A\nlock\nkernel /a\n",
		"title X\nkernel /xen.gz\nmodule /vmlinuz\nmodule /initrd\n",
		"title C\nconfigfile /boot/grub/menu.lst\n",
		"fallback 0 1 2\ntitle=x\nkernel=(hd0)/k\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := sys(map[string]string{"boot/grub/menu.lst": string(data), "boot/grub/default": string(data)})
		m, err := Parse(s, cfg, data)
		if err != nil {
			return
		}
		if len(m.Entries) == 0 || len(m.Entries) > grub.MaxEntries {
			t.Fatalf("%d entries without error", len(m.Entries))
		}
		if m.Default < 0 || m.Default >= len(m.Entries) {
			t.Fatalf("default %d of %d", m.Default, len(m.Entries))
		}
		for _, i := range m.Fallback {
			if i < 0 || i >= len(m.Entries) {
				t.Fatalf("fallback %d", i)
			}
		}
	})
}
