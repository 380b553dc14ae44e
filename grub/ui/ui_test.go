package ui

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gopvgrub/gopvgrub/console/term"
	"github.com/gopvgrub/gopvgrub/console/term/termtest"
	"github.com/gopvgrub/gopvgrub/grub"
)

// recTerm records the screen each time the menu waits for a key: what the
// user sees at that moment.
type recTerm struct {
	r     *term.Reader
	scr   *termtest.Screen
	shots []string
}

func (t *recTerm) ReadKey(d time.Duration) (term.Key, bool, error) {
	t.shots = append(t.shots, t.scr.String())
	return t.r.ReadKey(d)
}

func (t *recTerm) Write(p []byte) (int, error) { return t.scr.Write(p) }

type result struct {
	c     *Choice
	err   error
	shots []string
	scr   *termtest.Screen
	clock *termtest.Clock
	start time.Time
}

// elapsed is the fake time the session took.
func (r result) elapsed() time.Duration { return r.clock.Now().Sub(r.start) }

// last returns the last recorded screen containing s.
func (r result) last(t *testing.T, s string) string {
	t.Helper()
	for i := len(r.shots) - 1; i >= 0; i-- {
		if strings.Contains(r.shots[i], s) {
			return r.shots[i]
		}
	}
	t.Fatalf("no screen shows %q; last screen:\n%s", s, r.scr.String())
	return ""
}

func runUI(t *testing.T, m *grub.Menu, o Options, script func(*termtest.Script)) result {
	t.Helper()
	clock := termtest.NewClock()
	s := termtest.NewScript(clock)
	script(s)
	w, h := o.Width, o.Height
	if w == 0 {
		w, h = 80, 25
	}
	scr := termtest.NewScreen(w, h)
	rt := &recTerm{r: term.NewReader(s, clock), scr: scr}
	o.Clock = clock
	if o.Sys == nil {
		o.Sys = testSys()
	}
	start := clock.Now()
	c, err := Run(m, rt, o)
	if len(scr.Errors) > 0 {
		t.Errorf("terminal output the emulator does not understand: %v", scr.Errors)
	}
	for _, shot := range rt.shots {
		for _, line := range strings.Split(shot, "\n") {
			if term.Width(line) > w {
				t.Errorf("line wider than %d: %q", w, line)
			}
		}
	}
	return result{c, err, rt.shots, scr, clock, start}
}

var p1 = grub.Device{Part: 1}

func file(p string) *grub.File { return &grub.File{Device: p1, Path: p} }

func testSys() *grub.System {
	return &grub.System{Volumes: []grub.Volume{{Device: p1, UUID: "1234-ABCD", Label: "root", Type: "ext4",
		FS: fstest.MapFS{
			"vmlinuz":         {Data: []byte("k")},
			"initrd.img":      {Data: []byte("i")},
			"etc/motd":        {Data: []byte("hello\x1b[2J world\n")},
			"boot/grub/x.cfg": {Data: []byte("x")},
		}}}}
}

// legacyMenu is a menu.lst-style menu: 3 entries, default 1, timeout 5s.
func legacyMenu() *grub.Menu {
	return &grub.Menu{Format: grub.FormatMenuLst, Source: grub.File{Device: p1, Path: "/boot/grub/menu.lst"},
		Default: 1, Fallback: []int{0}, Timeout: 5 * time.Second,
		Entries: []grub.Entry{
			{Title: "Debian GNU/Linux, kernel 6.1.0-28", Kind: grub.KindLinux, Root: p1, Kernel: file("/vmlinuz"), Cmdline: "root=/dev/xvda1 ro quiet", Initrds: []grub.File{*file("/initrd.img")}},
			{Title: "Debian GNU/Linux, kernel 6.1.0-25", Kind: grub.KindLinux, Root: p1, Kernel: file("/vmlinuz-old"), Cmdline: "root=/dev/xvda1 ro"},
			{Title: "Single user", Kind: grub.KindLinux, Root: p1, Kernel: file("/vmlinuz"), Cmdline: "single", SaveDefault: true},
		}}
}

const menuScreen = `                gopvgrub  (GRUB-compatible boot menu for Xen PV)

 +----------------------------------------------------------------------------+
 | Debian GNU/Linux, kernel 6.1.0-28                                          |
 |*Debian GNU/Linux, kernel 6.1.0-25                                          |
 | Single user                                                                |
 |                                                                            |
 |                                                                            |
 |                                                                            |
 |                                                                            |
 |                                                                            |
 |                                                                            |
 |                                                                            |
 |                                                                            |
 |                                                                            |
 |                                                                            |
 +----------------------------------------------------------------------------+
     Use the Up and Down keys to select which entry is highlighted.
     Press enter to boot the selected OS, ` + "`e' to edit the commands" + `
     before booting or ` + "`c' for a command-line." + `

   The highlighted entry will be executed automatically in 5s.`

func TestTimeoutBootsDefault(t *testing.T) {
	r := runUI(t, legacyMenu(), Options{}, func(s *termtest.Script) { s.Wait(time.Minute) })
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.c.Index != 1 || r.c.Entry.Title != "Debian GNU/Linux, kernel 6.1.0-25" || r.c.Edited || len(r.c.Fallback) != 1 {
		t.Errorf("choice %+v", r.c)
	}
	if r.elapsed() != 5*time.Second {
		t.Errorf("booted after %v, want 5s", r.elapsed())
	}
	if r.shots[0] != menuScreen {
		t.Errorf("first screen:\n%s\nwant:\n%s", r.shots[0], menuScreen)
	}
	var counts []string
	for _, s := range r.shots {
		if i := strings.Index(s, "automatically in "); i >= 0 {
			counts = append(counts, s[i+17:])
		}
	}
	if strings.Join(counts, ",") != "5s.,4s.,3s.,2s.,1s." {
		t.Errorf("countdown %v", counts)
	}
	if got := r.scr.Line(0); got != "  Booting `Debian GNU/Linux, kernel 6.1.0-25'" {
		t.Errorf("boot message %q", got)
	}
}

func TestKeysStopCountdownAndNavigate(t *testing.T) {
	tests := []struct {
		name string
		keys string
		want int
	}{
		{"down then enter", "\x1b[B\r", 2},
		{"up", "\x1bOA\r", 0},
		{"clamped at the end", "\x1b[B\x1b[B\x1b[B\x1b[B\r", 2},
		{"home and end", "\x1b[F\x1b[H\n", 0},
		{"ctrl-n ctrl-x", "\x0e\x18", 2},
		{"right boots", "\x1b[C", 1},
		{"pgdn pgup", "\x1b[6~\x1b[5~\x1b[B\r", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runUI(t, legacyMenu(), Options{}, func(s *termtest.Script) { s.Wait(2 * time.Second).Type(tt.keys) })
			if r.err != nil || r.c == nil || r.c.Index != tt.want {
				t.Fatalf("choice %+v err %v", r.c, r.err)
			}
			if r.elapsed() != 2*time.Second {
				t.Errorf("elapsed %v", r.elapsed())
			}
		})
	}
	// After a key the countdown line is gone and the menu waits forever:
	// the script then runs out and reading fails.
	r := runUI(t, legacyMenu(), Options{}, func(s *termtest.Script) { s.Type("\x1b[B") })
	if !errors.Is(r.err, io.EOF) || strings.Contains(r.shots[len(r.shots)-1], "automatically") {
		t.Errorf("err %v, last screen:\n%s", r.err, r.shots[len(r.shots)-1])
	}
	if hl := r.scr.Highlighted(5); hl != "*Single user" {
		t.Errorf("highlight %q", hl)
	}
}

func manyMenu(n int) *grub.Menu {
	m := &grub.Menu{Format: grub.FormatGrubCfg, Timeout: -1}
	for i := 0; i < n; i++ {
		m.Entries = append(m.Entries, grub.Entry{Title: "Entry " + string(rune('A'+i)), Kind: grub.KindLinux, Root: p1, Kernel: file("/vmlinuz")})
	}
	return m
}

func TestScrolling(t *testing.T) {
	r := runUI(t, manyMenu(20), Options{}, func(s *termtest.Script) {
		s.Type("\x1b[6~") // PgDn: 13 rows
		s.Type("\x1b[F")  // End
		s.Type("\r")
	})
	if r.c == nil || r.c.Index != 19 {
		t.Fatalf("choice %+v %v", r.c, r.err)
	}
	first := r.shots[0]
	if !strings.Contains(first, "| Entry M                                                                    v\n") || strings.Contains(first, "Entry N") {
		t.Errorf("first page:\n%s", first)
	}
	end := r.shots[2]
	if !strings.Contains(end, "| Entry H                                                                    ^\n") || !strings.Contains(end, "|*Entry T") {
		t.Errorf("last page:\n%s", end)
	}
	if !strings.Contains(r.shots[1], "|*Entry N") {
		t.Errorf("after PgDn:\n%s", r.shots[1])
	}
}

func subMenu() *grub.Menu {
	return &grub.Menu{Format: grub.FormatGrubCfg, Timeout: 3 * time.Second, Default: 2,
		Entries: []grub.Entry{
			{Title: "Debian GNU/Linux", Kind: grub.KindLinux, Root: p1, Kernel: file("/vmlinuz")},
			{Title: "Debian, with Linux 6.1", Submenu: []string{"Advanced options"}, Kind: grub.KindLinux, Root: p1, Kernel: file("/vmlinuz")},
			{Title: "Debian, with Linux 6.1 (recovery)", Submenu: []string{"Advanced options"}, Kind: grub.KindLinux, Root: p1, Kernel: file("/vmlinuz"), Cmdline: "single"},
		}}
}

func TestSubmenu(t *testing.T) {
	r := runUI(t, subMenu(), Options{}, func(s *termtest.Script) {
		s.Type("\x1b[A") // Up: off the submenu (the default is inside it)
		s.Type("\x1b[B\r")
		s.Type("\x1b").Wait(time.Second) // Esc back
		s.Type("\r\x1b[B\r")
	})
	if r.c == nil || r.c.Index != 2 {
		t.Fatalf("choice %+v %v", r.c, r.err)
	}
	if !strings.Contains(r.shots[0], "|*Advanced options >") {
		t.Errorf("default's submenu not highlighted:\n%s", r.shots[0])
	}
	inside := r.last(t, "Debian, with Linux 6.1 (recovery)")
	if !strings.Contains(inside, "Press ESC to return to the previous menu.") {
		t.Errorf("submenu screen:\n%s", inside)
	}
	if r.c.Entry.Path() != "Advanced options>Debian, with Linux 6.1 (recovery)" {
		t.Errorf("path %q", r.c.Entry.Path())
	}
}

func TestTimeoutBootsDefaultInSubmenu(t *testing.T) {
	r := runUI(t, subMenu(), Options{}, func(s *termtest.Script) { s.Wait(time.Minute) })
	if r.c == nil || r.c.Index != 2 || r.elapsed() != 3*time.Second {
		t.Fatalf("choice %+v after %v", r.c, r.elapsed())
	}
}

func TestEdit(t *testing.T) {
	r := runUI(t, legacyMenu(), Options{}, func(s *termtest.Script) {
		s.Type("e")
		s.Type("\x1b[B")                             // to the kernel line
		s.Type("\x05\x7f\x7f")                       // End, Backspace twice: "ro" gone
		s.Type("single x\x1b[D\x04")                 // type, Left, Ctrl-D deletes "x"
		s.Type("\x01" + strings.Repeat("\x1b[C", 6)) // Ctrl-A, Right×6: after "kernel"
		s.Type("\x1b[3~ ")                           // Delete the space, type it back
		s.Type("\x18")                               // Ctrl-X boots
	})
	if r.err != nil || r.c == nil {
		t.Fatalf("%+v %v", r.c, r.err)
	}
	if !r.c.Edited || r.c.Index != -1 || r.c.Entry.Title != "Debian GNU/Linux, kernel 6.1.0-25" {
		t.Errorf("choice %+v", r.c)
	}
	if got := r.c.Entry.Cmdline; got != "root=/dev/xvda1 single" {
		t.Errorf("cmdline %q", got)
	}
	if r.c.Entry.Kernel.String() != "(hd0,1)/vmlinuz-old" {
		t.Errorf("kernel %v", r.c.Entry.Kernel)
	}
	editor := r.shots[1]
	for _, want := range []string{"| root (hd0,0)", "| kernel /vmlinuz-old root=/dev/xvda1 ro", "Enter or Ctrl-x"} {
		if !strings.Contains(editor, want) {
			t.Errorf("editor lacks %q:\n%s", want, editor)
		}
	}
}

func TestEditCancelAndErrors(t *testing.T) {
	r := runUI(t, legacyMenu(), Options{}, func(s *termtest.Script) {
		s.Type("e\x01\x0bfrobnicate\r")  // replace "root (hd0,0)" with garbage
		s.Type("\x1b").Wait(time.Second) // Esc discards
		s.Type("\r")
	})
	if r.c == nil || r.c.Edited || r.c.Index != 1 {
		t.Fatalf("choice %+v %v", r.c, r.err)
	}
	errScreen := r.last(t, "error:")
	if !strings.Contains(errScreen, "line 1: frobnicate: unknown command") {
		t.Errorf("error screen:\n%s", errScreen)
	}
	// New lines with Ctrl-O; an empty line removed with Ctrl-K.
	r = runUI(t, legacyMenu(), Options{}, func(s *termtest.Script) {
		s.Type("e\x1b[B\x0finitrd /initrd.img\x0f\x0b\r")
	})
	if r.c == nil || len(r.c.Entry.Initrds) != 1 || r.c.Entry.Initrds[0].Path != "/initrd.img" {
		t.Fatalf("choice %+v %v", r.c, r.err)
	}
}

func TestCommandLine(t *testing.T) {
	r := runUI(t, legacyMenu(), Options{}, func(s *termtest.Script) {
		s.Type("c")
		s.Type("help\r")
		s.Type("ls\r")
		s.Type("ls (hd0,0)\r")
		s.Type("ls /\r")
		s.Type("cat /etc/motd\r")
		s.Type("frob\r")
		s.Type("initrd /initrd.img\r") // no kernel yet
		s.Type("kernel /nonexistent\r")
		s.Type("root (hd0,0)\r")
		s.Type("kernel /vmlinuz root=/dev/xvda1 console=hvc0\r")
		s.Type("initrd /initrd.img\r")
		s.Type("boot\r")
	})
	if r.err != nil || r.c == nil {
		t.Fatalf("%+v %v", r.c, r.err)
	}
	e := r.c.Entry
	if r.c.Index != -1 || e.Kernel.String() != "(hd0,1)/vmlinuz" || e.Cmdline != "root=/dev/xvda1 console=hvc0" || len(e.Initrds) != 1 {
		t.Errorf("entry %+v", e)
	}
	s := r.last(t, "grub> boot")
	wantLines := []string{
		"grub> ls",
		"(hd0,1)",
		`Partition hd0,1: Filesystem type ext4, UUID 1234-ABCD, Label "root"`,
		"boot/ etc/ initrd.img vmlinuz",
		"hello?[2J world", // sanitized
		"error: line 1: frob: unknown command.",
		"error: line 1: initrd: no kernel loaded (use linux or kernel first).",
		"error: open nonexistent: file does not exist.",
	}
	all := strings.Join(r.shots, "\n")
	for _, w := range wantLines {
		if !strings.Contains(all, w) {
			t.Errorf("command line output lacks %q; last screen:\n%s", w, s)
		}
	}
	_ = s
}

func TestCommandLineEscReturns(t *testing.T) {
	r := runUI(t, legacyMenu(), Options{}, func(s *termtest.Script) {
		s.Type("c").Type("ker").Wait(time.Second).Type("\x1b").Wait(time.Second).Type("\r")
	})
	if r.c == nil || r.c.Index != 1 {
		t.Fatalf("%+v %v", r.c, r.err)
	}
	if !strings.Contains(r.last(t, "grub> ker"), "grub> ker") {
		t.Error("typed text not shown")
	}
}

func TestNoEntriesStartsCommandLine(t *testing.T) {
	m := &grub.Menu{Format: grub.FormatGrubCfg, Default: -1, Timeout: -1, Source: grub.File{Device: p1, Path: "/grub.cfg"}}
	r := runUI(t, m, Options{}, func(s *termtest.Script) {
		s.Type("\x1b").Wait(time.Second) // Esc does not leave: nothing to go back to
		s.Type("exit\r")
		s.Type("kernel /vmlinuz\rboot\r")
	})
	if r.c == nil || r.c.Entry.Kernel.String() != "(hd0,1)/vmlinuz" {
		t.Fatalf("%+v %v", r.c, r.err)
	}
	if !strings.Contains(r.shots[0], "No menu entries") {
		t.Errorf("first screen:\n%s", r.shots[0])
	}
}

func lockedMenu() *grub.Menu {
	m := legacyMenu()
	pw, _ := grub.NewPassword("", grub.PassMD5, "$1$CeNt6sLt$J/Qebdnx0JUNrcZQntijG/")
	m.Auth = &grub.Auth{Users: []grub.Password{pw}, Superusers: []string{""}}
	m.Entries[2].Locked = true
	return m
}

func TestPasswords(t *testing.T) {
	t.Run("edit needs the password", func(t *testing.T) {
		r := runUI(t, lockedMenu(), Options{}, func(s *termtest.Script) {
			s.Type("e").Type("wrong\r")
			s.Type("e").Type("gopvgrub\r")
			s.Type("\x1b")                // leave the editor
			s.Wait(time.Second).Type("c") // no second prompt: unlocked
			s.Type("kernel /vmlinuz\rboot\r")
		})
		if r.c == nil || r.c.Index != -1 {
			t.Fatalf("%+v %v", r.c, r.err)
		}
		prompt := r.last(t, "Enter password:")
		if strings.Contains(prompt, "Enter username") {
			t.Error("menu.lst asks for a user name")
		}
		if !strings.Contains(r.last(t, "Incorrect password."), "Incorrect password.") {
			t.Error("no refusal shown")
		}
		if !strings.Contains(r.last(t, "Enter password: ********"), "********") {
			t.Error("password echo not masked")
		}
	})
	t.Run("locked entry", func(t *testing.T) {
		r := runUI(t, lockedMenu(), Options{}, func(s *termtest.Script) {
			s.Type("\x1b[B\r").Type("nope\r") // refused: back to the menu
			s.Type("\r").Type("gopvgrub\r")
		})
		if r.c == nil || r.c.Index != 2 {
			t.Fatalf("%+v %v", r.c, r.err)
		}
		if !strings.Contains(r.scr.String(), "savedefault: not saved") {
			t.Errorf("boot screen:\n%s", r.scr.String())
		}
	})
	t.Run("GRUB 2 users", func(t *testing.T) {
		m := subMenu()
		root, _ := grub.NewPassword("root", grub.PassPlain, "toor")
		m.Auth = &grub.Auth{Users: []grub.Password{root}, Superusers: []string{"root"}}
		m.Entries[0].Locked = true
		r := runUI(t, m, Options{}, func(s *termtest.Script) {
			s.Type("\x1b[A\r").Type("root\r").Type("toor\r")
		})
		if r.c == nil || r.c.Index != 0 {
			t.Fatalf("%+v %v", r.c, r.err)
		}
		r.last(t, "Enter username: root")
	})
	t.Run("timeout boots a locked default only with the password", func(t *testing.T) {
		m := lockedMenu()
		m.Default = 2
		r := runUI(t, m, Options{}, func(s *termtest.Script) { s.Wait(time.Minute).Type("\x1b").Wait(time.Second).Type("\x1b[A\r") })
		if r.c == nil || r.c.Index != 1 {
			t.Fatalf("%+v %v", r.c, r.err)
		}
	})
}

func TestHidden(t *testing.T) {
	m := legacyMenu()
	m.Hidden, m.Timeout = true, 3*time.Second
	r := runUI(t, m, Options{}, func(s *termtest.Script) { s.Wait(time.Minute) })
	if r.c == nil || r.c.Index != 1 || r.elapsed() != 3*time.Second {
		t.Fatalf("%+v after %v", r.c, r.elapsed())
	}
	if r.shots[0] != "Press Esc for the menu. Booting 'Debian GNU/Linux, kernel 6.1.0-25' in 3s." {
		t.Errorf("hidden screen %q", r.shots[0])
	}
	r = runUI(t, m, Options{}, func(s *termtest.Script) { s.Wait(1500 * time.Millisecond).Type("\x1b").Wait(time.Second).Type("\r") })
	if r.c == nil || r.c.Index != 1 {
		t.Fatalf("%+v %v", r.c, r.err)
	}
	if !strings.Contains(r.shots[len(r.shots)-1], "|*Debian") || strings.Contains(r.shots[len(r.shots)-1], "automatically") {
		t.Errorf("menu after Esc:\n%s", r.shots[len(r.shots)-1])
	}
	// timeout 0: boots at once unless a key is waiting.
	m.Timeout = 0
	r = runUI(t, m, Options{}, func(s *termtest.Script) {})
	if r.c == nil || r.c.Index != 1 || r.elapsed() != 0 {
		t.Fatalf("%+v after %v", r.c, r.elapsed())
	}
	m.Hidden = false
	r = runUI(t, m, Options{}, func(s *termtest.Script) { s.Type("x").Wait(time.Second).Type("\x1b[A\r") })
	if r.c == nil || r.c.Index != 0 {
		t.Fatalf("key pending: %+v %v", r.c, r.err)
	}
}

func TestHostileTitles(t *testing.T) {
	m := legacyMenu()
	m.Entries[0].Title = "evil\x1b[2J\x1b]0;title\x07" + strings.Repeat("x", 200)
	m.Notes = []string{"save_env: not saved", "second note"}
	r := runUI(t, m, Options{}, func(s *termtest.Script) { s.Type("\x1b[A\r") })
	if r.c == nil || r.c.Index != 0 {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.shots[0], "| evil?[2J?]0;title?xxxx") {
		t.Errorf("title not sanitized/fitted:\n%s", r.shots[0])
	}
	if !strings.Contains(r.shots[0], "Note (1 of 2, `c' then `notes' lists all): save_env: not saved") {
		t.Errorf("note line:\n%s", r.shots[0])
	}
}

func TestDumb(t *testing.T) {
	r := runUI(t, legacyMenu(), Options{Dumb: true}, func(s *termtest.Script) { s.Wait(time.Minute) })
	if r.c == nil || r.c.Index != 1 {
		t.Fatalf("%+v %v", r.c, r.err)
	}
	want := `gopvgrub  (GRUB-compatible boot menu for Xen PV)
   0  Debian GNU/Linux, kernel 6.1.0-28
*  1  Debian GNU/Linux, kernel 6.1.0-25
   2  Single user
Press any key to stop. Booting 'Debian GNU/Linux, kernel 6.1.0-25' in 5 4 3 2 1
Booting 'Debian GNU/Linux, kernel 6.1.0-25'`
	if got := r.scr.String(); got != want {
		t.Errorf("dumb screen:\n%s\nwant:\n%s", got, want)
	}
	r = runUI(t, legacyMenu(), Options{Dumb: true}, func(s *termtest.Script) {
		s.Wait(1500 * time.Millisecond).Type(" ")
		s.Type("7\r")        // no such entry
		s.Type("xy\x7f\x7f") // typed and erased
		s.Type("e 0\r")
		s.Type("\r")                           // keep root
		s.Type("\x15kernel /vmlinuz single\r") // Ctrl-U, retype
		s.Type("\r")                           // keep initrd
	})
	if r.c == nil || r.c.Entry.Cmdline != "single" || !r.c.Edited || len(r.c.Entry.Initrds) != 1 {
		t.Fatalf("%+v %v", r.c, r.err)
	}
	out := r.scr.String()
	for _, w := range []string{"No entry 7.", "> root (hd0,0)", "> kernel /vmlinuz single", "in 5 4\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("dumb output lacks %q:\n%s", w, out)
		}
	}
	r = runUI(t, legacyMenu(), Options{Dumb: true}, func(s *termtest.Script) {
		s.Type(" c\rls\rkernel /vmlinuz\rboot\r")
	})
	if r.c == nil || r.c.Index != -1 || !strings.Contains(r.scr.String(), "grub> ls\n(hd0,1)") {
		t.Fatalf("%+v %v\n%s", r.c, r.err, r.scr.String())
	}
	r = runUI(t, lockedMenu(), Options{Dumb: true}, func(s *termtest.Script) {
		s.Type(" 2\rbad\r2\rgopvgrub\r")
	})
	if r.c == nil || r.c.Index != 2 || !strings.Contains(r.scr.String(), "Incorrect password.") {
		t.Fatalf("%+v %v\n%s", r.c, r.err, r.scr.String())
	}
}
