package script

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/gopvgrub/gopvgrub/grub"
	"github.com/gopvgrub/gopvgrub/grub/extlinux"
	"github.com/gopvgrub/gopvgrub/grub/legacy"
)

type builtin func(in *interp, c *cmdNode, name string, args []string) int

// builtins is set in init: several builtins run scripts, which call builtins.
var builtins map[string]builtin

// ignored commands are accepted and succeed without effect: modules,
// display, fonts, terminals, firmware and hardware setup.
var ignored = map[string]bool{}

func init() {
	for _, name := range strings.Fields(`insmod rmmod lsmod load_video terminal_output terminal_input
		terminal terminfo serial loadfont font background_image background_color clear cls play
		gettext videoinfo vbeinfo cryptomount nativedisk usb btrfs-mount-subvol
		btrfs-list-subvols set_gfxpayload halt reboot fwsetup cat ls lsfonts help date keymap
		tpm_record_pcrs acpi badram cutmem efi_gop efi_uga vbe vga all_video gfxterm
		gfxterm_background loopback lsefi lssal lspci lsmmap smbios`) {
		ignored[name] = true
	}
	builtins = map[string]builtin{
		"set": bSet, "unset": bUnset, "export": bExport,
		"true":  func(*interp, *cmdNode, string, []string) int { return stOK },
		"false": func(*interp, *cmdNode, string, []string) int { return stFail },
		"test":  bTest, "[": bTest,
		"echo":   func(*interp, *cmdNode, string, []string) int { return stOK },
		"sleep":  func(*interp, *cmdNode, string, []string) int { return stOK }, // never waits, never interrupted
		"source": bSource, ".": bSource,
		"configfile":        bConfigfile,
		"legacy_configfile": bLegacy, "legacy_source": bLegacy,
		"extract_legacy_entries_configfile": bLegacy, "extract_legacy_entries_source": bLegacy,
		"syslinux_configfile": bSyslinux, "syslinux_source": bSyslinux,
		"menuentry": bMenuentry, "submenu": bMenuentry,
		"search":         bSearch,
		"search.fs_uuid": bSearchAlias, "search.fs_label": bSearchAlias, "search.file": bSearchAlias,
		"load_env": bLoadEnv, "save_env": bSaveEnv,
		"blscfg": bBlscfg,
		"linux":  bLinux, "linux16": bLinux, "linuxefi": bLinux,
		"initrd": bInitrd, "initrd16": bInitrd, "initrdefi": bInitrd,
		"multiboot": bMultiboot, "multiboot2": bMultiboot,
		"module": bModule, "module2": bModule,
		"chainloader": bChainloader,
		"boot":        func(*interp, *cmdNode, string, []string) int { return stOK },
		"return":      bReturn, "break": bBreak, "continue": bBreak,
		"shift": bShift, "setparams": bSetparams,
		"eval": bEval, "exit": bExit,
		"password": bPassword, "password_pbkdf2": bPassword,
		"probe": bProbe, "regexp": bRegexp,
		// No key is ever held while the config runs, and no hardware matches.
		"keystatus": func(*interp, *cmdNode, string, []string) int { return stFail },
		"hwmatch":   func(*interp, *cmdNode, string, []string) int { return stFail },
	}
}

func bSet(in *interp, c *cmdNode, name string, args []string) int {
	if len(args) == 0 {
		return stOK
	}
	name, val, ok := strings.Cut(args[0], "=")
	if !ok || name == "" {
		in.note("line %d: set %s: not an assignment", c.ln, truncate(args[0], 40))
		return stFail
	}
	if !in.setVar(name, val) {
		return stFail
	}
	return stOK
}

func bUnset(in *interp, _ *cmdNode, name string, args []string) int {
	for _, a := range args {
		in.fr.vars.unset(a)
	}
	return stOK
}

func bExport(in *interp, _ *cmdNode, name string, args []string) int {
	for _, a := range args {
		if _, ok := in.fr.vars.get(a); !ok {
			in.setVar(a, "")
		}
		in.fr.vars.exported[a] = true
	}
	return stOK
}

func bSource(in *interp, c *cmdNode, name string, args []string) int {
	if len(args) != 1 {
		in.note("line %d: source: one file name expected", c.ln)
		return stFail
	}
	f, err := in.resolve(args[0])
	if err != nil {
		in.note("line %d: source %s: %v", c.ln, args[0], err)
		return stNotFound
	}
	return in.runFile(f)
}

// bConfigfile runs a file in a new context (a copy of every variable)
// with its own menu; if that menu has entries it is what GRUB shows, so it
// replaces the current menu and the rest of the current file is not run.
func bConfigfile(in *interp, c *cmdNode, name string, args []string) int {
	if len(args) != 1 {
		in.note("line %d: configfile: one file name expected", c.ln)
		return stFail
	}
	f, err := in.resolve(args[0])
	if err != nil {
		in.note("line %d: configfile %s: %v", c.ln, args[0], err)
		return stNotFound
	}
	// The new menu context is not the entry that may have run this:
	// its menuentry commands define entries.
	outer, entry, sc := in.fr, in.entry, in.scope
	in.fr, in.entry, in.scope = &frame{vars: outer.vars.clone()}, nil, nil
	st := in.runFile(f)
	inner := in.fr
	in.fr, in.entry, in.scope = outer, entry, sc
	in.returning, in.breaks = false, 0
	if inner.replaced != nil {
		inner = inner.replaced
	}
	if len(inner.items) > 0 {
		outer.replaced = inner
		in.stop = true
	}
	return st
}

// bLegacy reads a menu.lst (legacy_configfile and friends) and adds its
// entries as ready-made items.
func bLegacy(in *interp, c *cmdNode, name string, args []string) int {
	if len(args) != 1 {
		in.note("line %d: legacy_configfile: one file name expected", c.ln)
		return stFail
	}
	f, err := in.resolve(args[0])
	if err != nil {
		in.note("line %d: %v", c.ln, err)
		return stNotFound
	}
	if in.files >= MaxFiles {
		in.note("line %d: more than %d files read", c.ln, MaxFiles)
		return stFail
	}
	in.files++
	m, err := legacy.Load(in.sys, f)
	if err != nil {
		in.note("line %d: %v", c.ln, err)
		return stFail
	}
	in.addReady(m)
	return stOK
}

// bSyslinux reads an extlinux/syslinux config: syslinux_configfile
// [-i|-p|-c CWD|-r ROOT] FILE.
func bSyslinux(in *interp, c *cmdNode, name string, args []string) int {
	var file string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-i" || a == "-p" || a == "--isolinux" || a == "--pxelinux":
		case a == "-c" || a == "-r" || a == "--cwd" || a == "--root":
			i++
		case strings.HasPrefix(a, "--cwd=") || strings.HasPrefix(a, "--root="):
		default:
			file = a
		}
	}
	f, err := in.resolve(file)
	if err != nil || file == "" {
		in.note("line %d: syslinux_configfile: file name expected", c.ln)
		return stFail
	}
	if in.files >= MaxFiles {
		return stFail
	}
	in.files++
	m, err := extlinux.Load(in.sys, f)
	if err != nil {
		in.note("line %d: %v", c.ln, err)
		return stFail
	}
	in.addReady(m)
	return stOK
}

// addReady adds entries parsed by another format as items.
func (in *interp) addReady(m *grub.Menu) {
	for i := range m.Entries {
		e := m.Entries[i]
		if len(in.fr.items) >= grub.MaxEntries {
			in.note("more than %d menu entries", grub.MaxEntries)
			return
		}
		in.fr.items = append(in.fr.items, &menuItem{title: e.Title, id: e.ID, ready: &e})
	}
	for _, n := range m.Notes {
		in.note("%s", n)
	}
}

// options is a GRUB extcmd option table entry.
type option struct {
	long     string
	short    byte
	arg      bool // takes a value
	optional bool // the value is optional (only --opt=value or a non-dash next word)
}

type parsedOpts struct {
	set  map[string]bool
	vals map[string][]string
	args []string
}

// parseOptions mirrors grub_arg_parse: options anywhere, "--" ends them,
// --long=value or --long value, -s value; unknown dashed words are
// arguments when acceptDash.
func parseOptions(table []option, args []string, acceptDash bool) (parsedOpts, error) {
	po := parsedOpts{set: map[string]bool{}, vals: map[string][]string{}}
	find := func(long string, short byte) *option {
		for i := range table {
			if (long != "" && table[i].long == long) || (short != 0 && table[i].short == short) {
				return &table[i]
			}
		}
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			po.args = append(po.args, a)
			continue
		}
		if a == "--" {
			po.args = append(po.args, args[i+1:]...)
			break
		}
		var o *option
		val, hasVal := "", false
		if a[1] == '-' {
			name := a[2:]
			if n, v, ok := strings.Cut(name, "="); ok {
				name, val, hasVal = n, v, true
			}
			o = find(name, 0)
			if o == nil {
				if acceptDash {
					po.args = append(po.args, a)
					continue
				}
				return po, fmt.Errorf("unknown argument %q", a)
			}
			if !hasVal && o.arg && i+1 < len(args) && (len(args[i+1]) == 0 || args[i+1][0] != '-') {
				i++
				val, hasVal = args[i], true
			}
		} else {
			if len(a) != 2 {
				if acceptDash {
					po.args = append(po.args, a)
					continue
				}
				return po, fmt.Errorf("unknown argument %q", a)
			}
			o = find("", a[1])
			if o == nil {
				if acceptDash {
					po.args = append(po.args, a)
					continue
				}
				return po, fmt.Errorf("unknown argument %q", a)
			}
			if o.arg && i+1 < len(args) && (!o.optional || len(args[i+1]) < 2 || args[i+1][0] != '-') {
				i++
				val, hasVal = args[i], true
			}
		}
		if o.arg && !hasVal && !o.optional {
			return po, fmt.Errorf("missing value for --%s", o.long)
		}
		po.set[o.long] = true
		if hasVal {
			po.vals[o.long] = append(po.vals[o.long], val)
		}
	}
	return po, nil
}

func (po parsedOpts) val(name string) (string, bool) {
	v := po.vals[name]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

var menuentryOpts = []option{
	{long: "class", short: 1, arg: true},
	{long: "users", short: 2, arg: true, optional: true},
	{long: "hotkey", short: 3, arg: true},
	{long: "source", short: 4, arg: true},
	{long: "id", arg: true},
	{long: "unrestricted"},
}

func bMenuentry(in *interp, c *cmdNode, name string, args []string) int {
	po, err := parseOptions(menuentryOpts, args, true)
	if err != nil {
		in.note("line %d: %s: %v", c.ln, name, err)
		return stFail
	}
	if len(po.args) == 0 {
		in.note("line %d: %s: missing title", c.ln, name)
		return stFail
	}
	var body []node
	switch src, hasSrc := po.val("source"); {
	case c.block != nil && hasSrc:
		in.note("line %d: %s: multiple menuentry definitions", c.ln, name)
		return stFail
	case c.block != nil:
		body = c.block.body
	case hasSrc:
		body = in.parseScript(fmt.Sprintf("%s --source (line %d)", name, c.ln), src)
	default:
		in.note("line %d: %s: no menuentry definition", c.ln, name)
		return stFail
	}
	if in.entry != nil {
		in.note("line %d: %s inside a menu entry ignored", c.ln, name)
		return stOK
	}
	if len(in.fr.items) >= grub.MaxEntries {
		in.note("more than %d menu entries", grub.MaxEntries)
		return stFail
	}
	it := &menuItem{
		title:      po.args[0],
		classes:    po.vals["class"],
		restricted: !po.set["unrestricted"],
		args:       po.args,
		body:       body,
		submenu:    name == "submenu",
		line:       c.ln,
	}
	it.id, _ = po.val("id")
	if it.id == "" {
		it.id = it.title
	}
	if u, ok := po.val("users"); ok {
		it.users = splitUsers(u)
	}
	in.fr.items = append(in.fr.items, it)
	return stOK
}

// splitUsers splits a user list at GRUB's word separators.
func splitUsers(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || r == ',' || r == ';' || r == '|' || r == '&'
	})
}

var searchOpts = []option{
	{long: "file", short: 'f'}, {long: "label", short: 'l'}, {long: "fs-uuid", short: 'u'},
	{long: "set", short: 's', arg: true, optional: true},
	{long: "no-floppy", short: 'n'}, {long: "efidisk-only"}, {long: "cryptodisk-only"},
	{long: "root-dev-only", short: 'r'},
	{long: "hint", short: 'h', arg: true}, {long: "hint-ieee1275", arg: true},
	{long: "hint-bios", arg: true}, {long: "hint-baremetal", arg: true},
	{long: "hint-efi", arg: true}, {long: "hint-arc", arg: true},
}

func bSearch(in *interp, c *cmdNode, name string, args []string) int {
	po, err := parseOptions(searchOpts, args, true)
	if err != nil {
		in.note("line %d: search: %v", c.ln, err)
		return stFail
	}
	// Hints for platforms GRUB is not running on are skipped: we are
	// "xen", so --hint and --hint-baremetal apply.
	var rest []string
	for _, a := range po.args {
		if !strings.HasPrefix(a, "--hint-") {
			rest = append(rest, a)
		}
	}
	var key, varName string
	if po.set["set"] {
		varName = "root"
		if v, ok := po.val("set"); ok {
			varName = v
		}
	}
	switch {
	case len(rest) > 0:
		key = rest[0]
	case po.set["set"] && len(po.vals["set"]) > 0:
		key, varName = po.vals["set"][0], "root"
	default:
		in.note("line %d: search: one argument expected", c.ln)
		return stFail
	}
	var kind string
	switch {
	case po.set["label"]:
		kind = "label"
	case po.set["fs-uuid"]:
		kind = "uuid"
	case po.set["file"]:
		kind = "file"
	default:
		in.note("line %d: search: unspecified search type", c.ln)
		return stFail
	}
	hints := append(append([]string{}, po.vals["hint"]...), po.vals["hint-baremetal"]...)
	return in.search(kind, key, varName, hints)
}

func bSearchAlias(in *interp, c *cmdNode, name string, args []string) int {
	if len(args) == 0 {
		in.note("line %d: search: one argument expected", c.ln)
		return stFail
	}
	kind := map[string]string{"search.fs_uuid": "uuid", "search.fs_label": "label", "search.file": "file"}
	varName := ""
	if len(args) > 1 {
		varName = args[1]
	}
	var hints []string
	if len(args) > 2 {
		hints = args[2:]
	}
	return in.search(kind[name], args[0], varName, hints)
}

// search finds the first volume matching key, hinted devices first; with
// varName it sets that variable to the device name.
func (in *interp) search(kind, key, varName string, hints []string) int {
	if in.sys == nil {
		return stNotFound
	}
	match := func(v *grub.Volume) bool {
		switch kind {
		case "uuid":
			return v.UUID != "" && strings.EqualFold(v.UUID, key)
		case "label":
			return v.Label != "" && v.Label == key
		case "file":
			if v.FS == nil || !strings.HasPrefix(key, "/") {
				return false
			}
			_, err := fs.Stat(v.FS, grub.FSPath(key))
			return err == nil
		}
		return false
	}
	var order []*grub.Volume
	seen := map[*grub.Volume]bool{}
	for _, h := range hints {
		sub := strings.HasSuffix(h, ",")
		d, err := grub.ParseDevice(strings.TrimSuffix(h, ","), false)
		if err != nil {
			continue // hints naming devices we do not have (ahci0,msdos1)
		}
		for i := range in.sys.Volumes {
			v := &in.sys.Volumes[i]
			if v.Device.Same(d) || (sub && v.Device.Disk == d.Disk && d.Part == 0 && v.Device.Part > 0) {
				if !seen[v] {
					order = append(order, v)
					seen[v] = true
				}
			}
		}
	}
	for i := range in.sys.Volumes {
		if v := &in.sys.Volumes[i]; !seen[v] {
			order = append(order, v)
		}
	}
	for _, v := range order {
		if match(v) {
			if varName != "" {
				if !in.setVar(varName, v.Device.String()) {
					return stFail
				}
			}
			return stOK
		}
	}
	return stNotFound
}

var loadEnvOpts = []option{{long: "file", short: 'f', arg: true}, {long: "skip-sig", short: 's'}}

// envFile resolves load_env's file: -f FILE, or $prefix/grubenv.
func (in *interp) envFile(po parsedOpts) (grub.File, error) {
	name, ok := po.val("file")
	if !ok {
		prefix := in.getVar("prefix")
		if prefix == "" {
			return grub.File{}, errors.New("variable prefix is not set")
		}
		name = prefix + "/grubenv"
	}
	return in.resolve(name)
}

func bLoadEnv(in *interp, c *cmdNode, name string, args []string) int {
	po, err := parseOptions(loadEnvOpts, args, false)
	if err != nil {
		in.note("line %d: load_env: %v", c.ln, err)
		return stFail
	}
	f, err := in.envFile(po)
	if err != nil {
		in.note("line %d: load_env: %v", c.ln, err)
		return stFail
	}
	data, err := in.readFile(f, grub.MaxEnvSize)
	if err != nil {
		return stNotFound
	}
	env, err := grub.ParseEnv(data)
	if err != nil {
		in.note("line %d: load_env %s: %v", c.ln, f, err)
		return stFail
	}
	for _, name := range env.Names {
		if len(po.args) > 0 && !contains(po.args, name) {
			continue
		}
		in.setVar(name, env.Values[name])
	}
	return stOK
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// bSaveEnv never writes: the guest's disk is read-only to us. An entry
// saving saved_entry is marked SaveDefault so the menu can say so.
func bSaveEnv(in *interp, c *cmdNode, name string, args []string) int {
	if in.entry != nil {
		if contains(args, "saved_entry") {
			in.entry.e.SaveDefault = true
		}
		return stOK
	}
	in.note("save_env %s: not saved (gopvgrub never writes to the guest's disk)", strings.Join(args, " "))
	return stOK
}

// loadArgs resolves the file argument of linux/initrd/module.
func (in *interp) loadFile(c *cmdNode, cmd, name string) (grub.File, bool) {
	f, err := in.resolve(name)
	if err != nil {
		in.note("line %d: %s %s: %v", c.ln, cmd, truncate(name, 80), err)
		return grub.File{}, false
	}
	return f, true
}

func (in *interp) notInEntry(c *cmdNode, cmd string) bool {
	if in.entry == nil {
		in.note("line %d: %s outside a menu entry ignored", c.ln, cmd)
		return true
	}
	return false
}

func bLinux(in *interp, c *cmdNode, name string, args []string) int {
	if in.notInEntry(c, name) {
		return stOK
	}
	e := &in.entry.e
	// Options before the file name (linux --no-… in some loaders).
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		args = args[1:]
	}
	if len(args) == 0 {
		in.note("line %d: linux: filename expected", c.ln)
		return stFail
	}
	e.Kind = grub.KindLinux
	e.Kernel, e.Initrds, e.Modules = nil, nil, nil
	e.Cmdline = strings.Join(args[1:], " ")
	if r, err := in.root(); err == nil {
		e.Root = r
	}
	f, ok := in.loadFile(c, "linux", args[0])
	if !ok {
		return stNotFound
	}
	e.Kernel = &f
	return stOK
}

func bInitrd(in *interp, c *cmdNode, name string, args []string) int {
	if in.notInEntry(c, name) {
		return stOK
	}
	e := &in.entry.e
	if e.Kernel == nil {
		in.note("line %d: initrd: you need to load the kernel first", c.ln)
		return stFail
	}
	e.Initrds = nil
	for _, a := range args {
		if strings.HasPrefix(a, "--") {
			continue // --newc:name and friends
		}
		f, ok := in.loadFile(c, "initrd", a)
		if !ok {
			return stNotFound
		}
		e.Initrds = append(e.Initrds, f)
	}
	return stOK
}

func bMultiboot(in *interp, c *cmdNode, name string, args []string) int {
	if in.notInEntry(c, name) {
		return stOK
	}
	e := &in.entry.e
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		args = args[1:]
	}
	if len(args) == 0 {
		return stFail
	}
	e.Kind = grub.KindMultiboot
	e.Kernel, e.Initrds, e.Modules = nil, nil, nil
	e.Cmdline = strings.Join(args[1:], " ")
	if r, err := in.root(); err == nil {
		e.Root = r
	}
	f, ok := in.loadFile(c, "multiboot", args[0])
	if !ok {
		return stNotFound
	}
	e.Kernel = &f
	return stOK
}

func bModule(in *interp, c *cmdNode, name string, args []string) int {
	if in.notInEntry(c, name) {
		return stOK
	}
	e := &in.entry.e
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		args = args[1:] // --nounzip
	}
	if len(args) == 0 || e.Kernel == nil {
		return stFail
	}
	f, ok := in.loadFile(c, "module", args[0])
	if !ok {
		return stNotFound
	}
	e.Modules = append(e.Modules, grub.Module{File: f, Args: strings.Join(args[1:], " ")})
	return stOK
}

func bChainloader(in *interp, c *cmdNode, name string, _ []string) int {
	if in.notInEntry(c, "chainloader") {
		return stOK
	}
	in.entry.e.Kind = grub.KindChain
	in.note("chainloader cannot work in a Xen PV domain (no firmware)")
	return stOK
}

func bReturn(in *interp, c *cmdNode, name string, args []string) int {
	if in.scope == nil || len(args) > 1 {
		in.note("line %d: return: not in function body", c.ln)
		return stFail
	}
	st := in.status
	if len(args) == 1 {
		n, err := strconv.ParseUint(args[0], 10, 16)
		if err != nil {
			in.note("line %d: return: unrecognized number", c.ln)
			return stFail
		}
		st = int(n)
	}
	in.returning = true
	return st
}

func bBreak(in *interp, c *cmdNode, name string, args []string) int {
	n := 1
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 {
			in.note("line %d: break: bad count", c.ln)
			return stFail
		}
		n = v
	}
	if in.loops == 0 {
		return stOK
	}
	in.breaks = min(n, in.loops)
	in.cont = name == "continue"
	return stOK
}

func bShift(in *interp, c *cmdNode, name string, args []string) int {
	n := 1
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 0 {
			return stFail
		}
		n = v
	}
	if in.scope == nil || n > len(in.scope.args) {
		return stFail
	}
	in.scope.args = in.scope.args[n:]
	return stOK
}

func bSetparams(in *interp, _ *cmdNode, name string, args []string) int {
	if in.scope == nil {
		in.scope = &scope{}
	}
	in.scope.args = append([]string(nil), args...)
	return stOK
}

func bEval(in *interp, c *cmdNode, name string, args []string) int {
	if in.depth >= MaxDepth {
		in.note("line %d: eval: %v", c.ln, errTooDeep)
		return stFail
	}
	src := strings.Join(args, " ")
	in.depth++
	in.run(in.parseScript(fmt.Sprintf("eval (line %d)", c.ln), src))
	in.depth--
	return in.status
}

func bExit(in *interp, _ *cmdNode, name string, _ []string) int {
	in.stop = true
	return stOK
}

func bPassword(in *interp, c *cmdNode, name string, args []string) int {
	if len(args) != 2 {
		in.note("line %d: %s: two arguments expected", c.ln, name)
		return stFail
	}
	kind := grub.PassPlain
	if name == "password_pbkdf2" {
		kind = grub.PassPBKDF2
	}
	pw, err := grub.NewPassword(args[0], kind, args[1])
	if err != nil {
		in.note("line %d: %s: %v", c.ln, name, err)
		return stFail
	}
	for i, u := range in.users {
		if u.User == pw.User {
			in.users[i] = pw
			return stOK
		}
	}
	if len(in.users) < 256 {
		in.users = append(in.users, pw)
	}
	return stOK
}

var probeOpts = []option{
	{long: "set", short: 's', arg: true}, {long: "driver", short: 'd'}, {long: "partmap", short: 'p'},
	{long: "fs", short: 'f'}, {long: "fs-uuid", short: 'u'}, {long: "label", short: 'l'},
	{long: "part-uuid", short: 'g'},
}

// bProbe answers probe --fs-uuid/--label/--fs/--driver DEVICE [--set VAR].
func bProbe(in *interp, c *cmdNode, name string, args []string) int {
	po, err := parseOptions(probeOpts, args, false)
	if err != nil || len(po.args) != 1 {
		in.note("line %d: probe: device expected", c.ln)
		return stFail
	}
	d, err := grub.ParseDevice(po.args[0], false)
	if err != nil {
		return stNotFound
	}
	v, err := in.sys.Volume(d)
	if err != nil {
		return stNotFound
	}
	var val string
	switch {
	case po.set["fs-uuid"]:
		val = v.UUID
	case po.set["label"]:
		val = v.Label
	case po.set["fs"]:
		val = v.Type
	case po.set["driver"]:
		val = "xen"
	case po.set["partmap"]:
		val = v.Device.Scheme
	default:
		return stFail
	}
	if val == "" {
		return stFail
	}
	if name, ok := po.val("set"); ok {
		if !in.setVar(name, val) {
			return stFail
		}
	}
	return stOK
}

var regexpOpts = []option{{long: "set", short: 's', arg: true}}

// bRegexp: regexp [--set [N:]VAR]… REGEX STRING, with Go's POSIX ERE
// engine (linear time, so no hostile pattern can stall us).
func bRegexp(in *interp, c *cmdNode, name string, args []string) int {
	po, err := parseOptions(regexpOpts, args, false)
	if err != nil || len(po.args) != 2 {
		in.note("line %d: regexp: two arguments expected", c.ln)
		return stFail
	}
	re, err := regexp.CompilePOSIX(po.args[0])
	if err != nil {
		in.note("line %d: regexp: %v", c.ln, err)
		return stFail
	}
	m := re.FindStringSubmatch(po.args[1])
	if m == nil {
		return stFail
	}
	for _, s := range po.vals["set"] {
		n, name := 1, s
		if a, b, ok := strings.Cut(s, ":"); ok {
			v, err := strconv.Atoi(a)
			if err != nil || v < 0 {
				return stFail
			}
			n, name = v, b
		}
		if n < len(m) {
			in.setVar(name, m[n])
		}
	}
	return stOK
}

// fileInfo is test's view of a file: the name may be "(dev)" alone.
func (in *interp) fileInfo(name string) (exists, dir bool, size int64) {
	f, err := in.resolve(name)
	if err != nil || in.sys == nil {
		return false, false, 0
	}
	st, err := in.sys.Stat(f)
	if err != nil {
		return false, false, 0
	}
	return true, st.IsDir(), st.Size()
}

var _ = path.Clean
