// Package grub is gopvgrub's boot menu model: one Menu of Entries that
// every configuration format (GRUB legacy menu.lst, GRUB 2 grub.cfg, Boot
// Loader Spec entries, extlinux.conf) is turned into, so that the menu UI
// and the loader never see format details. Kernels and initrds are
// (device, absolute path) pairs resolved at parse time.
//
// It also holds what the format parsers share: GRUB device and file names,
// the System (the volumes a config can name), the grubenv block, and
// password checks (MD5-crypt and PBKDF2, written here with crypto/md5 and
// crypto/pbkdf2 because the guest has no libcrypt).
//
// The parsers live in subpackages: legacy (menu.lst), script (grub.cfg),
// bls, extlinux; discover finds a config on the guest's disks; ui is the
// console menu.
package grub

import (
	"encoding/json"
	"math"
	"strings"
	"time"
)

// Format names a configuration format.
type Format string

// The formats.
const (
	FormatMenuLst  Format = "menu.lst"
	FormatGrubCfg  Format = "grub.cfg"
	FormatBLS      Format = "bls"
	FormatExtlinux Format = "extlinux"
	FormatManual   Format = "manual" // typed on the command line
)

// Kind says how an entry boots.
type Kind string

// Entry kinds. Only KindLinux entries boot in a PV domain; the others are
// kept (and shown) so the user sees the whole menu, and the loader explains
// why it cannot boot them.
const (
	KindLinux     Kind = "linux"     // a Linux kernel (bzImage or ELF) + initrds
	KindMultiboot Kind = "multiboot" // multiboot kernel + modules (Xen hypervisor entries)
	KindChain     Kind = "chainload" // chainloader: meaningless without firmware
	KindNone      Kind = "none"      // no kernel command ran
)

// Entry is one bootable menu item.
type Entry struct {
	Title   string   `json:"title"`
	ID      string   `json:"id,omitempty"`
	Submenu []string `json:"submenu,omitempty"` // titles of the enclosing submenus, outermost first
	// SubmenuIDs are the enclosing submenus' ids (GRUB 2 --id), parallel
	// to Submenu.
	SubmenuIDs []string `json:"submenu_ids,omitempty"`
	Kind       Kind     `json:"kind"`
	Root       Device   `json:"root"`             // the root device when the kernel command ran
	Kernel     *File    `json:"kernel,omitempty"` // the kernel, or the multiboot image
	Initrds    []File   `json:"initrds,omitempty"`
	Cmdline    string   `json:"cmdline"`
	// Modules are a multiboot entry's modules (file and its arguments).
	Modules []Module `json:"modules,omitempty"`
	// Locked entries need a password to boot (menu.lst "lock", GRUB 2
	// entries without --unrestricted once superusers is set).
	Locked bool `json:"locked,omitempty"`
	// Users may boot a locked entry besides the superusers (GRUB 2 --users).
	Users []string `json:"users,omitempty"`
	// Password is a menu.lst password inside this entry: asked before it boots.
	Password *Password `json:"password,omitempty"`
	// SaveDefault is set when the entry would save itself as the default;
	// gopvgrub never writes to the guest's disk and says so.
	SaveDefault bool     `json:"savedefault,omitempty"`
	Classes     []string `json:"classes,omitempty"`
	// Notes are problems found while evaluating the entry (a file that
	// could not be resolved, an unsupported command).
	Notes []string `json:"notes,omitempty"`
}

// Module is a multiboot module.
type Module struct {
	File File   `json:"file"`
	Args string `json:"args,omitempty"`
}

// Path returns the entry's title path: "Advanced options>Debian, with 6.1".
func (e *Entry) Path() string {
	if len(e.Submenu) == 0 {
		return e.Title
	}
	return strings.Join(e.Submenu, ">") + ">" + e.Title
}

// Bootable reports whether the entry has a Linux kernel to load.
func (e *Entry) Bootable() bool { return e.Kind == KindLinux && e.Kernel != nil }

// Menu is a parsed boot menu.
type Menu struct {
	Format  Format  `json:"format"`
	Source  File    `json:"source"` // the config file it came from
	Entries []Entry `json:"entries"`
	// Default is the index into Entries booted when the timeout expires,
	// or -1 when there are no entries.
	Default int `json:"default"`
	// Fallback lists the entries to try, in order, when the default fails.
	Fallback []int `json:"fallback,omitempty"`
	// Timeout is how long the menu waits; negative means forever.
	Timeout time.Duration `json:"-"`
	// Hidden menus show only a countdown until a key is pressed.
	Hidden bool `json:"hidden,omitempty"`
	// Auth holds the menu's passwords; nil when there are none.
	Auth *Auth `json:"auth,omitempty"`
	// Notes are things to tell the user: settings gopvgrub cannot honour
	// (savedefault, save_env), configs that did not fully parse.
	Notes []string `json:"notes,omitempty"`
}

// MarshalJSON adds the timeout in seconds (-1 for none).
func (m *Menu) MarshalJSON() ([]byte, error) {
	type plain Menu
	t := -1.0
	if m.Timeout >= 0 {
		t = math.Round(m.Timeout.Seconds()*10) / 10
	}
	return json.Marshal(struct {
		*plain
		Timeout float64 `json:"timeout"`
	}{(*plain)(m), t})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Menu) UnmarshalJSON(b []byte) error {
	type plain Menu
	v := struct {
		*plain
		Timeout float64 `json:"timeout"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Timeout < 0 {
		m.Timeout = -1
	} else {
		m.Timeout = time.Duration(v.Timeout * float64(time.Second))
	}
	return nil
}

// DefaultEntry returns the default entry, or nil.
func (m *Menu) DefaultEntry() *Entry {
	if m.Default < 0 || m.Default >= len(m.Entries) {
		return nil
	}
	return &m.Entries[m.Default]
}

// Note records a message for the user, once.
func (m *Menu) Note(format string, args ...any) {
	s := sprintf(format, args...)
	for _, n := range m.Notes {
		if n == s {
			return
		}
	}
	if len(m.Notes) < MaxNotes {
		m.Notes = append(m.Notes, s)
	}
}

// Find returns the index of the entry a GRUB "default" value names: an
// index ("2"), an id or title, or a submenu path of those ("1>2",
// "gnulinux-advanced-X>gnulinux-6.1-advanced-X", "Advanced>Debian 6.1").
// Numbers count items at each menu level, submenus included, as GRUB does.
// It returns -1 if nothing matches.
func (m *Menu) Find(spec string) int {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return -1
	}
	parts := splitPath(spec)
	var prefix []string // titles of the submenus entered so far
	for depth, p := range parts {
		items := m.items(prefix)
		idx := -1
		if n, ok := parseIndex(p); ok {
			if n < len(items) {
				idx = n
			}
		} else {
			for i, it := range items {
				if it.id == p || it.title == p {
					idx = i
					break
				}
			}
		}
		if idx < 0 {
			return -1
		}
		it := items[idx]
		if it.entry >= 0 {
			if depth != len(parts)-1 {
				return -1 // a path through a plain entry
			}
			return it.entry
		}
		prefix = append(prefix, it.title)
		if depth == len(parts)-1 {
			// A submenu named alone: GRUB opens it; boot its first entry.
			sub := m.items(prefix)
			for len(sub) > 0 && sub[0].entry < 0 {
				prefix = append(prefix, sub[0].title)
				sub = m.items(prefix)
			}
			if len(sub) == 0 {
				return -1
			}
			return sub[0].entry
		}
	}
	return -1
}

// splitPath splits a default path on '>', where ">>" is a literal '>'
// (grub-mkconfig doubles '>' in titles).
func splitPath(s string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '>' {
			if i+1 < len(s) && s[i+1] == '>' {
				cur.WriteByte('>')
				i++
				continue
			}
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(parts, cur.String())
}

func parseIndex(s string) (int, bool) {
	if s == "" || len(s) > 6 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// item is one line of a menu level: an entry or a submenu.
type item struct {
	title, id string
	entry     int // index into Entries, or -1 for a submenu
}

// Item is one line at a menu level, as the UI shows it.
type Item struct {
	Title string
	// Entry is the index into Menu.Entries, or -1 for a submenu.
	Entry int
}

// Items lists the lines of the menu level inside the submenus named by
// path (nil for the top level), in order: entries and submenus.
func (m *Menu) Items(path []string) []Item {
	its := m.items(path)
	out := make([]Item, len(its))
	for i, it := range its {
		out[i] = Item{Title: it.title, Entry: it.entry}
	}
	return out
}

func (m *Menu) items(prefix []string) []item {
	var out []item
	seen := map[string]bool{}
	for i := range m.Entries {
		e := &m.Entries[i]
		if !hasPrefix(e.Submenu, prefix) {
			continue
		}
		if len(e.Submenu) == len(prefix) {
			out = append(out, item{title: e.Title, id: e.ID, entry: i})
			continue
		}
		t := e.Submenu[len(prefix)]
		key := strings.Join(e.Submenu[:len(prefix)+1], "\x00")
		if seen[key] {
			continue
		}
		seen[key] = true
		id := ""
		if len(e.SubmenuIDs) > len(prefix) {
			id = e.SubmenuIDs[len(prefix)]
		}
		out = append(out, item{title: t, id: id, entry: -1})
	}
	return out
}

func hasPrefix(s, prefix []string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := range prefix {
		if s[i] != prefix[i] {
			return false
		}
	}
	return true
}
