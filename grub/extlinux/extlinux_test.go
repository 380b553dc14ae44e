package extlinux

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gopvgrub/gopvgrub/grub"
)

var cfg = grub.File{Device: grub.Device{Part: 1}, Path: "/boot/extlinux/extlinux.conf"}

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
			k = e.Kernel.Path
		}
		fmt.Fprintf(&b, "%s/%s [%s %s] %s", e.ID, e.Title, e.Kind, k, e.Cmdline)
		for _, i := range e.Initrds {
			fmt.Fprintf(&b, " +%s", i.Path)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "default=%d timeout=%v hidden=%v", m.Default, m.Timeout, m.Hidden)
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, src string
		files     map[string]string
		want      string
	}{
		{"relative and absolute paths", "DEFAULT b\nPROMPT 1\nTIMEOUT 25\nLABEL a\n KERNEL vmlinuz\n INITRD initrd.img\n APPEND root=/dev/xvda1\nLABEL b\n LINUX /vmlinuz-b\n APPEND ro\n",
			nil, "a/a [linux /boot/extlinux/vmlinuz] root=/dev/xvda1 +/boot/extlinux/initrd.img\nb/b [linux /vmlinuz-b] ro\ndefault=1 timeout=2.5s hidden=false"},
		{"no prompt, no UI: boot at once", "DEFAULT a\nLABEL a\n KERNEL /k\n", nil, "default=0 timeout=0s hidden=true"},
		{"UI without timeout waits", "UI menu.c32\nLABEL a\n KERNEL /k\n", nil, "default=0 timeout=-1ns hidden=false"},
		{"initrd= in APPEND, several", "PROMPT 1\nLABEL a\n KERNEL /k\n APPEND a=1 initrd=/i1,/i2 b=2\n", nil, "a/a [linux /k] a=1 b=2 +/i1 +/i2"},
		{"APPEND - clears", "PROMPT 1\nAPPEND global\nLABEL a\n KERNEL /k\n APPEND -\nLABEL b\n KERNEL /k\n", nil, "a/a [linux /k] \nb/b [linux /k] global"},
		{"MENU LABEL, hide, default", "UI menu.c32\nLABEL a\n MENU LABEL ^First\n KERNEL /a\nLABEL h\n MENU HIDE\n KERNEL /h\nLABEL c\n MENU DEFAULT\n KERNEL /c\n",
			nil, "a/First [linux /a] \nc/c [linux /c] \ndefault=1"},
		{"non-Linux labels", "PROMPT 1\nLABEL m\n KERNEL memtest.c32\nLABEL l\n LOCALBOOT 0\nLABEL p\n COM32 hdt.c32\n", nil, "m/m [none -] \nl/l [none -] \np/p [none -] "},
		{"INCLUDE and MENU INCLUDE", "PROMPT 1\nINCLUDE a.cfg\nMENU INCLUDE /b.cfg\n", map[string]string{"boot/extlinux/a.cfg": "label a\n kernel /a\n", "b.cfg": "LABEL b\n KERNEL /b\n"}, "a/a [linux /a] \nb/b [linux /b] "},
		{"CONFIG switches", "PROMPT 1\nLABEL old\n KERNEL /old\nCONFIG /new.cfg\nLABEL never\n KERNEL /never\n", map[string]string{"new.cfg": "PROMPT 1\nLABEL n\n KERNEL /n\n"}, "n/n [linux /n] \ndefault=0"},
		{"TEXT HELP skipped", "PROMPT 1\nLABEL a\n KERNEL /a\n TEXT HELP\n LABEL fake\n ENDTEXT\n", nil, "a/a [linux /a] \ndefault"},
		{"ONTIMEOUT beats DEFAULT", "PROMPT 1\nDEFAULT a\nONTIMEOUT b\nLABEL a\n KERNEL /a\nLABEL b\n KERNEL /b\n", nil, "default=1"},
		{"TOTALTIMEOUT caps", "UI menu.c32\nTIMEOUT 600\nTOTALTIMEOUT 30\nLABEL a\n KERNEL /a\n", nil, "timeout=3s"},
		{"kernel line arguments", "PROMPT 1\nAPPEND g\nLABEL a\n KERNEL /a x=1\n", nil, "a/a [linux /a] x=1 g"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(sys(tt.files), cfg, []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(m); !strings.Contains(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s\nnotes %v", got, tt.want, m.Notes)
			}
		})
	}
}

func TestPasswordsAndErrors(t *testing.T) {
	m, err := Parse(nil, cfg, []byte("MENU MASTER PASSWD $1$CeNt6sLt$J/Qebdnx0JUNrcZQntijG/\nPROMPT 1\nLABEL a\n KERNEL /a\n MENU PASSWD pw\nLABEL b\n KERNEL /b\n MENU PASSWD $6$x$y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Auth == nil || !m.CanEdit("", "gopvgrub") || m.CanEdit("", "x") {
		t.Errorf("master password: %+v", m.Auth)
	}
	if m.Entries[0].Password == nil || !m.Entries[0].Password.Check("pw") || m.Entries[1].Password != nil || len(m.Entries[1].Notes) == 0 {
		t.Errorf("entry passwords: %+v", m.Entries)
	}
	if _, err := Parse(nil, cfg, []byte("PROMPT 1\n")); !errors.Is(err, ErrNoEntries) {
		t.Errorf("no labels: %v", err)
	}
	loop := map[string]string{"boot/extlinux/extlinux.conf": "INCLUDE extlinux.conf\nLABEL a\n KERNEL /a\n"}
	m, err = Load(sys(loop), cfg)
	if err != nil || len(m.Entries) > grub.MaxEntries {
		t.Errorf("include loop: %v", err)
	}
	m, _ = Parse(nil, cfg, []byte("TIMEOUT -3\nFROB x\nPROMPT 1\nLABEL a\n KERNEL /a\n"))
	if n := strings.Join(m.Notes, "|"); !strings.Contains(n, "bad value") || !strings.Contains(n, "unknown keyword") {
		t.Errorf("notes %q", n)
	}
}

func FuzzExtlinux(f *testing.F) {
	f.Add([]byte("DEFAULT menu.c32\nPROMPT 0\nMENU HIDDEN\nTIMEOUT 10\nLABEL lts\n MENU DEFAULT\n LINUX vmlinuz-lts\n INITRD initramfs-lts\n APPEND root=x\n"))
	f.Add([]byte("INCLUDE extlinux.conf\nCONFIG extlinux.conf\nLABEL a\n KERNEL a.c32\n TEXT HELP\n"))
	f.Add([]byte("MENU MASTER PASSWD $1$a$\nLABEL a\n APPEND initrd=,,,\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(sys(map[string]string{"boot/extlinux/extlinux.conf": string(data)}), cfg)
		if err != nil {
			return
		}
		if len(m.Entries) == 0 || len(m.Entries) > grub.MaxEntries || m.Default < 0 || m.Default >= len(m.Entries) {
			t.Fatalf("%d entries, default %d", len(m.Entries), m.Default)
		}
	})
}
