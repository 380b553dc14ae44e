package ui

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/console/term"
	"github.com/gopvgrub/gopvgrub/grub"
)

// The dumb mode writes only text, CR, LF and backspace: for terminals
// without cursor addressing (a serial log, `xl console` piped somewhere).

func (u *ui) printf(format string, args ...any) {
	fmt.Fprintf(u.t, format, args...)
}

func (u *ui) listDumb() {
	u.printf("%s\r\n", term.Sanitize(u.o.Title))
	for i := range u.m.Entries {
		mark := " "
		if i == u.m.Default {
			mark = "*"
		}
		u.printf("%s%3d  %s\r\n", mark, i, term.Sanitize(u.m.Entries[i].Path()))
	}
}

func (u *ui) runDumb() (*Choice, error) {
	if len(u.m.Entries) == 0 {
		u.printf("%s\r\nNo menu entries: the config gave none.\r\n", term.Sanitize(u.o.Title))
		for {
			c, err := u.cmdlineDumb()
			if err != nil || c != nil {
				return c, err
			}
		}
	}
	if u.m.Hidden && u.m.Timeout >= 0 {
		stopped, err := u.countdownDumb("Press any key for the menu. ", u.m.Timeout)
		if err != nil {
			return nil, err
		}
		if !stopped {
			if c, err := u.boot(u.m.Default, false); c != nil || err != nil {
				return c, err
			}
		}
		u.listDumb()
	} else {
		u.listDumb()
		if u.m.Timeout >= 0 {
			stopped, err := u.countdownDumb("Press any key to stop. ", u.m.Timeout)
			if err != nil {
				return nil, err
			}
			if !stopped {
				if c, err := u.boot(u.m.Default, false); c != nil || err != nil {
					return c, err
				}
			}
		}
	}
	for {
		line, ok, err := u.readLineDumb("Boot which entry (number, e NUMBER to edit, c for a command line)? ", "")
		if err != nil {
			return nil, err
		}
		if !ok {
			u.listDumb()
			continue
		}
		line = strings.TrimSpace(line)
		switch f := strings.Fields(line); {
		case line == "":
			if c, err := u.boot(u.m.Default, false); c != nil || err != nil {
				return c, err
			}
		case line == "c":
			if !u.unlockEdit() {
				u.printf("Incorrect password.\r\n")
				continue
			}
			if c, err := u.cmdlineDumb(); c != nil || err != nil {
				return c, err
			}
			u.listDumb()
		case len(f) == 2 && f[0] == "e":
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 0 || n >= len(u.m.Entries) {
				u.printf("No entry %s.\r\n", term.Sanitize(f[1]))
				continue
			}
			if !u.unlockEdit() {
				u.printf("Incorrect password.\r\n")
				continue
			}
			if c, err := u.editDumb(n); c != nil || err != nil {
				return c, err
			}
		default:
			n, err := strconv.Atoi(line)
			if err != nil || n < 0 || n >= len(u.m.Entries) {
				u.printf("No entry %s.\r\n", term.Sanitize(line))
				continue
			}
			if c, err := u.boot(n, false); c != nil || err != nil {
				return c, err
			}
		}
	}
}

// countdownDumb prints the seconds left on one line; it reports whether a
// key stopped it.
func (u *ui) countdownDumb(hint string, timeout time.Duration) (bool, error) {
	title := term.Sanitize(u.m.Entries[u.m.Default].Path())
	u.printf("%sBooting '%s' in", hint, title)
	deadline := u.clock.Now().Add(timeout)
	for {
		left := deadline.Sub(u.clock.Now())
		if left <= 0 {
			u.printf("\r\n")
			return false, nil
		}
		u.printf(" %d", seconds(left))
		_, ok, err := u.t.ReadKey(untilNextSecond(left))
		if err != nil {
			return false, err
		}
		if ok {
			u.printf("\r\n")
			return true, nil
		}
	}
}

// readLineDumb reads a line with echo and backspace; ok is false on Esc.
func (u *ui) readLineDumb(prompt, initial string) (string, bool, error) {
	l := newLine(initial)
	u.printf("%s%s", prompt, term.Sanitize(initial))
	for {
		k, _, err := u.t.ReadKey(-1)
		if err != nil {
			return "", false, err
		}
		switch {
		case k.Is(term.Enter):
			u.printf("\r\n")
			return l.String(), true, nil
		case k.Is(term.Esc) || k.Is(term.Ctrl('c')):
			u.printf("\r\n")
			return "", false, nil
		case k.Is(term.Backspace):
			if len(l.buf) > 0 {
				l.key(k)
				io.WriteString(u.t, "\b \b")
			}
		case k.Is(term.Ctrl('u')):
			io.WriteString(u.t, strings.Repeat("\b \b", len(l.buf)))
			l = newLine("")
		case k.IsText():
			if len(l.buf) < maxLine {
				l.key(k)
				u.printf("%s", term.Sanitize(string(k.Rune)))
			}
		}
	}
}

// editDumb goes through the entry's commands one by one; each is typed
// anew or kept with Enter. Esc cancels.
func (u *ui) editDumb(i int) (*Choice, error) {
	e := u.m.Entries[i]
	u.printf("Editing '%s': change each line and press Enter; Esc cancels.\r\n", term.Sanitize(e.Path()))
	var cmds []string
	for _, c := range e.Commands(u.legacy) {
		line, ok, err := u.readLineDumb("> ", c)
		if err != nil || !ok {
			return nil, err
		}
		cmds = append(cmds, line)
	}
	ne, err := grub.ParseCommands(cmds, e.Root, u.legacy)
	if err != nil {
		u.printf("error: %v.\r\n", err)
		return nil, nil
	}
	ne.Title, ne.ID, ne.Submenu, ne.SubmenuIDs = e.Title, e.ID, e.Submenu, e.SubmenuIDs
	c := &Choice{Entry: ne, Index: -1, Fallback: u.m.Fallback, Edited: true}
	return c, u.announce(c)
}

func (u *ui) cmdlineDumb() (*Choice, error) {
	con := &console{u: u}
	con.println("Minimal command line. Type `help' for the commands; Esc or `exit' leaves.")
	var loaded []string
	for {
		line, ok, err := u.readLineDumb("grub> ", "")
		if err != nil {
			return nil, err
		}
		if !ok && len(u.m.Entries) > 0 {
			return nil, nil
		}
		c, done, err := u.command(con, strings.TrimSpace(line), &loaded)
		if err != nil || c != nil {
			return c, err
		}
		if done && len(u.m.Entries) > 0 {
			return nil, nil
		}
	}
}
