// Package ui is the console boot menu: GRUB's look and keys on the PV
// console, over any terminal that delivers key events and takes output.
//
// The full-screen menu lists entries (submenus open with Enter, Esc goes
// back), counts the timeout down until any key is pressed, boots the
// default or the chosen entry, edits an entry's commands with 'e' in an
// Emacs-style editor (Enter or Ctrl-X boots the edited entry, Esc
// discards) and offers a small command line with 'c' (root,
// kernel/linux, initrd, boot, ls, cat, help). Hidden menus show only a
// countdown; passwords guard locked entries, 'e' and 'c' as the config
// says. A dumb mode (no cursor addressing) prints a numbered list and reads
// a number. Screens are deterministic text: tests drive the menu through
// console/term/termtest without sleeping.
package ui

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/console/term"
	"github.com/gopvgrub/gopvgrub/grub"
)

// Terminal is what the menu needs from a console.
type Terminal interface {
	// ReadKey waits up to d for a key (d < 0: forever); ok is false when
	// d elapsed first.
	ReadKey(d time.Duration) (k term.Key, ok bool, err error)
	io.Writer
}

// NewTerminal joins a key reader and an output writer.
func NewTerminal(r *term.Reader, w io.Writer) Terminal { return &terminal{r, w} }

type terminal struct {
	r *term.Reader
	io.Writer
}

func (t *terminal) ReadKey(d time.Duration) (term.Key, bool, error) { return t.r.ReadKey(d) }

// Options configure the menu.
type Options struct {
	Clock         term.Clock   // nil: the system clock
	Dumb          bool         // no cursor addressing: numbered list
	Width, Height int          // screen size; 0: 80×25
	Sys           *grub.System // for the command line's ls, cat and file checks
	Title         string       // the header; "" for the default
}

// Choice is what the user (or the timeout) chose.
type Choice struct {
	Entry grub.Entry
	// Index is the entry's index in the menu, or -1 for an edited entry or
	// one typed on the command line.
	Index int
	// Fallback lists the menu entries to try if this one fails to boot.
	Fallback []int
	Edited   bool
}

// ErrNoChoice is returned when the user leaves a menu that has nothing
// to boot.
var ErrNoChoice = errors.New("ui: nothing to boot")

type ui struct {
	m      *grub.Menu
	t      Terminal
	o      Options
	clock  term.Clock
	r      *term.Renderer
	w, h   int
	legacy bool
	// unlocked is set once a superuser (or menu.lst's password) logged in.
	unlocked bool
	user, pw string
}

// Run shows the menu and returns the entry to boot.
func Run(m *grub.Menu, t Terminal, o Options) (*Choice, error) {
	u := &ui{m: m, t: t, o: o, clock: o.Clock, w: o.Width, h: o.Height, r: term.NewRenderer(t)}
	if u.clock == nil {
		u.clock = term.SystemClock{}
	}
	if u.w <= 0 {
		u.w = 80
	}
	if u.h <= 0 {
		u.h = 25
	}
	u.w, u.h = max(u.w, 40), max(u.h, 16)
	if u.o.Title == "" {
		u.o.Title = "gopvgrub  (GRUB-compatible boot menu for Xen PV)"
	}
	u.legacy = m.Format == grub.FormatMenuLst || len(m.Entries) == 0
	if o.Dumb {
		return u.runDumb()
	}
	defer func() { u.r.ShowCursor(true); u.r.Flush() }()
	return u.run()
}

func (u *ui) run() (*Choice, error) {
	if len(u.m.Entries) == 0 {
		for {
			c, err := u.cmdline("No menu entries: the config gave none.")
			if err != nil || c != nil {
				return c, err
			}
		}
	}
	timeout := u.m.Timeout
	if u.m.Hidden && timeout >= 0 {
		shown, err := u.hiddenCountdown(timeout)
		if err != nil {
			return nil, err
		}
		if !shown {
			if c, err := u.boot(u.m.Default, false); c != nil || err != nil {
				return c, err
			}
		}
		timeout = -1
	} else if timeout == 0 {
		// Boot at once, unless a key is already waiting.
		if _, ok, err := u.t.ReadKey(0); err != nil {
			return nil, err
		} else if !ok {
			if c, err := u.boot(u.m.Default, false); c != nil || err != nil {
				return c, err
			}
		}
		timeout = -1
	}
	return u.menu(timeout)
}

// hiddenCountdown shows "press Esc" and the seconds left; it reports
// whether the user asked for the menu.
func (u *ui) hiddenCountdown(timeout time.Duration) (bool, error) {
	deadline := u.clock.Now().Add(timeout)
	title := u.m.Entries[u.m.Default].Title
	for {
		left := deadline.Sub(u.clock.Now())
		if left <= 0 {
			return false, nil
		}
		u.r.Clear()
		u.r.ShowCursor(false)
		u.r.MoveTo(0, 0)
		u.r.Print(term.Fit(fmt.Sprintf("Press Esc for the menu. Booting '%s' in %ds.", title, seconds(left)), u.w-1))
		if err := u.r.Flush(); err != nil {
			return false, err
		}
		k, ok, err := u.t.ReadKey(untilNextSecond(left))
		if err != nil {
			return false, err
		}
		if ok {
			if k.Is(term.Enter) {
				return false, nil
			}
			return true, nil
		}
	}
}

// seconds rounds up, as a countdown shows it.
func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// untilNextSecond is how long until the countdown's number changes.
func untilNextSecond(left time.Duration) time.Duration {
	w := left % time.Second
	if w == 0 {
		w = time.Second
	}
	return w
}

// level is one menu level being shown.
type level struct {
	path  []string
	items []grub.Item
	sel   int
}

func (u *ui) menu(timeout time.Duration) (*Choice, error) {
	var stack []level
	cur := level{items: u.m.Items(nil)}
	// Highlight the top-level item holding the default entry.
	if d := u.m.DefaultEntry(); d != nil {
		for i, it := range cur.items {
			if it.Entry == u.m.Default || (it.Entry < 0 && len(d.Submenu) > 0 && d.Submenu[0] == it.Title) {
				cur.sel = i
				break
			}
		}
	}
	counting := timeout >= 0
	deadline := u.clock.Now().Add(timeout)
	msg := ""
	for {
		left := deadline.Sub(u.clock.Now())
		if counting && left <= 0 {
			if c, err := u.boot(u.m.Default, false); c != nil || err != nil {
				return c, err
			}
			counting = false
			continue
		}
		u.drawMenu(cur, counting, left, msg)
		if err := u.r.Flush(); err != nil {
			return nil, err
		}
		wait := time.Duration(-1)
		if counting {
			wait = untilNextSecond(left)
		}
		k, ok, err := u.t.ReadKey(wait)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		counting, msg = false, ""
		n := len(cur.items)
		switch {
		case k.Is(term.Up) || k.Is(term.Ctrl('p')):
			cur.sel = max(cur.sel-1, 0)
		case k.Is(term.Down) || k.Is(term.Ctrl('n')):
			cur.sel = min(cur.sel+1, n-1)
		case k.Is(term.PgUp):
			cur.sel = max(cur.sel-u.listRows(), 0)
		case k.Is(term.PgDn):
			cur.sel = min(cur.sel+u.listRows(), n-1)
		case k.Is(term.Home):
			cur.sel = 0
		case k.Is(term.End):
			cur.sel = n - 1
		case k.Is(term.Enter) || k.Is(term.Ctrl('x')) || k.Is(term.Right):
			it := cur.items[cur.sel]
			if it.Entry < 0 {
				stack = append(stack, cur)
				path := append(append([]string(nil), cur.path...), it.Title)
				cur = level{path: path, items: u.m.Items(path)}
				continue
			}
			c, err := u.boot(it.Entry, false)
			if c != nil || err != nil {
				return c, err
			}
		case k.Is(term.Esc) || k.Is(term.Left):
			if len(stack) > 0 {
				cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
			}
		case k.Is(term.Rune('e')):
			it := cur.items[cur.sel]
			if it.Entry < 0 {
				continue
			}
			if !u.unlockEdit() {
				msg = "Incorrect password."
				continue
			}
			c, err := u.edit(it.Entry)
			if c != nil || err != nil {
				return c, err
			}
		case k.Is(term.Rune('c')):
			if !u.unlockEdit() {
				msg = "Incorrect password."
				continue
			}
			c, err := u.cmdline("")
			if c != nil || err != nil {
				return c, err
			}
		}
	}
}

// listRows is how many entries the menu box shows.
func (u *ui) listRows() int { return u.h - 12 }

func (u *ui) box(top, rows int) {
	line := "+" + strings.Repeat("-", u.w-4) + "+"
	u.r.MoveTo(top, 1)
	u.r.Print(line)
	for i := 1; i <= rows; i++ {
		u.r.MoveTo(top+i, 1)
		u.r.Print("|")
		u.r.MoveTo(top+i, u.w-2)
		u.r.Print("|")
	}
	u.r.MoveTo(top+rows+1, 1)
	u.r.Print(line)
}

func (u *ui) header() {
	u.r.Clear()
	u.r.ShowCursor(false)
	t := term.Sanitize(u.o.Title)
	u.r.MoveTo(0, max((u.w-term.Width(t))/2, 0))
	u.r.Print(term.Fit(t, u.w-1))
}

func (u *ui) drawMenu(cur level, counting bool, left time.Duration, msg string) {
	u.header()
	rows := u.listRows()
	u.box(2, rows)
	first := 0
	if cur.sel >= rows {
		first = cur.sel - rows + 1
	}
	inner := u.w - 4
	for i := 0; i < rows && first+i < len(cur.items); i++ {
		it := cur.items[first+i]
		text := " " + it.Title
		if it.Entry < 0 {
			text += " >"
		}
		u.r.MoveTo(3+i, 2)
		if first+i == cur.sel {
			u.r.Reverse(true)
			u.r.Print(term.Fit("*"+text[1:], inner))
			u.r.Reverse(false)
		} else {
			u.r.Print(term.Fit(text, inner))
		}
	}
	if first > 0 {
		u.r.MoveTo(3, u.w-2)
		u.r.Print("^")
	}
	if first+rows < len(cur.items) {
		u.r.MoveTo(2+rows, u.w-2)
		u.r.Print("v")
	}
	y := 2 + rows + 2
	help := []string{
		"     Use the Up and Down keys to select which entry is highlighted.",
		"     Press enter to boot the selected OS, `e' to edit the commands",
		"     before booting or `c' for a command-line.",
	}
	if len(cur.path) > 0 {
		help = append(help, "     Press ESC to return to the previous menu.")
	}
	for i, h := range help {
		u.r.MoveTo(y+i, 0)
		u.r.Print(term.Fit(h, u.w-1))
	}
	if counting {
		u.r.MoveTo(y+4, 0)
		u.r.Print(fmt.Sprintf("   The highlighted entry will be executed automatically in %ds.", seconds(left)))
	}
	if msg != "" {
		u.r.MoveTo(y+5, 0)
		u.r.Print(term.Fit("   "+msg, u.w-1))
	}
	if len(u.m.Notes) > 0 {
		u.r.MoveTo(u.h-1, 0)
		note := fmt.Sprintf("Note: %s", u.m.Notes[0])
		if len(u.m.Notes) > 1 {
			note = fmt.Sprintf("Note (1 of %d, `c' then `notes' lists all): %s", len(u.m.Notes), u.m.Notes[0])
		}
		u.r.Print(term.Fit(note, u.w-1))
	}
}

// boot checks the entry's password and announces it. A nil Choice with a
// nil error means the password was refused: back to the menu.
func (u *ui) boot(i int, edited bool) (*Choice, error) {
	if i < 0 || i >= len(u.m.Entries) {
		return nil, nil
	}
	e := u.m.Entries[i]
	if u.m.BootLocked(&e) && !(u.unlocked && u.m.CanBoot(&e, u.user, u.pw)) {
		user, pw, ok, err := u.askPassword()
		if err != nil {
			return nil, err
		}
		if !ok || !u.m.CanBoot(&e, user, pw) {
			return nil, u.refused()
		}
	}
	c := &Choice{Entry: e, Index: i, Fallback: u.m.Fallback, Edited: edited}
	return c, u.announce(c)
}

func (u *ui) announce(c *Choice) error {
	if u.o.Dumb {
		fmt.Fprintf(u.t, "Booting '%s'\r\n", term.Sanitize(c.Entry.Path()))
	} else {
		u.r.Clear()
		u.r.ShowCursor(true)
		u.r.Print("  Booting `" + c.Entry.Path() + "'")
		u.r.Newline()
	}
	lines := []string{}
	if c.Entry.SaveDefault {
		lines = append(lines, "savedefault: not saved (gopvgrub never writes to the guest's disk)")
	}
	for _, n := range c.Entry.Notes {
		lines = append(lines, "note: "+n)
	}
	for _, l := range lines {
		if u.o.Dumb {
			fmt.Fprintf(u.t, "  %s\r\n", term.Sanitize(l))
		} else {
			u.r.Newline()
			u.r.Print("  " + l)
		}
	}
	if !u.o.Dumb {
		u.r.Newline()
	}
	return u.r.Flush()
}

// unlockEdit asks for a superuser login when editing is locked.
func (u *ui) unlockEdit() bool {
	if !u.m.EditLocked() || u.unlocked {
		return true
	}
	user, pw, ok, err := u.askPassword()
	if err != nil || !ok || !u.m.CanEdit(user, pw) {
		return false
	}
	u.unlocked, u.user, u.pw = true, user, pw
	return true
}

func (u *ui) refused() error {
	if u.o.Dumb {
		_, err := io.WriteString(u.t, "Incorrect password.\r\n")
		return err
	}
	return nil
}

// askPassword reads a user name (GRUB 2 menus) and a password; ok is
// false when the user pressed Esc.
func (u *ui) askPassword() (user, pw string, ok bool, err error) {
	ask := func(prompt string, secret bool) (string, bool, error) {
		l := newLine("")
		for {
			shown := l.String()
			if secret {
				shown = strings.Repeat("*", len(l.buf))
			}
			if u.o.Dumb {
				// No cursor addressing: redraw the line with CR.
				fmt.Fprintf(u.t, "\r%s%s", prompt, term.Sanitize(shown))
			} else {
				u.r.Clear()
				u.r.ShowCursor(true)
				u.r.MoveTo(1, 0)
				u.r.Print(prompt + shown)
				if err := u.r.Flush(); err != nil {
					return "", false, err
				}
			}
			k, _, err := u.t.ReadKey(-1)
			if err != nil {
				return "", false, err
			}
			switch {
			case k.Is(term.Enter):
				if u.o.Dumb {
					io.WriteString(u.t, "\r\n")
				}
				return l.String(), true, nil
			case k.Is(term.Esc) || k.Is(term.Ctrl('c')):
				if u.o.Dumb {
					io.WriteString(u.t, "\r\n")
				}
				return "", false, nil
			case k.Is(term.Backspace) || k.IsText():
				if u.o.Dumb && k.Is(term.Backspace) && len(l.buf) > 0 {
					io.WriteString(u.t, "\b \b")
				}
				l.key(k)
			}
		}
	}
	if u.m.Auth != nil && u.m.Auth.NamedUsers() {
		if user, ok, err = ask("Enter username: ", false); err != nil || !ok {
			return "", "", false, err
		}
	}
	pw, ok, err = ask("Enter password: ", true)
	return user, pw, ok, err
}
