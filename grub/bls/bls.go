// Package bls reads Boot Loader Specification type #1 entries
// (/boot/loader/entries/*.conf, UAPI.1), as Fedora, RHEL 8+ and Amazon
// Linux 2023 install them, and orders them as the specification says.
//
// Entries are used two ways: grub.cfg's blscfg command turns them into
// menu entries (see package script), and Load builds a menu from them
// directly when a disk has entries but no grub.cfg. Variables in options
// ("$kernelopts", set in grubenv by RHEL 8 and Fedora 30-33) are expanded
// from the environment the caller supplies.
package bls

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/grub"
)

// Limits.
const (
	MaxEntrySize = 64 << 10 // bytes of one entry file
	MaxEntries   = grub.MaxEntries
)

// ErrNoEntries is returned when a directory holds no usable entry.
var ErrNoEntries = errors.New("bls: no boot entries")

// Entry is one parsed entry file.
type Entry struct {
	ID           string // the file name without ".conf" and boot counter
	FileName     string // the file name without ".conf"
	Title        string
	Version      string
	MachineID    string
	SortKey      string
	Linux        string
	EFI          string
	Initrds      []string // each initrd line (one may name several files or $variables)
	Options      string   // every options line, joined with spaces
	Architecture string
	// Fedora's GRUB extensions.
	GrubUsers string
	GrubArgs  []string
	GrubClass []string
	// TriesLeft is the boot counter ("+LEFT-DONE" in the file name); -1
	// when the entry is not subject to boot counting.
	TriesLeft int
}

// Bad reports an entry whose boot counting says it failed.
func (e *Entry) Bad() bool { return e.TriesLeft == 0 }

// ParseEntry parses one entry file named name (with or without ".conf").
// Lines are "key value"; blank lines and lines starting with # are skipped.
func ParseEntry(name string, data []byte) (Entry, error) {
	if len(data) > MaxEntrySize {
		return Entry{}, fmt.Errorf("bls: %s: %w", name, grub.ErrTooLarge)
	}
	base := strings.TrimSuffix(name, ".conf")
	e := Entry{FileName: base, ID: base, TriesLeft: -1}
	if i := strings.LastIndexByte(base, '+'); i > 0 {
		left, _, _ := strings.Cut(base[i+1:], "-")
		if n, err := strconv.Atoi(left); err == nil && n >= 0 && isDigits(base[i+1:]) {
			e.ID, e.TriesLeft = base[:i], n
		}
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		if k, v, ok := strings.Cut(line, "\t"); ok && len(k) < len(key) {
			key, val = k, v
		}
		val = strings.TrimSpace(val)
		switch key {
		case "title":
			e.Title = val
		case "version":
			e.Version = val
		case "machine-id":
			e.MachineID = val
		case "sort-key":
			e.SortKey = val
		case "linux":
			e.Linux = val
		case "efi":
			e.EFI = val
		case "initrd":
			if len(e.Initrds) < 64 {
				e.Initrds = append(e.Initrds, val)
			}
		case "options":
			if e.Options == "" {
				e.Options = val
			} else {
				e.Options += " " + val
			}
		case "architecture":
			e.Architecture = val
		case "grub_users":
			e.GrubUsers = val
		case "grub_arg":
			e.GrubArgs = append(e.GrubArgs, val)
		case "grub_class":
			e.GrubClass = append(e.GrubClass, val)
		}
		// devicetree, devicetree-overlay and unknown keys: ignored.
	}
	if e.Linux == "" {
		if e.EFI != "" {
			return e, fmt.Errorf("bls: %s: an EFI program entry, not a Linux one", name)
		}
		return e, fmt.Errorf("bls: %s: no linux key", name)
	}
	return e, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// ReadDir reads every "*.conf" entry in dir, skipping broken ones (their
// errors are returned as notes), and sorts them.
func ReadDir(sys *grub.System, dir grub.File) ([]Entry, []string, error) {
	list, err := sys.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var entries []Entry
	var notes []string
	for _, de := range list {
		name := de.Name()
		if !strings.HasSuffix(name, ".conf") || strings.HasPrefix(name, ".") || len(name) <= 5 {
			continue
		}
		if de.Type()&fs.ModeType != 0 && de.Type()&fs.ModeSymlink == 0 {
			continue // directories and devices
		}
		if len(entries) >= MaxEntries {
			notes = append(notes, fmt.Sprintf("bls: more than %d entries, the rest ignored", MaxEntries))
			break
		}
		f := grub.File{Device: dir.Device, Path: path.Join(dir.Path, name)}
		data, err := sys.ReadFile(f, MaxEntrySize)
		if err != nil {
			notes = append(notes, err.Error())
			continue
		}
		e, err := ParseEntry(name, data)
		if err != nil {
			notes = append(notes, err.Error())
			continue
		}
		entries = append(entries, e)
	}
	Sort(entries)
	return entries, notes, nil
}

// Sort orders entries as UAPI.1 says: entries that are not "bad" first;
// then those with a sort-key, by sort-key, machine-id (both increasing)
// and version (decreasing); then the rest by file name, decreasing in
// version order.
func Sort(es []Entry) {
	sort.SliceStable(es, func(i, j int) bool { return order(&es[i], &es[j]) < 0 })
}

func order(a, b *Entry) int {
	if a.Bad() != b.Bad() {
		if a.Bad() {
			return 1
		}
		return -1
	}
	if a.SortKey != "" && b.SortKey != "" {
		if c := strcmpEmptyLow(a.SortKey, b.SortKey); c != 0 {
			return c
		}
		if c := strcmpEmptyLow(a.MachineID, b.MachineID); c != 0 {
			return c
		}
		if c := Compare(b.Version, a.Version); c != 0 {
			return c
		}
	} else if a.SortKey != "" {
		return -1
	} else if b.SortKey != "" {
		return 1
	}
	return Compare(b.FileName, a.FileName)
}

// strcmpEmptyLow is the spec's alphanumerical order.
func strcmpEmptyLow(a, b string) int { return strings.Compare(a, b) }

// Expand replaces $name (not preceded by a backslash) with its value from
// get, as GRUB's blscfg does for options; unset variables vanish. The
// result's words are separated by single spaces.
func Expand(s string, get func(string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || (i > 0 && s[i-1] == '\\') {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || isAlnum(s[j])) {
			j++
		}
		if j == i+1 {
			b.WriteByte(c)
			continue
		}
		if v, ok := get(s[i+1 : j]); ok {
			b.WriteString(v)
			b.WriteByte(' ')
		}
		i = j - 1
		if b.Len() > grub.MaxConfigSize {
			break
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func isAlnum(c byte) bool {
	return (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// GrubEntry converts e to a menu entry whose files are on dev (the
// filesystem the entries directory is on: BLS paths are relative to it).
// get expands variables in options and initrd lines.
func (e *Entry) GrubEntry(dev grub.Device, get func(string) (string, bool)) grub.Entry {
	title := e.Title
	if title == "" {
		title = e.Linux
	}
	ge := grub.Entry{
		Title:   title,
		ID:      e.ID,
		Kind:    grub.KindLinux,
		Root:    dev,
		Cmdline: Expand(e.Options, get),
		Classes: e.GrubClass,
	}
	if f, err := grub.ParseFile(absolute(e.Linux), dev, false); err == nil {
		ge.Kernel = &f
	} else {
		ge.Notes = append(ge.Notes, fmt.Sprintf("linux %s: %v", e.Linux, err))
	}
	var names []string
	for _, line := range e.Initrds {
		// RHEL writes "initrd /initramfs-X.img $tuned_initrd".
		names = append(names, strings.Fields(Expand(line, get))...)
	}
	for _, p := range names {
		f, err := grub.ParseFile(absolute(p), dev, false)
		if err != nil {
			ge.Notes = append(ge.Notes, fmt.Sprintf("initrd %s: %v", p, err))
			continue
		}
		ge.Initrds = append(ge.Initrds, f)
	}
	return ge
}

func absolute(p string) string {
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "(") {
		return p
	}
	return "/" + p
}

// Load builds a menu from the entries in dir when no GRUB config drives
// them (systemd-boot style installs). Options are expanded from env
// (grubenv's kernelopts on Fedora/RHEL), which may be nil. The default is
// grubenv's saved_entry, else loader.conf's "default" pattern next to the
// entries directory, else the first entry; the timeout is loader.conf's,
// else DefaultTimeout.
func Load(sys *grub.System, dir grub.File, env *grub.Env) (*grub.Menu, error) {
	entries, notes, err := ReadDir(sys, dir)
	if err != nil {
		return nil, fmt.Errorf("bls: %w", err)
	}
	m := &grub.Menu{Format: grub.FormatBLS, Source: dir, Default: -1, Timeout: DefaultTimeout}
	for _, n := range notes {
		m.Note("%s", n)
	}
	get := func(name string) (string, bool) { return env.Get(name) }
	for i := range entries {
		m.Entries = append(m.Entries, entries[i].GrubEntry(dir.Device, get))
	}
	if len(m.Entries) == 0 {
		return m, ErrNoEntries
	}
	m.Default = 0
	conf := loaderConf(sys, grub.File{Device: dir.Device, Path: path.Join(path.Dir(dir.Path), "loader.conf")})
	if t, ok := conf["timeout"]; ok {
		switch n, err := strconv.Atoi(t); {
		case t == "menu-force":
			m.Timeout = -1
		case err == nil && n >= 0:
			m.Timeout = time.Duration(min(n, 1<<20)) * time.Second
		}
	}
	if saved, ok := env.Get("saved_entry"); ok && saved != "" {
		if i := m.Find(saved); i >= 0 {
			m.Default = i
			return m, nil
		}
	}
	if pat, ok := conf["default"]; ok {
		for i := range entries {
			if ok, _ := path.Match(pat, entries[i].FileName+".conf"); ok || pat == entries[i].ID {
				m.Default = i
				break
			}
		}
	}
	return m, nil
}

// DefaultTimeout is the menu timeout of a BLS menu without loader.conf.
const DefaultTimeout = 5 * time.Second

// loaderConf reads systemd-boot's loader.conf ("key value" lines).
func loaderConf(sys *grub.System, f grub.File) map[string]string {
	data, err := sys.ReadFile(f, MaxEntrySize)
	if err != nil {
		return nil
	}
	conf := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		conf[k] = strings.TrimSpace(v)
	}
	return conf
}
