// Package extlinux reads SYSLINUX/EXTLINUX configuration files
// (extlinux.conf, syslinux.cfg), as Alpine's update-extlinux and many
// small distributions write them.
//
// Keywords are case-insensitive. File names are relative to the directory
// holding the config (SYSLINUX's working directory) unless absolute.
// TIMEOUT counts tenths of a second; LABEL blocks become entries with
// KERNEL/LINUX, INITRD (and initrd= inside APPEND), APPEND, MENU LABEL;
// DEFAULT, ONTIMEOUT, MENU DEFAULT, MENU HIDDEN, INCLUDE and CONFIG are
// honoured. Display directives are accepted and ignored.
package extlinux

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/grub"
)

// MaxDepth bounds INCLUDE/CONFIG nesting; MaxFiles the files read per Load.
const (
	MaxDepth = 8
	MaxFiles = 32
)

// ErrNoEntries is returned when no LABEL defines a kernel.
var ErrNoEntries = errors.New("extlinux: no LABEL entries")

type label struct {
	name, menuLabel string
	kernel          string
	isLinux         bool // LINUX (always a Linux kernel) rather than KERNEL
	appendArgs      *string
	initrds         []string
	hidden          bool
	password        string
	localboot       bool
	dir             string // config directory when the label was defined
}

type parser struct {
	sys        *grub.System
	dev        grub.Device
	m          *grub.Menu
	labels     []*label
	cur        *label
	def        string // DEFAULT
	onTimeout  string
	menuDef    string // label with MENU DEFAULT
	ui         bool
	prompt     int
	timeout    int // tenths; -1 unset
	total      int
	globAppend *string
	globInitrd []string
	files      int
	inText     bool
	switched   bool // CONFIG replaced the configuration: stop reading
}

// Load reads the config at cfg.
func Load(sys *grub.System, cfg grub.File) (*grub.Menu, error) {
	p := newParser(sys, cfg)
	if err := p.file(cfg, 0); err != nil {
		return nil, err
	}
	return p.finish()
}

// Parse parses config text read from cfg (INCLUDE and CONFIG are resolved
// through sys, which may be nil).
func Parse(sys *grub.System, cfg grub.File, data []byte) (*grub.Menu, error) {
	p := newParser(sys, cfg)
	if err := p.text(cfg, data, 0); err != nil {
		return nil, err
	}
	return p.finish()
}

func newParser(sys *grub.System, cfg grub.File) *parser {
	return &parser{
		sys: sys, dev: cfg.Device, timeout: -1, prompt: -1,
		m: &grub.Menu{Format: grub.FormatExtlinux, Source: cfg, Default: -1, Timeout: -1},
	}
}

func (p *parser) file(f grub.File, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("extlinux: %s: INCLUDE/CONFIG nested more than %d deep", f, MaxDepth)
	}
	if p.files >= MaxFiles {
		return fmt.Errorf("extlinux: more than %d files", MaxFiles)
	}
	p.files++
	if p.sys == nil {
		return fmt.Errorf("extlinux: %s: no filesystem", f)
	}
	data, err := p.sys.ReadFile(f, grub.MaxConfigSize)
	if err != nil {
		return fmt.Errorf("extlinux: %w", err)
	}
	return p.text(f, data, depth)
}

// errSwitched stops the current file after CONFIG loaded another.
var errSwitched = errors.New("config switched")

func (p *parser) text(f grub.File, data []byte, depth int) error {
	if len(data) > grub.MaxConfigSize {
		return fmt.Errorf("extlinux: %s: %w", f, grub.ErrTooLarge)
	}
	dir := path.Dir(f.Path)
	for n, line := range strings.Split(string(data), "\n") {
		if p.switched {
			return nil
		}
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if p.inText {
			if strings.EqualFold(line, "endtext") {
				p.inText = false
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		kw, args := split(line)
		err := p.keyword(strings.ToLower(kw), args, dir, depth)
		if errors.Is(err, errSwitched) {
			return nil
		}
		if err != nil {
			p.m.Note("%s line %d: %v", f.Path, n+1, err)
		}
	}
	return nil
}

func split(line string) (kw, args string) {
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.TrimSpace(line[i:])
}

// resolve makes a syslinux file name absolute on the config's device.
func (p *parser) resolve(name, dir string) (grub.File, error) {
	if name == "" {
		return grub.File{}, errors.New("file name expected")
	}
	if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "(") {
		name = path.Join(dir, name)
	}
	return grub.ParseFile(name, p.dev, false)
}

func (p *parser) keyword(kw, args, dir string, depth int) error {
	l := p.cur
	switch kw {
	case "label":
		if len(p.labels) >= grub.MaxEntries {
			return fmt.Errorf("more than %d labels", grub.MaxEntries)
		}
		p.cur = &label{name: args, dir: dir}
		p.labels = append(p.labels, p.cur)
	case "kernel", "linux":
		if l == nil {
			// A global KERNEL is what DEFAULT runs; treat it as an
			// implicit label.
			p.cur = &label{name: args, dir: dir}
			p.labels = append(p.labels, p.cur)
			l = p.cur
		}
		l.kernel, l.isLinux = args, kw == "linux"
	case "append":
		a := args
		if a == "-" {
			a = ""
		}
		if l == nil {
			p.globAppend = &a
		} else {
			l.appendArgs = &a
		}
	case "initrd":
		list := splitInitrds(args)
		if l == nil {
			p.globInitrd = list
		} else {
			l.initrds = list
		}
	case "localboot":
		if l != nil {
			l.localboot = true
		}
	case "default":
		p.def = args
	case "ontimeout":
		p.onTimeout = args
	case "ui":
		p.ui = true
	case "prompt":
		p.prompt, _ = strconv.Atoi(args)
	case "timeout", "totaltimeout":
		n, err := strconv.Atoi(args)
		if err != nil || n < 0 {
			return fmt.Errorf("%s: bad value %q", kw, args)
		}
		n = min(n, 10*3600*24)
		if kw == "timeout" {
			p.timeout = n
		} else {
			p.total = n
		}
	case "include":
		f, err := p.resolve(firstWord(args), dir)
		if err != nil {
			return err
		}
		return p.file(f, depth+1)
	case "config":
		f, err := p.resolve(firstWord(args), dir)
		if err != nil {
			return err
		}
		files := p.files
		*p = *newParser(p.sys, f)
		p.files = files
		if err := p.file(f, depth+1); err != nil {
			return err
		}
		p.switched = true
		return errSwitched
	case "menu":
		return p.menu(args, dir, depth)
	case "text":
		p.inText = true
	case "say", "display", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10",
		"f11", "f12", "serial", "console", "font", "kbdmap", "noescape", "nocomplete",
		"allowoptions", "implicit", "ipappend", "sysappend", "onerror", "fdt", "fdtdir",
		"devicetree", "devicetree-overlay", "fdtoverlays", "boot", "bss", "pxe",
		"fdimage", "comboot", "com32", "pxeretry", "nohalt", "timeoutmsg":
		if kw == "boot" || kw == "bss" || kw == "pxe" || kw == "fdimage" || kw == "comboot" || kw == "com32" {
			if l != nil {
				l.kernel, l.isLinux = "", false
				l.localboot = true // not a Linux kernel
			}
		}
	default:
		return fmt.Errorf("unknown keyword %q ignored", kw)
	}
	return nil
}

func (p *parser) menu(args, dir string, depth int) error {
	sub, rest := split(args)
	l := p.cur
	switch strings.ToLower(sub) {
	case "label":
		if l != nil {
			l.menuLabel = strings.ReplaceAll(rest, "^", "")
		}
	case "default":
		if l != nil {
			p.menuDef = l.name
		}
	case "hide":
		if l != nil {
			l.hidden = true
		}
	case "hidden":
		p.m.Hidden = true
	case "passwd":
		if l != nil {
			l.password = rest
		}
	case "master":
		w, pw := split(rest)
		if strings.EqualFold(w, "passwd") {
			cred, err := password("", pw)
			if err != nil {
				return err
			}
			p.m.Auth = &grub.Auth{Users: []grub.Password{cred}, Superusers: []string{""}}
		}
	case "include":
		f, err := p.resolve(firstWord(rest), dir)
		if err != nil {
			return err
		}
		return p.file(f, depth+1)
	}
	// MENU TITLE, COLOR, BACKGROUND, SEPARATOR, … : display only.
	return nil
}

// password converts a syslinux password: plain, or "$1$" MD5-crypt.
func password(user, s string) (grub.Password, error) {
	if strings.HasPrefix(s, "$1$") {
		return grub.NewPassword(user, grub.PassMD5, s)
	}
	if strings.HasPrefix(s, "$") {
		return grub.Password{}, fmt.Errorf("unsupported password hash %.3s…", s)
	}
	return grub.NewPassword(user, grub.PassPlain, s)
}

func splitInitrds(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		out = append(out, f)
	}
	return out
}

func firstWord(s string) string {
	w, _ := split(s)
	return w
}

// nonLinux recognises KERNEL images syslinux runs as something else.
func nonLinux(k string) bool {
	switch strings.ToLower(path.Ext(k)) {
	case ".c32", ".cbt", ".com", ".0", ".bin", ".bs", ".bss", ".img":
		return true
	}
	return false
}

func (p *parser) finish() (*grub.Menu, error) {
	m := p.m
	index := map[string]int{}
	for _, l := range p.labels {
		if l.hidden {
			continue
		}
		e, ok := p.entry(l)
		if !ok {
			continue
		}
		if len(m.Entries) >= grub.MaxEntries {
			break
		}
		if _, dup := index[l.name]; !dup {
			index[l.name] = len(m.Entries)
		}
		m.Entries = append(m.Entries, e)
	}
	if len(m.Entries) == 0 {
		return m, ErrNoEntries
	}
	m.Default = 0
	def := p.def
	if p.onTimeout != "" {
		def = p.onTimeout
	}
	if w := firstWord(def); nonLinux(w) || def == "" {
		def = p.menuDef // a menu module is the default: MENU DEFAULT decides
	}
	if def != "" {
		if i, ok := index[firstWord(def)]; ok {
			m.Default = i
		} else if p.menuDef != "" {
			if i, ok := index[p.menuDef]; ok {
				m.Default = i
			}
		}
	}
	// TIMEOUT 0 (or none) waits forever when a menu or prompt is shown;
	// without either, syslinux boots the default at once.
	t := p.timeout
	if p.total > 0 && (t <= 0 || p.total < t) {
		t = p.total
	}
	switch {
	case !p.ui && p.prompt <= 0 && !p.m.Hidden && !strings.HasSuffix(strings.ToLower(firstWord(p.def)), ".c32"):
		m.Timeout, m.Hidden = 0, true
	case t > 0:
		m.Timeout = time.Duration(t) * time.Second / 10
	default:
		m.Timeout = -1
	}
	return m, nil
}

func (p *parser) entry(l *label) (grub.Entry, bool) {
	title := l.menuLabel
	if title == "" {
		title = l.name
	}
	e := grub.Entry{Title: title, ID: l.name, Kind: grub.KindNone, Root: p.dev}
	if l.password != "" {
		if pw, err := password("", l.password); err == nil {
			e.Password = &pw
		} else {
			e.Notes = append(e.Notes, err.Error())
		}
	}
	if l.localboot || l.kernel == "" {
		e.Notes = append(e.Notes, "not a Linux kernel entry (LOCALBOOT or a boot sector)")
		return e, true
	}
	kernel := firstWord(l.kernel)
	if !l.isLinux && nonLinux(kernel) {
		e.Notes = append(e.Notes, fmt.Sprintf("%s is a SYSLINUX module, not a Linux kernel", kernel))
		return e, true
	}
	k, err := p.resolve(kernel, l.dir)
	if err != nil {
		e.Notes = append(e.Notes, fmt.Sprintf("kernel %s: %v", kernel, err))
		return e, true
	}
	e.Kind, e.Kernel = grub.KindLinux, &k
	args := ""
	if l.appendArgs != nil {
		args = *l.appendArgs
	} else if p.globAppend != nil {
		args = *p.globAppend
	}
	// Arguments after the kernel name on the KERNEL line come first.
	if _, extra := split(l.kernel); extra != "" {
		args = strings.TrimSpace(extra + " " + args)
	}
	initrds := l.initrds
	if initrds == nil {
		initrds = p.globInitrd
	}
	var kept []string
	for _, w := range strings.Fields(args) {
		if v, ok := strings.CutPrefix(w, "initrd="); ok {
			initrds = append(initrds, splitInitrds(v)...)
			continue
		}
		kept = append(kept, w)
	}
	e.Cmdline = strings.Join(kept, " ")
	for _, name := range initrds {
		f, err := p.resolve(name, l.dir)
		if err != nil {
			e.Notes = append(e.Notes, fmt.Sprintf("initrd %s: %v", name, err))
			continue
		}
		e.Initrds = append(e.Initrds, f)
	}
	return e, true
}
