package script

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gopvgrub/gopvgrub/grub"
)

var cfgFile = grub.File{Device: grub.Device{Part: 1, Scheme: "msdos"}, Path: "/boot/grub/grub.cfg"}

// testSys has two volumes: hd0,msdos1 (the config's, label "boot") and
// hd0,msdos2 (label "root"); files may be added per test.
func testSys(files map[string]string) *grub.System {
	v1 := fstest.MapFS{"boot/vmlinuz": {Data: []byte("k")}, "boot/grub/grubenv": {Data: []byte(grub.EnvSignature + "saved_entry=second\nkernelopts=root=/dev/xvda1 ro\nother=x\n" + strings.Repeat("#", 100))}}
	v2 := fstest.MapFS{"etc/fstab": {Data: []byte("x")}, "empty": {Data: nil}}
	for name, data := range files {
		m, p := v1, name
		if rest, ok := strings.CutPrefix(name, "2:"); ok {
			m, p = v2, rest
		}
		m[p] = &fstest.MapFile{Data: []byte(data)}
	}
	return &grub.System{Volumes: []grub.Volume{
		{Device: grub.Device{Part: 1, Scheme: "msdos"}, FS: v1, UUID: "AAAA-1111", Label: "boot", Type: "ext2"},
		{Device: grub.Device{Part: 2, Scheme: "msdos"}, FS: v2, UUID: "bbbb-2222", Label: "root", Type: "ext4"},
	}}
}

// summary renders what a test checks: one line per entry (path, kernel,
// cmdline), then default and timeout.
func summary(m *grub.Menu) string {
	var b strings.Builder
	for _, e := range m.Entries {
		k := "-"
		if e.Kernel != nil {
			k = e.Kernel.String()
		}
		fmt.Fprintf(&b, "%s [%s] %s", e.Path(), k, e.Cmdline)
		for _, i := range e.Initrds {
			fmt.Fprintf(&b, " +%s", i)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "default=%d timeout=%v hidden=%v", m.Default, m.Timeout, m.Hidden)
	return b.String()
}

func run(t *testing.T, src string, files map[string]string) *grub.Menu {
	t.Helper()
	m, _ := Parse(testSys(files), cfgFile, []byte(src))
	if m == nil {
		t.Fatal("nil menu")
	}
	return m
}

// entry builds a one-entry config whose cmdline shows the expression.
func echoEntry(pre, args string) string {
	return pre + "\nmenuentry t {\n linux /boot/vmlinuz " + args + "\n}\n"
}

func TestQuotingAndExpansion(t *testing.T) {
	tests := []struct {
		name, pre, args, want string
	}{
		{"single quotes", ``, `'a b'  'c$d'`, `a b c$d`},
		{"double quotes expand", `set v="x y"`, `"[$v]" "${v}z"`, `[x y] x yz`},
		{"unquoted var splits", `set v="  x   y  "`, `a$v'b'`, `ax yb`},
		{"escapes in double quotes", ``, `"a\$b\\c\"d\e"`, `a$b\c"d\e`},
		{"unquoted escapes", ``, `a\ b\$c\\d`, `a b$c\d`},
		{"\\xHH kept", ``, `\x41`, `\x41`},
		{"adjacent parts", `set v=1`, `x"$v"'$v'${v}y`, `x1$v1y`},
		{"empty unquoted vanishes", `set e=`, `a $e b $undefined c`, `a b c`},
		{"empty quoted stays", `set e=`, `a "$e" b`, `a  b`},
		{"line continuation", ``, "a \\\n b", `a b`},
		{"multi-line quote", ``, "'a\nb'", "a\nb"},
		{"gettext string", `set v=1`, `$"x $v"`, `x $v`},
		{"special vars", `set v=1`, `$? ${?}`, `0 0`},
		{"reserved words as args", ``, `if then fi for`, `if then fi for`},
		{"assignment command", `v=direct`, `$v`, `direct`},
		{"set without = fails status", `set novalue; set r=$?`, `$r`, `1`},
		{"root parens stripped", `set root=(hd0,msdos2); set r=$root`, `$r`, `hd0,msdos2`},
		{"comment only at word start", `set v=a#b # comment`, `$v`, `a#b`},
		{"unset", `set v=1; unset v`, `[$v]`, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := run(t, echoEntry(tt.pre, tt.args), nil)
			if len(m.Entries) != 1 {
				t.Fatalf("entries: %s\nnotes: %v", summary(m), m.Notes)
			}
			if got := m.Entries[0].Cmdline; got != tt.want {
				t.Errorf("cmdline = %q, want %q (notes %v)", got, tt.want, m.Notes)
			}
		})
	}
}

func TestTest(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		{`[ a = a ]`, true}, {`[ a == b ]`, false}, {`[ a != b ]`, true},
		{`[ a \< b ]`, true}, {`[ b \<= a ]`, false}, {`[ b \> a ]`, true}, {`[ a \>= a ]`, true},
		{`[ 10 -gt 9 ]`, true}, {`[ 0x10 -eq 16 ]`, true}, {`[ 010 -eq 8 ]`, true}, {`[ -1 -lt 0 ]`, true},
		{`[ 3 -ge 4 ]`, false}, {`[ 3 -le 3 ]`, true}, {`[ 3 -ne 3 ]`, false},
		{`[ vmlinuz-2 -plt vmlinuz-11 ]`, true}, {`[ vmlinuz-2 -pgt vmlinuz-11 ]`, false},
		{`[ -z "" ]`, true}, {`[ -n "" ]`, false}, {`[ -n x ]`, true},
		{`[ "" ]`, false}, {`[ x ]`, true}, {`[ ]`, true},
		{`[ ! a = a ]`, false}, {`[ ! ! a = a ]`, true},
		{`[ a = b -o a = a ]`, true}, {`[ a = a -a a = b ]`, false},
		{`[ a = b -a b = b -o c = c ]`, true}, {`[ ( a = b -o c = c ) -a d = d ]`, true},
		{`[ -f /boot/vmlinuz ]`, true}, {`[ -f /boot ]`, false}, {`[ -d /boot ]`, true},
		{`[ -e /nope ]`, false}, {`[ -s /boot/grub/grubenv ]`, true}, {`[ -s (hd0,msdos2)/empty ]`, false},
		{`[ -e (hd0,msdos2)/etc/fstab ]`, true}, {`[ -e (hd9)/x ]`, false},
		{`test a = a`, true}, {`[ a = a`, false}, // missing ]
		{`[ x$feature_timeout_style = xy ]`, true}, {`[ x$grub_platform = xxen ]`, true},
		{`true`, true}, {`false`, false}, {`! false`, true}, {`nosuchcommand`, false},
	}
	for _, tt := range tests {
		src := fmt.Sprintf("if %s; then set r=yes; else set r=no; fi\n", tt.expr)
		m := run(t, echoEntry(src, "$r"), nil)
		want := map[bool]string{true: "yes", false: "no"}[tt.want]
		if got := m.Entries[0].Cmdline; got != want {
			t.Errorf("%s: got %s, want %s", tt.expr, got, want)
		}
	}
}

func TestControlFlow(t *testing.T) {
	tests := []struct{ name, pre, want string }{
		{"elif chain", `set n=2; if [ $n = 1 ]; then r=one; elif [ $n = 2 ]; then r=two; else r=other; fi`, "two"},
		{"else", `if false; then r=a; else r=b; fi`, "b"},
		{"function args", "function f {\n r=\"$# $1 $2 $@\"\n}\nf a 'b c'", "2 a b c a b c"},
		{"return status", "function f {\n return 3\n}\nf; r=$?", "3"},
		{"return stops function", "function f {\n r=before; return; r=after\n}\nf", "before"},
		{"shift", "function f {\n shift; r=$1\n}\nf a b", "b"},
		{"setparams", "function f {\n setparams x y; r=$2\n}\nf", "y"},
		{"for", `r=; for i in a b c; do r="$r$i"; done`, "abc"},
		{"for splits unquoted", `l="a b"; r=; for i in $l "c d"; do r="$r<$i>"; done`, "<a><b><c d>"},
		{"break", `r=; for i in a b c; do r="$r$i"; if [ $i = b ]; then break; fi; done`, "ab"},
		{"continue", `r=; for i in a b c; do if [ $i = b ]; then continue; fi; r="$r$i"; done`, "ac"},
		{"break 2", `r=; for i in 1 2; do for j in a b; do r="$r$i$j"; break 2; done; done`, "1a"},
		{"while", `i=; while [ "$i" != xxx ]; do i="${i}x"; done; r=$i`, "xxx"},
		{"until", `i=; until [ "$i" = xx ]; do i="${i}x"; done; r=$i`, "xx"},
		{"eval", `eval r=\"from eval\"`, "from eval"},
		{"regexp", `regexp --set=1:a --set=2:b '([a-z]+)-([0-9]+)' 'vmlinuz-42'; r="$a $b"`, "vmlinuz 42"},
		{"probe", `probe --set=r --fs-uuid hd0,msdos2`, "bbbb-2222"},
		{"exit stops", "r=before\nmenuentry t { linux /boot/vmlinuz $r; }\nexit\nr=after", "before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := echoEntry(tt.pre, "$r")
			if strings.Contains(tt.pre, "menuentry") {
				src = tt.pre
			}
			m := run(t, src, nil)
			if len(m.Entries) != 1 {
				t.Fatalf("%s\nnotes %v", summary(m), m.Notes)
			}
			if got := m.Entries[0].Cmdline; got != tt.want {
				t.Errorf("got %q, want %q (notes %v)", got, tt.want, m.Notes)
			}
		})
	}
}

func TestMenuentries(t *testing.T) {
	src := `
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
export menuentry_id_option
set default="adv>two"
set timeout=7
set timeout_style=countdown
menuentry 'One' --class debian --class gnu-linux $menuentry_id_option 'one' {
	set root='hd0,msdos1'
	search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-baremetal=ahci0,msdos1 bbbb-2222
	linux	/vmlinuz-one root=/dev/xvda2 ro  quiet
	initrd	/initrd-one /extra.img
}
submenu 'Advanced' $menuentry_id_option 'adv' {
	set inner=yes
	menuentry 'Two' --unrestricted --id two --hotkey=t "$inner" {
		linux (hd0,msdos1)/vmlinuz-two $2 $1
	}
	menuentry 'Three' --users=bob,alice {
		linux16 /vmlinuz-three
		initrd16 /i3
	}
}
menuentry 'Chain' {
	chainloader +1
}
menuentry 'Nothing' {
	echo hi
}
menuentry --source='linux /from-source' 'Source'
`
	m := run(t, src, nil)
	want := `One [(hd0,msdos2)/vmlinuz-one] root=/dev/xvda2 ro quiet +(hd0,msdos2)/initrd-one +(hd0,msdos2)/extra.img
Advanced>Two [(hd0,msdos1)/vmlinuz-two] yes Two
Advanced>Three [(hd0,msdos1)/vmlinuz-three]  +(hd0,msdos1)/i3
Chain [-] 
Nothing [-] 
Source [(hd0,msdos1)/from-source] 
default=1 timeout=7s hidden=true`
	if got := summary(m); got != want {
		t.Errorf("menu:\n%s\nwant:\n%s\nnotes %v", got, want, m.Notes)
	}
	e := m.Entries
	if e[0].ID != "one" || strings.Join(e[0].Classes, ",") != "debian,gnu-linux" || e[1].ID != "two" || e[2].ID != "Three" {
		t.Errorf("ids/classes: %+v", e[:3])
	}
	if e[1].SubmenuIDs[0] != "adv" || e[3].Kind != grub.KindChain || e[4].Kind != grub.KindNone {
		t.Errorf("kinds: %+v", e)
	}
	// No superusers: nothing is locked.
	for _, x := range e {
		if x.Locked {
			t.Errorf("%s locked without superusers", x.Title)
		}
	}
	if m.Auth != nil {
		t.Error("auth without superusers")
	}
}

func TestPasswords(t *testing.T) {
	src := `
set superusers="root alice"
password root secret
password_pbkdf2 alice grub.pbkdf2.sha512.2.DEADBEEF.4A933DF194466F73B3663964331486528E4DF5DCFE325E067F2EA8B4F1AC9199671CE21C3EBB1215029FED436E6FCC4ED5310B6A70C6EB5A5C4CBF187C615742
password bob pw
password_pbkdf2 eve not-a-hash
menuentry locked { linux /vmlinuz; }
menuentry open --unrestricted { linux /vmlinuz; }
menuentry bobs --users=bob { linux /vmlinuz; }
`
	m := run(t, src, nil)
	if m.Auth == nil || strings.Join(m.Auth.Superusers, ",") != "root,alice" || len(m.Auth.Users) != 3 {
		t.Fatalf("auth %+v notes %v", m.Auth, m.Notes)
	}
	e := m.Entries
	checks := []struct {
		name      string
		got, want bool
	}{
		{"root edits", m.CanEdit("root", "secret"), true},
		{"alice edits (pbkdf2)", m.CanEdit("alice", "secret"), true},
		{"bob does not edit", m.CanEdit("bob", "pw"), false},
		{"locked", m.BootLocked(&e[0]), true},
		{"open", m.BootLocked(&e[1]), false},
		{"bob boots his", m.CanBoot(&e[2], "bob", "pw"), true},
		{"bob not others", m.CanBoot(&e[0], "bob", "pw"), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v", c.name, c.got)
		}
	}
	if !strings.Contains(strings.Join(m.Notes, "\n"), "password_pbkdf2") {
		t.Errorf("bad hash not noted: %v", m.Notes)
	}
}

func TestSearch(t *testing.T) {
	tests := []struct{ name, pre, want string }{
		{"uuid case-insensitive", `search --fs-uuid --set=r BBBB-2222`, "hd0,msdos2"},
		{"label", `search -l -s r root`, "hd0,msdos2"},
		{"file", `search --file --set=r /etc/fstab`, "hd0,msdos2"},
		{"set defaults to root", "search --fs-uuid --set bbbb-2222\nr=$root", "hd0,msdos2"},
		{"--set VALUE form", "search --fs-uuid --set r bbbb-2222", "hd0,msdos2"},
		{"not found keeps var and fails", `r=old; if search --fs-uuid --set=r nope; then r=found; fi`, "old"},
		{"fs_uuid alias", `search.fs_uuid bbbb-2222 r`, "hd0,msdos2"},
		{"fs_label alias with hint", `search.fs_label boot r hd0,msdos1`, "hd0,msdos1"},
		{"file alias", `search.file /boot/vmlinuz r`, "hd0,msdos1"},
		{"hint picks first of several", `search --file --set=r --hint=hd0,msdos2 /`, "hd0,msdos2"},
		{"no hint: device order", `search --file --set=r /`, "hd0,msdos1"},
		{"missing type", `r=x; search --set=r foo || r=y; if search --set=r foo; then r=z; fi`, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := run(t, echoEntry(tt.pre, "$r"), nil)
			if got := m.Entries[0].Cmdline; got != tt.want {
				t.Errorf("got %q, want %q (notes %v)", got, tt.want, m.Notes)
			}
		})
	}
}

func TestLoadEnvAndDefaults(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"saved_entry default", "load_env\nset default=\"${saved_entry}\"\n" + twoEntries, "default=1"},
		{"whitelist", "load_env other\nset default=\"${saved_entry}x\"\n" + twoEntries, "default=0"},
		{"-f file", "load_env -f (hd0,msdos1)/boot/grub/grubenv kernelopts\nmenuentry k { linux /vmlinuz $kernelopts; }", "root=/dev/xvda1 ro"},
		{"missing file", "if load_env -f /nope; then r=loaded; else r=failed; fi\nmenuentry k { linux /vmlinuz $r; }", "failed"},
		{"bad default noted", "set default=nosuch\n" + twoEntries, "default=0"},
		{"fallback list", "set fallback=\"1 first 9\"\n" + twoEntries, "fallback=[1 0]"},
		{"timeout unset waits", twoEntries, "timeout=-1ns"},
		{"bad timeout", "set timeout=soon\n" + twoEntries, "timeout=-1ns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := run(t, tt.src, nil)
			s := summary(m) + fmt.Sprintf(" fallback=%v", m.Fallback)
			if len(m.Entries) == 1 {
				s = m.Entries[0].Cmdline
			}
			if !strings.Contains(s, tt.want) {
				t.Errorf("%s: got\n%s\nwant %q (notes %v)", tt.name, s, tt.want, m.Notes)
			}
		})
	}
}

const twoEntries = "menuentry first { linux /vmlinuz 1; }\nmenuentry second { linux /vmlinuz 2; }\n"

func TestSourceAndConfigfile(t *testing.T) {
	files := map[string]string{
		"boot/grub/extra.cfg":  "menuentry sourced { linux /vmlinuz $fromouter; }\nset frominner=1\n",
		"boot/grub/other.cfg":  "set timeout=2\nmenuentry replaced { linux /vmlinuz $fromouter; }\n",
		"boot/grub/empty.cfg":  "set ignored=1\n",
		"boot/grub/legacy.lst": "title legacy\nroot (hd0,1)\nkernel /vmlinuz legacy\n",
		"boot/sys.cfg":         "LABEL l\n  LINUX /vmlinuz\n  APPEND sys\n",
	}
	tests := []struct{ name, src, want string }{
		{"source shares variables and menu", "set fromouter=o\nsource $prefix/extra.cfg\nmenuentry after { linux /vmlinuz $frominner; }",
			"sourced [(hd0,msdos1)/vmlinuz] o\nafter [(hd0,msdos1)/vmlinuz] 1\n"},
		{"configfile replaces the menu", "set fromouter=o\nmenuentry before { linux /vmlinuz; }\nconfigfile /boot/grub/other.cfg\nmenuentry never { linux /vmlinuz; }",
			"replaced [(hd0,msdos1)/vmlinuz] o\ndefault=0 timeout=2s"},
		{"configfile without entries continues", "configfile /boot/grub/empty.cfg\nmenuentry kept { linux /vmlinuz $ignored; }",
			"kept [(hd0,msdos1)/vmlinuz] \n"},
		{"configfile in an entry is a submenu", "menuentry outer { set fromouter=e; configfile /boot/grub/other.cfg; }",
			"outer>replaced [(hd0,msdos1)/vmlinuz] e\n"},
		{"missing source", "source /nope.cfg\n" + twoEntries, "first"},
		{"legacy_configfile", "legacy_configfile /boot/grub/legacy.lst", "legacy [(hd0,2)/vmlinuz] legacy"},
		{"syslinux_configfile", "syslinux_configfile -r (hd0,msdos1)/ /boot/sys.cfg", "l [(hd0,msdos1)/vmlinuz] sys"},
		{"self-sourcing is bounded", "source $prefix/grub.cfg\n" + twoEntries, "first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := map[string]string{}
			for k, v := range files {
				fs[k] = v
			}
			fs["boot/grub/grub.cfg"] = tt.src
			m, _ := Load(testSys(fs), cfgFile)
			if m == nil {
				t.Fatal("nil menu")
			}
			if got := summary(m); !strings.Contains(got, tt.want) {
				t.Errorf("got\n%s\nwant %q\nnotes %v", got, tt.want, m.Notes)
			}
		})
	}
}

func TestBlscfg(t *testing.T) {
	files := map[string]string{
		"2:boot/loader/entries/a-5.14.0-70.el9.x86_64.conf":  "title Old\nversion 5.14.0-70.el9.x86_64\nlinux /boot/vmlinuz-old\ninitrd /boot/initramfs-old.img $tuned_initrd\noptions $kernelopts $tuned_params\ngrub_arg --unrestricted\ngrub_class kernel\n",
		"2:boot/loader/entries/a-5.14.0-162.el9.x86_64.conf": "title New\nversion 5.14.0-162.el9.x86_64\nlinux /boot/vmlinuz-new\ninitrd /boot/initramfs-new.img\ngrub_users $grub_users\n",
		"2:boot/loader/entries/broken.conf":                  "title no linux key\n",
		"2:boot/loader/entries/README":                       "not an entry",
	}
	src := `set kernelopts="root=/dev/sda2 ro"
set default_kernelopts="from default"
set tuned_params="tp=1"
set tuned_initrd=/tuned.img
set grub_users="bob"
set superusers=root
set default=a-5.14.0-70.el9.x86_64
search --fs-uuid --set=root bbbb-2222
blscfg
`
	m := run(t, src, files)
	want := `New [(hd0,msdos2)/boot/vmlinuz-new] from default +(hd0,msdos2)/boot/initramfs-new.img
Old [(hd0,msdos2)/boot/vmlinuz-old] root=/dev/sda2 ro tp=1 +(hd0,msdos2)/boot/initramfs-old.img +(hd0,msdos2)/tuned.img
default=1 timeout=-1ns hidden=false`
	if got := summary(m); got != want {
		t.Errorf("got\n%s\nwant\n%s\nnotes %v", got, want, m.Notes)
	}
	if !m.Entries[0].Locked || m.Entries[1].Locked || strings.Join(m.Entries[0].Users, ",") != "bob" {
		t.Errorf("locks: %+v", m.Entries)
	}
	if !strings.Contains(strings.Join(m.Notes, "\n"), "broken.conf") {
		t.Errorf("broken entry not noted: %v", m.Notes)
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name, src string
		entries   int
		note      string
	}{
		{"pipe rejected, next line parsed", "echo a | cat\n" + twoEntries, 2, "GRUB has no pipes"},
		{"&& rejected", "true && true\n" + twoEntries, 2, "unexpected"},
		{"bad statement skipped", "if true; then\nfi\n" + twoEntries, 2, "syntax error"},
		{"unterminated quote eats the rest", twoEntries + "set x='oops\nmenuentry lost { linux /v; }\n", 2, "unterminated"},
		{"unterminated block", "menuentry a {\n linux /vmlinuz\n", 0, "unexpected end"},
		{"empty block rejected", "menuentry a { }\n" + twoEntries, 2, "empty command list"},
		{"lone $", "set x=$\n" + twoEntries, 2, "'$'"},
		{"unterminated ${", "set x=${a\n" + twoEntries, 2, "unterminated ${"},
		{"stray }", "}\n" + twoEntries, 2, "unexpected"},
		{"function without name", "function { true; }\n" + twoEntries, 2, "function"},
		{"for without in", "for x a; do true; done\n" + twoEntries, 2, "'in' expected"},
		{"unknown command noted", "frobnicate\n" + twoEntries, 2, "unknown command"},
		{"menuentry without title", "menuentry { true; }\n" + twoEntries, 2, "missing title"},
		{"menuentry without body", "menuentry x\n" + twoEntries, 2, "no menuentry definition"},
		{"linux outside an entry", "linux /vmlinuz\n" + twoEntries, 2, "outside a menu entry"},
		{"return outside a function", "return\n" + twoEntries, 2, "not in function body"},
		{"unresolvable kernel", "menuentry x { set root=lvmid/a/b; linux /vmlinuz; }", 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := run(t, tt.src, nil)
			if len(m.Entries) != tt.entries {
				t.Errorf("%d entries:\n%s", len(m.Entries), summary(m))
			}
			all := strings.Join(m.Notes, "\n")
			for _, e := range m.Entries {
				all += "\n" + strings.Join(e.Notes, "\n")
			}
			if !strings.Contains(all, tt.note) {
				t.Errorf("notes %q lack %q", all, tt.note)
			}
		})
	}
}

// TestBudgets: runaway configs end with a note, quickly, never hang.
func TestBudgets(t *testing.T) {
	defer func(a, b int) { stepLimit, entryStepLimit = a, b }(stepLimit, entryStepLimit)
	stepLimit, entryStepLimit = 20000, 2000
	tests := []struct{ name, src, note string }{
		{"infinite while", "while true; do true; done\n" + twoEntries, "budget"},
		{"infinite recursion", "function f {\n f\n}\nf\n" + twoEntries, "nested too deeply"},
		{"infinite loop in an entry", "menuentry loop { while true; do true; done; }\n" + twoEntries, "budget"},
		{"eval recursion", "function f {\n eval f\n}\nf\n" + twoEntries, "too deeply"},
		{"doubling variable", "set v=x\nwhile true; do set v=\"$v$v\"; done\n" + twoEntries, "value too large"},
		{"many entries", "for a in 1 2 3 4 5 6 7 8 9 10 11; do for b in 1 2 3 4 5 6 7 8 9 10 11; do for c in 1 2 3 4 5 6 7 8 9; do menuentry \"$a$b$c\" { true; }; done; done; done", "more than 1024"},
		{"deep nesting", strings.Repeat("if true; then ", 200) + "true" + strings.Repeat("; fi", 200) + "\n" + twoEntries, "nested more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan *grub.Menu)
			go func() { m, _ := Parse(testSys(nil), cfgFile, []byte(tt.src)); done <- m }()
			var m *grub.Menu
			select {
			case m = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("evaluation did not end")
			}
			all := strings.Join(m.Notes, "\n")
			for _, e := range m.Entries {
				all += "\n" + strings.Join(e.Notes, "\n")
			}
			if !strings.Contains(all, tt.note) {
				t.Errorf("notes lack %q:\n%s", tt.note, all)
			}
			if len(m.Entries) > grub.MaxEntries {
				t.Errorf("%d entries", len(m.Entries))
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(testSys(nil), grub.File{Device: cfgFile.Device, Path: "/nope.cfg"}); err == nil {
		t.Error("missing config loaded")
	}
	if _, err := Parse(nil, cfgFile, make([]byte, grub.MaxConfigSize+1)); err == nil {
		t.Error("oversized config parsed")
	}
	m, err := Parse(nil, cfgFile, []byte("set timeout=1\n"))
	if err == nil || m == nil || len(m.Entries) != 0 {
		t.Errorf("config without entries: %v %v", m, err)
	}
}

// FuzzScript evaluates arbitrary grub.cfg text: it must end, within the
// budgets, with a consistent menu, and never panic.
func FuzzScript(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/grub/*/*/boot/grub/grub.cfg")
	more, _ := filepath.Glob("../../testdata/grub/*/*/*/grub.cfg")
	for _, p := range append(seeds, more...) {
		if data, err := os.ReadFile(p); err == nil && len(data) < 64<<10 {
			f.Add(data)
		}
	}
	for _, s := range []string{twoEntries, "if [ a = b ]; then x; elif y; then z; else w; fi", "function f { f; }; f",
		"for i in a b; do menuentry $i { linux /v$i; }; done", "menuentry 'x' \"y\" { search --set=root -f /boot/vmlinuz; linux /boot/vmlinuz $1 $2; }",
		"submenu s { submenu t { menuentry u { true; }; }; }", "set default=\"0>0>0\"\nblscfg", "eval eval eval x", "'unterminated", "${", "a\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defer func(a, b int) { stepLimit, entryStepLimit = a, b }(stepLimit, entryStepLimit)
		stepLimit, entryStepLimit = 20000, 2000
		m, _ := Parse(testSys(nil), cfgFile, data)
		if m == nil {
			t.Fatal("nil menu")
		}
		if len(m.Entries) > grub.MaxEntries || len(m.Notes) > grub.MaxNotes {
			t.Fatalf("%d entries, %d notes", len(m.Entries), len(m.Notes))
		}
		if len(m.Entries) > 0 && (m.Default < 0 || m.Default >= len(m.Entries)) {
			t.Fatalf("default %d of %d", m.Default, len(m.Entries))
		}
		for _, i := range m.Fallback {
			if i < 0 || i >= len(m.Entries) {
				t.Fatalf("fallback %d of %d", i, len(m.Entries))
			}
		}
	})
}
