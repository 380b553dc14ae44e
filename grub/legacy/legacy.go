// Package legacy reads GRUB legacy (0.97) configuration files, menu.lst and
// grub.conf: the format PV-GRUB booted, still found on older cloud images
// (Amazon Linux 1, CentOS 5/6, Debian and Ubuntu of the PV-GRUB era).
//
// Commands run as GRUB legacy runs them: the global section (before the
// first title) sets default, fallback, timeout, hiddenmenu, password and
// the starting root; each title's commands are evaluated into one entry,
// with (hdN,M) device names counted from 0 as GRUB legacy does. A
// "configfile" in an entry becomes a submenu holding that file's entries.
package legacy

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/grub"
)

// MaxDepth bounds configfile nesting (and so configfile loops); MaxFiles
// bounds the files one Load reads, so titles that each load a config
// cannot fan out exponentially.
const (
	MaxDepth = 8
	MaxFiles = 32
)

// ErrNoEntries is returned for a file that defines no menu entry.
var ErrNoEntries = errors.New("menu.lst: no title entries")

// Load reads and parses the menu.lst at cfg.
func Load(sys *grub.System, cfg grub.File) (*grub.Menu, error) {
	return load(sys, cfg, 0, new(int))
}

func load(sys *grub.System, cfg grub.File, depth int, files *int) (*grub.Menu, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("menu.lst: %s: configfile nested more than %d deep", cfg, MaxDepth)
	}
	if *files >= MaxFiles {
		return nil, fmt.Errorf("menu.lst: %s: more than %d config files read", cfg, MaxFiles)
	}
	*files++
	data, err := sys.ReadFile(cfg, grub.MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("menu.lst: %w", err)
	}
	return parse(sys, cfg, data, depth, files)
}

// Parse parses menu.lst text read from cfg; sys resolves configfile and
// the "default" file of "default saved" (it may be nil).
func Parse(sys *grub.System, cfg grub.File, data []byte) (*grub.Menu, error) {
	return parse(sys, cfg, data, 0, new(int))
}

type parser struct {
	sys   *grub.System
	cfg   grub.File
	depth int
	files *int // config files read so far, shared by nested loads
	m     *grub.Menu
	root  grub.Device // the global section's root, where entries start
	// settings of the global section
	defaultSpec string
	fallback    []int
	e           *grub.Entry // the entry being built
	submenu     []subMenu   // a configfile run by the entry being built
	lineNo      int
}

func parse(sys *grub.System, cfg grub.File, data []byte, depth int, files *int) (*grub.Menu, error) {
	if len(data) > grub.MaxConfigSize {
		return nil, fmt.Errorf("menu.lst: %s: %w", cfg, grub.ErrTooLarge)
	}
	p := &parser{
		sys: sys, cfg: cfg, depth: depth, files: files, root: cfg.Device,
		m: &grub.Menu{Format: grub.FormatMenuLst, Source: cfg, Default: -1, Timeout: -1},
	}
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		p.lineNo = i + 1
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		cmd, args := splitCommand(line)
		if cmd == "title" {
			if err := p.finishEntry(); err != nil {
				return nil, err
			}
			p.e = &grub.Entry{Title: args, Kind: grub.KindNone, Root: p.root}
			continue
		}
		var err error
		if p.e == nil {
			err = p.global(cmd, args)
		} else {
			err = p.entry(cmd, args)
		}
		if errors.Is(err, errReplaced) {
			return p.m, nil
		}
		if err != nil {
			p.m.Note("%s line %d: %s: %v", cfg.Path, p.lineNo, cmd, err)
		}
	}
	if err := p.finishEntry(); err != nil {
		return nil, err
	}
	if len(p.m.Entries) == 0 {
		return p.m, ErrNoEntries
	}
	p.resolveDefaults()
	return p.m, nil
}

// errReplaced ends parsing when a global configfile replaced the menu.
var errReplaced = errors.New("menu replaced by configfile")

// splitCommand splits "cmd args" where GRUB legacy also accepts "cmd=args".
func splitCommand(line string) (cmd, args string) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	cmd = line[:i]
	args = strings.TrimLeft(line[i:], " \t=")
	return cmd, strings.TrimSpace(args)
}

func (p *parser) global(cmd, args string) error {
	m := p.m
	switch cmd {
	case "default":
		p.defaultSpec = firstWord(args)
	case "fallback":
		p.fallback = p.fallback[:0]
		for _, f := range strings.Fields(args) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 || n >= grub.MaxEntries {
				return fmt.Errorf("bad entry number %q", f)
			}
			p.fallback = append(p.fallback, n)
		}
	case "timeout":
		n, err := strconv.Atoi(firstWord(args))
		if err != nil || n < 0 {
			return fmt.Errorf("bad timeout %q", args)
		}
		m.Timeout = time.Duration(min(n, 1<<20)) * time.Second
	case "hiddenmenu":
		m.Hidden = true
	case "password":
		pw, file, err := parsePassword(args)
		if err != nil {
			return err
		}
		if m.Auth == nil {
			m.Auth = &grub.Auth{Superusers: []string{""}}
		}
		m.Auth.Users = append(m.Auth.Users, pw)
		if file != "" {
			m.Note("password with a config file (%s) is not supported: the password only unlocks the menu", file)
		}
	case "root", "rootnoverify":
		d, err := grub.ParseDevice(firstWord(args), true)
		if err != nil {
			return err
		}
		p.root = d
	case "configfile":
		f, err := grub.ParseFile(firstWord(args), p.root, true)
		if err != nil {
			return err
		}
		sub, err := load(p.sys, f, p.depth+1, p.files)
		if err != nil {
			return err
		}
		*p.m = *sub
		return errReplaced
	case "color", "serial", "terminal", "splashimage", "foreground", "background",
		"gfxmenu", "setkey", "map", "debug", "verbose", "lock", "savedefault",
		"bootp", "dhcp", "rarp", "ifconfig", "tftpserver", "setup", "install",
		"uppermem", "viewport", "shade", "clear", "pager", "vbeprobe":
		// Accepted and ignored: display, firmware and network setup.
	default:
		return errors.New("unknown command, ignored")
	}
	return nil
}

func (p *parser) entry(cmd, args string) error {
	e := p.e
	file := func(s string) (grub.File, error) { return grub.ParseFile(s, e.Root, true) }
	switch cmd {
	case "root", "rootnoverify":
		d, err := grub.ParseDevice(firstWord(args), true)
		if err != nil {
			return err
		}
		e.Root = d
	case "kernel":
		name, rest := cutWord(args)
		multiboot := false
		for strings.HasPrefix(name, "--") {
			if name == "--type=multiboot" {
				multiboot = true
			}
			name, rest = cutWord(rest)
		}
		f, err := file(name)
		if err != nil {
			return err
		}
		e.Kernel, e.Cmdline, e.Initrds, e.Modules = &f, rest, nil, nil
		e.Kind = grub.KindLinux
		if multiboot || isXen(f.Path) {
			e.Kind = grub.KindMultiboot
		}
	case "initrd":
		name, _ := cutWord(args)
		f, err := file(name)
		if err != nil {
			return err
		}
		e.Initrds = append(e.Initrds, f)
	case "module", "modulenounzip":
		name, rest := cutWord(args)
		f, err := file(name)
		if err != nil {
			return err
		}
		if e.Kind == grub.KindMultiboot {
			e.Modules = append(e.Modules, grub.Module{File: f, Args: rest})
		} else {
			// PV-GRUB passes a module to the kernel as its initrd.
			e.Initrds = append(e.Initrds, f)
		}
	case "lock":
		e.Locked = true
	case "password":
		pw, _, err := parsePassword(args)
		if err != nil {
			return err
		}
		e.Password = &pw
	case "savedefault":
		e.SaveDefault = true
		p.m.Note("savedefault: gopvgrub never writes to the guest's disk, the default is not saved")
	case "chainloader":
		e.Kind = grub.KindChain
		e.Notes = append(e.Notes, "chainloader cannot work in a Xen PV domain (no firmware)")
	case "configfile":
		f, err := file(firstWord(args))
		if err != nil {
			return err
		}
		sub, err := load(p.sys, f, p.depth+1, p.files)
		if err != nil {
			e.Notes = append(e.Notes, fmt.Sprintf("configfile %s: %v", f, err))
			return nil
		}
		p.submenu = append(p.submenu, subMenu{title: e.Title, menu: sub})
	case "boot", "makeactive", "map", "hide", "unhide", "color", "quiet", "setkey",
		"uppermem", "pause", "echo", "terminal", "serial", "fstest", "impsprobe":
	default:
		return errors.New("unknown command, ignored")
	}
	return nil
}

type subMenu struct {
	title string
	menu  *grub.Menu
}

// isXen recognises a Xen hypervisor image by name (xen.gz, xen-4.1.gz,
// xen.gz-2.6.18-…), the multiboot kernel of dom0 entries.
func isXen(p string) bool {
	b := path.Base(p)
	return strings.HasPrefix(b, "xen") && (strings.HasSuffix(b, ".gz") || strings.HasPrefix(b, "xen.gz"))
}

func (p *parser) finishEntry() error {
	e := p.e
	p.e = nil
	if e == nil {
		return nil
	}
	if len(p.m.Entries) >= grub.MaxEntries {
		return fmt.Errorf("menu.lst: more than %d entries", grub.MaxEntries)
	}
	if len(p.submenu) > 0 {
		sm := p.submenu[0]
		p.submenu = nil
		for _, se := range sm.menu.Entries {
			se.Submenu = append([]string{sm.title}, se.Submenu...)
			se.SubmenuIDs = nil
			if len(p.m.Entries) >= grub.MaxEntries {
				break
			}
			p.m.Entries = append(p.m.Entries, se)
		}
		return nil
	}
	p.m.Entries = append(p.m.Entries, *e)
	return nil
}

// resolveDefaults turns default/fallback numbers into entry indexes. GRUB
// legacy numbers titles in file order; an entry that became a configfile
// submenu counts as one.
func (p *parser) resolveDefaults() {
	m := p.m
	tops := m.Items(nil)
	index := func(n int) int {
		if n < 0 || n >= len(tops) {
			return -1
		}
		if tops[n].Entry >= 0 {
			return tops[n].Entry
		}
		return m.Find(strconv.Itoa(n))
	}
	m.Default = 0
	switch spec := p.defaultSpec; {
	case spec == "saved":
		n := p.savedDefault()
		if i := index(n); i >= 0 {
			m.Default = i
		}
	case spec != "":
		n, err := strconv.Atoi(spec)
		if i := index(n); err == nil && i >= 0 {
			m.Default = i
		} else {
			m.Note("default %q names no entry; using the first", spec)
		}
	}
	for _, f := range p.fallback {
		if i := index(f); i >= 0 {
			m.Fallback = append(m.Fallback, i)
		}
	}
}

// savedDefault reads the "default" file next to the config, which holds
// "N" or, after savedefault --once, "prev:N" (Debian/Xen's savedefault
// patch); missing or unreadable means entry 0.
func (p *parser) savedDefault() int {
	if p.sys == nil {
		return 0
	}
	f := grub.File{Device: p.cfg.Device, Path: path.Join(path.Dir(p.cfg.Path), "default")}
	data, err := p.sys.ReadFile(f, 4096)
	if err != nil {
		p.m.Note("default saved: %s unreadable, using entry 0", f)
		return 0
	}
	// Only the first line counts (GRUB reads 10 bytes); the rest is a
	// comment that may itself contain colons.
	s, _, _ := strings.Cut(string(data), "\n")
	s = strings.TrimSpace(s)
	if _, after, ok := strings.Cut(s, ":"); ok {
		s = after
	}
	end := 0
	for end < len(s) && end < 6 && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(s[:end])
	if err != nil {
		return 0
	}
	p.m.Note("default saved: entry %d from %s (read-only: gopvgrub never saves a new default)", n, f)
	return n
}

// parsePassword parses "[--md5] PASSWORD [FILE]".
func parsePassword(args string) (grub.Password, string, error) {
	kind := grub.PassPlain
	w, rest := cutWord(args)
	if w == "--md5" {
		kind = grub.PassMD5
		w, rest = cutWord(rest)
	} else if strings.HasPrefix(w, "--") {
		return grub.Password{}, "", fmt.Errorf("unsupported password option %s", w)
	}
	if w == "" {
		return grub.Password{}, "", errors.New("password expected")
	}
	pw, err := grub.NewPassword("", kind, w)
	if err != nil {
		return grub.Password{}, "", err
	}
	return pw, firstWord(rest), nil
}

func firstWord(s string) string {
	w, _ := cutWord(s)
	return w
}

func cutWord(s string) (word, rest string) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}
