// Package script evaluates GRUB 2 configuration files (grub.cfg).
//
// It is an interpreter for the subset of GRUB's script language that
// grub-mkconfig (Debian, Ubuntu, openSUSE, Fedora) and cloud images
// produce, not a keyword filter: words are expanded with GRUB's quoting
// and splitting rules, if/elif/else, while/until/for, functions, return,
// source and configfile run, test/[ ] evaluates as grub-core's test.c
// does, search sets variables from the volumes it finds, load_env reads
// grubenv, and blscfg expands Boot Loader Spec entries. Commands that only
// matter to a graphical or firmware GRUB (insmod, fonts, terminals, video
// modes) are accepted and ignored; unknown commands fail as in GRUB and are
// reported in the menu's notes.
//
// Like GRUB, the config runs first; each menuentry's body is evaluated
// afterwards, in the variables as they stand when the menu would be shown,
// to find the kernel, initrds and command line it would load. Submenus are
// evaluated the same way, in a copy of the variables.
//
// Evaluation is bounded (steps, nesting, files, variable sizes), so a
// hostile or looping config ends with a note, never a hang.
package script

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/grub"
	"github.com/gopvgrub/gopvgrub/grub/bls"
)

// Platform is what $grub_platform says: the x86_64-xen GRUB's value, which
// grub.cfg files test to load xzio/lzopio for Xen.
const Platform = "xen"

// features are the feature_* variables GRUB 2.06+ sets.
var features = []string{
	"feature_chainloader_bpb", "feature_ntldr", "feature_platform_search_hint",
	"feature_default_font_path", "feature_all_video_module", "feature_menuentry_id",
	"feature_menuentry_options", "feature_200_final", "feature_nativedisk_cmd",
	"feature_timeout_style",
}

// Load evaluates the grub.cfg at cfg.
func Load(sys *grub.System, cfg grub.File) (*grub.Menu, error) {
	in := newInterp(sys, cfg)
	in.runFile(cfg)
	if in.files == 1 && len(in.fr.items) == 0 && in.fr.replaced == nil {
		if _, err := sys.Stat(cfg); err != nil {
			return nil, fmt.Errorf("grub.cfg: %w", err)
		}
	}
	return in.finish()
}

// Parse evaluates grub.cfg text as if read from cfg.
func Parse(sys *grub.System, cfg grub.File, data []byte) (*grub.Menu, error) {
	if len(data) > grub.MaxConfigSize {
		return nil, fmt.Errorf("grub.cfg: %s: %w", cfg, grub.ErrTooLarge)
	}
	in := newInterp(sys, cfg)
	in.setVar("config_file", cfg.String())
	in.setVar("config_directory", "("+cfg.Device.String()+")"+path.Dir(cfg.Path))
	in.run(in.parseScript(cfg.String(), string(data)))
	return in.finish()
}

func newInterp(sys *grub.System, cfg grub.File) *interp {
	if sys == nil {
		sys = &grub.System{}
	}
	in := &interp{
		sys:   sys,
		menu:  &grub.Menu{Format: grub.FormatGrubCfg, Source: cfg, Default: -1, Timeout: -1},
		fr:    &frame{vars: newVars()},
		funcs: map[string]*funcNode{},
	}
	// What GRUB's core sets before it reads the config: root and prefix
	// point at the directory the config is in.
	root := cfg.Device.String()
	in.setVar("root", root)
	in.setVar("prefix", "("+root+")"+path.Dir(cfg.Path))
	in.setVar("cmdpath", "("+root+")"+path.Dir(cfg.Path))
	in.setVar("grub_platform", Platform)
	in.setVar("grub_cpu", "x86_64")
	for _, f := range features {
		in.setVar(f, "y")
	}
	for _, v := range []string{"root", "prefix", "grub_platform", "grub_cpu"} {
		in.fr.vars.exported[v] = true
	}
	return in
}

// finish evaluates every entry and builds the menu.
func (in *interp) finish() (*grub.Menu, error) {
	top := in.fr
	if top.replaced != nil {
		top = top.replaced
		for top.replaced != nil {
			top = top.replaced
		}
	}
	// A stop ended the config, not entry evaluation, which has a budget
	// of its own.
	in.stop, in.steps, in.fatal = false, 0, nil
	m := in.menu
	m.Entries = in.buildItems(top, nil, nil, 0)
	in.settle(m, top.vars)
	if len(m.Entries) == 0 {
		return m, fmt.Errorf("grub.cfg: %s: no menu entries", m.Source)
	}
	return m, nil
}

// buildItems evaluates a frame's items into entries.
func (in *interp) buildItems(fr *frame, titles, ids []string, depth int) []grub.Entry {
	var out []grub.Entry
	for _, it := range fr.items {
		if in.fatal != nil {
			break
		}
		switch {
		case it.ready != nil:
			e := *it.ready
			e.Submenu = append(append([]string(nil), titles...), e.Submenu...)
			e.SubmenuIDs = append(append([]string(nil), ids...), e.SubmenuIDs...)
			out = append(out, e)
		case it.submenu:
			if depth >= MaxDepth {
				in.note("submenu %q: %v", truncate(it.title, 40), errTooDeep)
				continue
			}
			sub := &frame{vars: fr.vars.clone()}
			saved, savedScope := in.fr, in.scope
			in.fr, in.scope = sub, &scope{args: it.args}
			in.run(it.body)
			in.fr, in.scope = saved, savedScope
			in.returning, in.breaks, in.stop = false, 0, false
			if sub.replaced != nil {
				sub = sub.replaced
			}
			out = append(out, in.buildItems(sub,
				append(append([]string(nil), titles...), it.title),
				append(append([]string(nil), ids...), it.id), depth+1)...)
		default:
			es := in.evalEntry(fr, it)
			for i := range es {
				es[i].Submenu = append(append([]string(nil), titles...), es[i].Submenu...)
				es[i].SubmenuIDs = append(append([]string(nil), ids...), es[i].SubmenuIDs...)
			}
			out = append(out, es...)
		}
		if len(out) >= grub.MaxEntries {
			in.menu.Note("more than %d menu entries; the rest are dropped", grub.MaxEntries)
			return out[:grub.MaxEntries]
		}
	}
	return out
}

// evalEntry runs an entry's body in a copy of its frame's variables and
// returns the entry it loads (or, for a body that ran configfile, the
// entries of that menu as a submenu).
func (in *interp) evalEntry(fr *frame, it *menuItem) []grub.Entry {
	st := &entryState{e: grub.Entry{
		Title:   it.title,
		ID:      it.id,
		Kind:    grub.KindNone,
		Classes: it.classes,
		Locked:  it.restricted,
		Users:   it.users,
	}}
	if r, err := grub.ParseDevice(fr.vars.m["root"], false); err == nil {
		st.e.Root = r
	}
	saved, savedScope, savedEntry := in.fr, in.scope, in.entry
	in.fr = &frame{vars: fr.vars.clone()}
	in.scope, in.entry = &scope{args: it.args}, st
	// GRUB sets "chosen" to the entry's id path while it runs.
	in.setVar("chosen", it.id)
	if it.bls != nil {
		in.runBLS(it.bls)
	} else {
		in.run(it.body)
	}
	sub := in.fr.replaced
	in.fr, in.scope, in.entry = saved, savedScope, savedEntry
	in.returning, in.breaks, in.stop = false, 0, false
	if sub != nil {
		// The body showed another menu (configfile): it is this entry's
		// submenu.
		return in.buildItems(sub, []string{it.title}, []string{it.id}, 1)
	}
	e := st.e
	if e.Kind == grub.KindLinux && e.Kernel == nil {
		e.Notes = append(e.Notes, "the kernel could not be resolved")
	}
	return []grub.Entry{e}
}

// settle reads default, fallback, timeout, timeout_style and the password
// settings from the variables the menu is shown with.
func (in *interp) settle(m *grub.Menu, v *vars) {
	get := func(name string) (string, bool) { return v.get(name) }
	m.Default = -1
	if len(m.Entries) > 0 {
		m.Default = 0
		if d, ok := get("default"); ok && d != "" {
			if i := m.Find(d); i >= 0 {
				m.Default = i
			} else {
				m.Note("default %q names no entry; using the first", truncate(d, 80))
			}
		}
	}
	if f, ok := get("fallback"); ok {
		for _, s := range strings.Fields(f) {
			if i := m.Find(s); i >= 0 {
				m.Fallback = append(m.Fallback, i)
			}
		}
	}
	m.Timeout = -1
	if t, ok := get("timeout"); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(t), 0, 32); err == nil && n >= 0 {
			m.Timeout = time.Duration(n) * time.Second
		}
	}
	if s, _ := get("timeout_style"); s == "hidden" || s == "countdown" {
		m.Hidden = true
	}
	if su, ok := get("superusers"); ok {
		m.Auth = &grub.Auth{Users: in.users, Superusers: splitUsers(su)}
		if m.Auth.Superusers == nil {
			m.Auth.Superusers = []string{}
		}
		if m.Auth.Users == nil {
			m.Auth.Users = []grub.Password{}
		}
	} else {
		// Without superusers GRUB enforces nothing.
		for i := range m.Entries {
			m.Entries[i].Locked = false
		}
	}
}

// maxBLSFiles bounds the BLS entry files all blscfg commands of one Load
// read together.
const maxBLSFiles = 2 * grub.MaxEntries

// blsBody is what blscfg generates for one entry: GRUB's blscfg writes
// "linux ($root)LINUX OPTIONS" and "initrd ($root)INITRD…" as the body.
type blsBody struct {
	entry   bls.Entry
	options string // expanded when blscfg ran, as GRUB does
}

func (in *interp) runBLS(b *blsBody) {
	e := &in.entry.e
	root, err := in.root()
	if err != nil {
		in.note("blscfg: %v", err)
		return
	}
	// initrd lines are expanded when the body runs; options were expanded
	// when blscfg ran, as GRUB's blscfg does.
	ge := b.entry.GrubEntry(root, func(name string) (string, bool) { return in.fr.vars.get(name) })
	e.Kind, e.Root, e.Kernel, e.Initrds = grub.KindLinux, root, ge.Kernel, ge.Initrds
	e.Cmdline = strings.Join(strings.Fields(b.options), " ")
	e.Notes = append(e.Notes, ge.Notes...)
	if v, _ := in.fr.vars.get("save_default"); v == "true" {
		e.SaveDefault = true
	}
}

// bBlscfg reads BLS entries from $blsdir (default /loader/entries, then
// /boot/loader/entries) on $root, or from "(dev)/dir", and adds one menu
// entry per file. Fedora's "blscfg default|non-default|ID" selects some.
func bBlscfg(in *interp, c *cmdNode, _ string, args []string) int {
	dirs := []string{"/loader/entries", "/boot/loader/entries"}
	if d, ok := in.fr.vars.get("blsdir"); ok && d != "" {
		dirs = []string{d}
	}
	root, err := in.root()
	only := ""
	if len(args) == 1 {
		if strings.HasPrefix(args[0], "(") {
			f, ferr := grub.ParseFile(args[0], root, false)
			if ferr != nil {
				in.note("line %d: blscfg: %v", c.ln, ferr)
				return stFail
			}
			root, err, dirs = f.Device, nil, []string{f.Path}
		} else if args[0] != "default" && args[0] != "non-default" {
			only = args[0]
		}
	}
	if err != nil {
		in.note("line %d: blscfg: %v", c.ln, err)
		return stFail
	}
	if len(in.fr.items) >= grub.MaxEntries || in.blsFiles >= maxBLSFiles {
		in.note("line %d: blscfg: too many entries read", c.ln)
		return stFail
	}
	var entries []bls.Entry
	var notes []string
	found := false
	for _, d := range dirs {
		if in.files >= MaxFiles {
			break
		}
		in.files++
		entries, notes, err = bls.ReadDir(in.sys, grub.File{Device: root, Path: path.Clean("/" + d)})
		if err == nil {
			found = true
			break
		}
	}
	in.blsFiles += len(entries) + len(notes)
	for _, n := range notes {
		in.note("%s", n)
	}
	if !found {
		in.note("line %d: blscfg: no entries directory on (%s)", c.ln, root)
		return stNotFound
	}
	get := func(name string) (string, bool) { return in.fr.vars.get(name) }
	for _, e := range entries {
		if only != "" && e.ID != only && e.FileName != only {
			continue
		}
		if len(in.fr.items) >= grub.MaxEntries {
			in.note("more than %d menu entries", grub.MaxEntries)
			break
		}
		opts := e.Options
		if opts == "" {
			opts, _ = get("default_kernelopts")
		}
		title := e.Title
		if title == "" {
			title = e.Linux
		}
		it := &menuItem{
			title:      title,
			id:         e.ID,
			classes:    e.GrubClass,
			restricted: !contains(e.GrubArgs, "--unrestricted"),
			args:       append([]string{title}, e.GrubArgs...),
			bls:        &blsBody{entry: e, options: bls.Expand(opts, get)},
			line:       c.ln,
		}
		if e.GrubUsers != "" {
			it.users = splitUsers(bls.Expand(e.GrubUsers, get))
		}
		in.fr.items = append(in.fr.items, it)
	}
	return stOK
}
