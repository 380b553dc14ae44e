package ui

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gopvgrub/gopvgrub/console/term"
	"github.com/gopvgrub/gopvgrub/grub"
)

// maxEditLines bounds the editor's buffer.
const maxEditLines = 64

// edit shows entry i's commands in the editor. Enter or Ctrl-X boots the
// edited commands, Esc returns to the menu (nil Choice).
func (u *ui) edit(i int) (*Choice, error) {
	e := u.m.Entries[i]
	var lines []*lineEdit
	for _, s := range e.Commands(u.legacy) {
		lines = append(lines, newLine(s))
	}
	row, msg := 0, ""
	rows := u.listRows()
	inner := u.w - 6
	for {
		u.header()
		u.box(2, rows)
		first := 0
		if row >= rows {
			first = row - rows + 1
		}
		curRow, curCol := 0, 0
		for j := 0; j < rows && first+j < len(lines); j++ {
			text, col := lines[first+j].view(inner)
			u.r.MoveTo(3+j, 3)
			u.r.Print(term.Fit(text, inner))
			if first+j == row {
				curRow, curCol = 3+j, 3+col
			}
		}
		y := 2 + rows + 2
		for j, h := range []string{
			"     Minimum Emacs-like screen editing is supported. Enter or Ctrl-x",
			"     boots the edited entry, Ctrl-o opens a new line, Esc discards",
			"     the edits and returns to the menu.",
		} {
			u.r.MoveTo(y+j, 0)
			u.r.Print(h)
		}
		if msg != "" {
			u.r.MoveTo(y+4, 0)
			u.r.Print(term.Fit("   error: "+msg, u.w-1))
		}
		u.r.MoveTo(curRow, curCol)
		u.r.ShowCursor(true)
		if err := u.r.Flush(); err != nil {
			return nil, err
		}
		k, _, err := u.t.ReadKey(-1)
		if err != nil {
			return nil, err
		}
		msg = ""
		l := lines[row]
		switch {
		case k.Is(term.Esc) || k.Is(term.Ctrl('c')):
			return nil, nil
		case k.Is(term.Enter) || k.Is(term.Ctrl('x')):
			var cmds []string
			for _, l := range lines {
				cmds = append(cmds, l.String())
			}
			ne, err := grub.ParseCommands(cmds, e.Root, u.legacy)
			if err != nil {
				msg = err.Error()
				continue
			}
			ne.Title, ne.ID, ne.Submenu, ne.SubmenuIDs = e.Title, e.ID, e.Submenu, e.SubmenuIDs
			ne.Password, ne.Locked, ne.Users = e.Password, e.Locked, e.Users
			c := &Choice{Entry: ne, Index: -1, Fallback: u.m.Fallback, Edited: true}
			return c, u.announce(c)
		case k.Is(term.Up) || k.Is(term.Ctrl('p')):
			if row > 0 {
				row--
				lines[row].pos = min(l.pos, len(lines[row].buf))
			}
		case k.Is(term.Down) || k.Is(term.Ctrl('n')):
			if row < len(lines)-1 {
				row++
				lines[row].pos = min(l.pos, len(lines[row].buf))
			}
		case k.Is(term.Ctrl('o')):
			if len(lines) < maxEditLines {
				lines = append(lines[:row+1], append([]*lineEdit{newLine("")}, lines[row+1:]...)...)
				row++
			}
		case k.Is(term.Ctrl('k')) && len(l.buf) == 0 && len(lines) > 1:
			lines = append(lines[:row], lines[row+1:]...)
			row = min(row, len(lines)-1)
		default:
			l.key(k)
		}
	}
}

// console is the command line's scrolling screen; in dumb mode lines go
// straight to the terminal.
type console struct {
	u     *ui
	lines []string
}

func (c *console) println(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if c.u.o.Dumb {
		for _, l := range strings.Split(s, "\n") {
			fmt.Fprintf(c.u.t, "%s\r\n", term.Sanitize(strings.TrimRight(l, "\r")))
		}
		return
	}
	for _, l := range strings.Split(s, "\n") {
		c.lines = append(c.lines, term.Sanitize(strings.TrimRight(l, "\r")))
	}
	if over := len(c.lines) - (c.u.h - 1); over > 0 {
		c.lines = c.lines[over:]
	}
}

const cmdHelp = `Minimal BASH-like line editing is supported. Commands:
  root (hdN,M)          set the root device (menu.lst numbering counts from 0)
  set root=(hdN,M)      the same in GRUB 2 numbering (counts from 1)
  kernel FILE ARGS      load a Linux kernel (also: linux, linux16)
  initrd FILE...        load initial ramdisks
  module FILE           an initrd, as in PV-GRUB
  boot                  boot what was loaded
  ls [DEVICE|PATH]      list devices, or files
  cat FILE              show a file
  notes                 show what the config parser noted
  help                  this text
  exit                  back to the menu (also Esc)`

// cmdline runs the command line until boot (a Choice) or exit (nil).
func (u *ui) cmdline(banner string) (*Choice, error) {
	con := &console{u: u}
	con.println("")
	con.println("    Minimal BASH-like line editing is supported. Type `help' for the")
	con.println("    commands; Esc at any time exits.")
	if banner != "" {
		con.println("    %s", banner)
	}
	con.println("")
	var loaded []string
	l := newLine("")
	var history []string
	hist := 0
	const prompt = "grub> "
	for {
		u.r.Clear()
		for i, s := range con.lines {
			u.r.MoveTo(i, 0)
			u.r.Print(term.Fit(s, u.w-1))
		}
		text, col := l.view(u.w - len(prompt) - 1)
		y := len(con.lines)
		u.r.MoveTo(y, 0)
		u.r.Print(prompt + text)
		u.r.MoveTo(y, len(prompt)+col)
		u.r.ShowCursor(true)
		if err := u.r.Flush(); err != nil {
			return nil, err
		}
		k, _, err := u.t.ReadKey(-1)
		if err != nil {
			return nil, err
		}
		switch {
		case k.Is(term.Esc):
			if len(u.m.Entries) > 0 {
				return nil, nil
			}
		case k.Is(term.Up) || k.Is(term.Ctrl('p')):
			if hist > 0 {
				hist--
				l = newLine(history[hist])
			}
		case k.Is(term.Down) || k.Is(term.Ctrl('n')):
			if hist < len(history)-1 {
				hist++
				l = newLine(history[hist])
			} else {
				hist, l = len(history), newLine("")
			}
		case k.Is(term.Enter):
			line := strings.TrimSpace(l.String())
			con.println("%s%s", prompt, l.String())
			l = newLine("")
			if line != "" && len(history) < 64 {
				history = append(history, line)
			}
			hist = len(history)
			c, done, err := u.command(con, line, &loaded)
			if err != nil || c != nil {
				return c, err
			}
			if done && len(u.m.Entries) > 0 {
				return nil, nil
			}
		default:
			l.key(k)
		}
	}
}

// command runs one command line; done reports "exit".
func (u *ui) command(con *console, line string, loaded *[]string) (c *Choice, done bool, err error) {
	cmd, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch cmd {
	case "":
	case "help":
		con.println("%s", cmdHelp)
	case "exit", "quit":
		return nil, true, nil
	case "notes":
		if len(u.m.Notes) == 0 {
			con.println("No notes.")
		}
		for _, n := range u.m.Notes {
			con.println("%s", n)
		}
	case "ls":
		u.ls(con, rest)
	case "cat":
		u.cat(con, rest)
	case "boot":
		e, err := grub.ParseCommands(*loaded, u.defaultRoot(), u.legacy)
		if err != nil {
			con.println("error: %v.", err)
			return nil, false, nil
		}
		e.Title = "command line"
		c := &Choice{Entry: e, Index: -1, Edited: true}
		return c, false, u.announce(c)
	default:
		if strings.HasPrefix(line, "set ") && !strings.HasPrefix(line, "set root=") {
			con.println("error: only `set root=' is supported here.")
			return nil, false, nil
		}
		try := append(append([]string(nil), *loaded...), line)
		check := try
		if isRootCmd(line) && !hasKernel(*loaded) {
			check = append(check, "kernel /x") // a root alone is complete
		}
		if _, err := grub.ParseCommands(check, u.defaultRoot(), u.legacy); err != nil {
			con.println("error: %v.", err)
			return nil, false, nil
		}
		if f, ok := u.loadedFile(line); ok && u.o.Sys != nil {
			if _, err := u.o.Sys.Stat(f); err != nil {
				con.println("error: %v.", err)
				return nil, false, nil
			}
		}
		*loaded = try
	}
	return nil, false, nil
}

func hasKernel(lines []string) bool {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 {
			switch f[0] {
			case "kernel", "linux", "linux16", "linuxefi", "multiboot", "multiboot2":
				return true
			}
		}
	}
	return false
}

func isRootCmd(line string) bool {
	return strings.HasPrefix(line, "root") || strings.HasPrefix(line, "set root=")
}

// loadedFile is the kernel file a linux/kernel command names, to check
// that it exists as GRUB does when the command runs.
func (u *ui) loadedFile(line string) (grub.File, bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return grub.File{}, false
	}
	switch f[0] {
	case "kernel", "linux", "linux16", "linuxefi", "multiboot":
	default:
		return grub.File{}, false
	}
	file, err := grub.ParseFile(f[1], u.defaultRoot(), u.legacy)
	return file, err == nil
}

// defaultRoot is the root a command line starts with: the default
// entry's, else the config's device.
func (u *ui) defaultRoot() grub.Device {
	if d := u.m.DefaultEntry(); d != nil {
		return d.Root
	}
	return u.m.Source.Device
}

// resolve parses a file name for ls and cat.
func (u *ui) resolve(con *console, name string) (grub.File, bool) {
	f, err := grub.ParseFile(name, u.defaultRoot(), u.legacy)
	if err != nil {
		con.println("error: %v.", err)
		return f, false
	}
	return f, true
}

func (u *ui) ls(con *console, arg string) {
	sys := u.o.Sys
	if sys == nil {
		con.println("error: no devices.")
		return
	}
	if arg == "" {
		var names []string
		for _, v := range sys.Volumes {
			names = append(names, "("+v.Device.String()+")")
		}
		if sys.Net != nil {
			names = append(names, "(nd)")
		}
		con.println("%s", strings.Join(names, " "))
		return
	}
	if strings.HasPrefix(arg, "(") && strings.HasSuffix(arg, ")") {
		d, err := grub.ParseDevice(arg, u.legacy)
		if err != nil {
			con.println("error: %v.", err)
			return
		}
		v, err := sys.Volume(d)
		if err != nil {
			con.println("error: %v.", err)
			return
		}
		con.println("Partition %s: Filesystem type %s, UUID %s, Label %q", v.Device, orUnknown(v.Type), orUnknown(v.UUID), v.Label)
		return
	}
	f, ok := u.resolve(con, arg)
	if !ok {
		return
	}
	list, err := sys.ReadDir(f)
	if err != nil {
		con.println("error: %v.", err)
		return
	}
	const maxList = 512
	var names []string
	for i, de := range list {
		if i == maxList {
			names = append(names, "…")
			break
		}
		n := de.Name()
		if de.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var line string
	for _, n := range names {
		if utf8.RuneCountInString(line)+len(n)+1 > u.w-2 && line != "" {
			con.println("%s", line)
			line = ""
		}
		line += n + " "
	}
	con.println("%s", strings.TrimRight(line, " "))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// maxCat bounds what cat shows.
const maxCat = 16 << 10

func (u *ui) cat(con *console, arg string) {
	if u.o.Sys == nil {
		con.println("error: no devices.")
		return
	}
	f, ok := u.resolve(con, arg)
	if !ok {
		return
	}
	fh, err := u.o.Sys.Open(f)
	if err != nil {
		con.println("error: %v.", err)
		return
	}
	defer fh.Close()
	buf := make([]byte, maxCat)
	n, _ := readFull(fh, buf)
	con.println("%s", strings.TrimRight(string(buf[:n]), "\n"))
	if n == maxCat {
		con.println("(truncated at %d bytes)", maxCat)
	}
}

func readFull(f fs.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil || m == 0 {
			return n, err
		}
	}
	return n, nil
}
