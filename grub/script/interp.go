package script

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/gopvgrub/gopvgrub/grub"
)

// Budgets: what a hostile grub.cfg can make the interpreter do.
const (
	MaxSteps      = 500_000 // commands executed running the config, and again evaluating all entries
	MaxEntrySteps = 5_000   // commands one menu entry's body may execute
	MaxDepth      = 64      // nested function calls, source, eval, submenus
	MaxFiles      = 64      // config files read per Load (source, configfile, grubenv…)
	MaxValue      = 64 << 10
	MaxVars       = 4096
	MaxEnvBytes   = 1 << 20
	MaxArgs       = 4096
)

// stepLimit and entryStepLimit are the budgets in force; tests lower them.
var (
	stepLimit      = MaxSteps
	entryStepLimit = MaxEntrySteps
)

var (
	errBudget   = errors.New("evaluation budget exhausted (a loop or runaway recursion?)")
	errTooDeep  = errors.New("nested too deeply")
	errTooLarge = errors.New("value too large")
)

// status codes, as GRUB's $?: 0 is success.
const (
	stOK       = 0
	stFail     = 1
	stNotFound = 5 // GRUB_ERR_FILE_NOT_FOUND-ish; any non-zero is false
	stUnknown  = 9
)

// vars is one GRUB environment context.
type vars struct {
	m        map[string]string
	exported map[string]bool
	bytes    int
}

func newVars() *vars { return &vars{m: map[string]string{}, exported: map[string]bool{}} }

// clone copies every variable, as grub_env_context_open does.
func (v *vars) clone() *vars {
	n := &vars{m: make(map[string]string, len(v.m)), exported: make(map[string]bool, len(v.exported)), bytes: v.bytes}
	for k, val := range v.m {
		n.m[k] = val
	}
	for k := range v.exported {
		n.exported[k] = true
	}
	return n
}

func (v *vars) get(name string) (string, bool) {
	s, ok := v.m[name]
	return s, ok
}

func (v *vars) set(name, val string) error {
	if len(val) > MaxValue || len(name) > 256 {
		return errTooLarge
	}
	if name == "root" && len(val) >= 2 && val[0] == '(' && val[len(val)-1] == ')' {
		val = val[1 : len(val)-1] // GRUB's write hook on root
	}
	old, had := v.m[name]
	if !had && len(v.m) >= MaxVars {
		return errTooLarge
	}
	nb := v.bytes - len(old) + len(val)
	if !had {
		nb += len(name)
	}
	if nb > MaxEnvBytes {
		return errTooLarge
	}
	v.m[name], v.bytes = val, nb
	return nil
}

func (v *vars) unset(name string) {
	if old, ok := v.m[name]; ok {
		v.bytes -= len(old) + len(name)
		delete(v.m, name)
	}
	delete(v.exported, name)
}

// menuItem is a menuentry or submenu as registered by the config; its body
// is evaluated after the config ran, as GRUB does when it is selected.
type menuItem struct {
	title      string
	id         string
	classes    []string
	restricted bool
	users      []string
	args       []string // positional parameters of the body ($1 is the title)
	body       []node
	submenu    bool
	bls        *blsBody
	ready      *grub.Entry // an entry another format's parser produced
	line       int
}

// frame is one menu context: its variables and the items registered in it.
type frame struct {
	vars  *vars
	items []*menuItem
	// replaced is set when a configfile showed a menu of its own: that
	// menu is what the user sees.
	replaced *frame
}

// entryState collects what an entry body loads.
type entryState struct {
	e     grub.Entry
	steps int
	// sub holds the entries of a menu a configfile in the body produced.
	sub []grub.Entry
}

// scope holds the positional parameters of a function or entry body.
type scope struct {
	args []string
}

type interp struct {
	sys      *grub.System
	menu     *grub.Menu // collects notes
	fr       *frame
	funcs    map[string]*funcNode
	scope    *scope
	entry    *entryState
	users    []grub.Password
	steps    int
	depth    int
	files    int
	blsFiles int // BLS entry files read by blscfg
	status   int
	// control flow
	returning bool
	breaks    int  // loop levels to leave
	cont      bool // the break is a continue
	stop      bool // exit, configfile replacement, or budget exhausted
	loops     int
	fatal     error
}

func (in *interp) note(format string, args ...any) {
	if in.entry != nil {
		s := fmt.Sprintf(format, args...)
		for _, n := range in.entry.e.Notes {
			if n == s {
				return
			}
		}
		if len(in.entry.e.Notes) < 16 {
			in.entry.e.Notes = append(in.entry.e.Notes, s)
		}
		return
	}
	in.menu.Note(format, args...)
}

func (in *interp) getVar(name string) string {
	switch name {
	case "?":
		return strconv.Itoa(in.status)
	case "#", "*", "@":
		if in.scope == nil {
			return ""
		}
		if name == "#" {
			return strconv.Itoa(len(in.scope.args))
		}
		return strings.Join(in.scope.args, " ")
	}
	if name[0] >= '0' && name[0] <= '9' {
		n, err := strconv.Atoi(name)
		if err != nil || n == 0 || in.scope == nil || n > len(in.scope.args) {
			return ""
		}
		return in.scope.args[n-1]
	}
	v, _ := in.fr.vars.get(name)
	return v
}

func (in *interp) setVar(name, val string) bool {
	if err := in.fr.vars.set(name, val); err != nil {
		in.note("set %.40s: %v", name, err)
		return false
	}
	return true
}

// expand turns words into arguments as grub_script_arglist_to_argv does.
func (in *interp) expand(words []word) ([]string, error) {
	var out []string
	total := 0
	for _, w := range words {
		var cur *strings.Builder
		var args []string
		flush := func() {
			if cur != nil {
				args = append(args, cur.String())
				cur = nil
			}
		}
		add := func(s string) {
			if cur == nil {
				cur = &strings.Builder{}
			}
			cur.WriteString(s)
		}
		for _, p := range w {
			switch p.kind {
			case pLit:
				if p.s != "" {
					add(p.s)
				}
			case pQuot:
				add(p.s)
			case pQVar:
				if v := in.getVar(p.s); v != "" {
					add(v)
				}
			case pVar:
				var pieces []string
				if (p.s == "@" || p.s == "*") && in.scope != nil {
					for _, a := range in.scope.args {
						pieces = append(pieces, strings.Fields(a)...)
					}
				} else {
					pieces = strings.Fields(in.getVar(p.s))
				}
				for i, piece := range pieces {
					if i > 0 {
						flush()
					}
					add(piece)
				}
			}
			if cur != nil && cur.Len() > MaxValue {
				return nil, errTooLarge
			}
		}
		flush()
		for _, a := range args {
			total += len(a)
		}
		out = append(out, args...)
		if len(out) > MaxArgs || total > MaxEnvBytes {
			return nil, errTooLarge
		}
	}
	return out, nil
}

// step charges one command to the budgets.
func (in *interp) step() bool {
	in.steps++
	if in.entry != nil {
		in.entry.steps++
		if in.entry.steps > entryStepLimit {
			if !in.stop {
				in.note("%v", errBudget)
			}
			in.stop = true // this entry only
			return false
		}
	}
	if in.steps > stepLimit {
		in.fail(errBudget)
		return false
	}
	return true
}

// fail stops evaluation for good.
func (in *interp) fail(err error) {
	if in.fatal == nil {
		in.fatal = err
		in.note("%v", err)
	}
	in.stop = true
}

func (in *interp) halted() bool {
	return in.stop || in.returning || in.breaks > 0
}

// run executes a command list; it returns the last status.
func (in *interp) run(list []node) int {
	for _, n := range list {
		if in.halted() {
			break
		}
		in.exec(n)
	}
	return in.status
}

func (in *interp) exec(n node) {
	if !in.step() {
		return
	}
	switch n := n.(type) {
	case *cmdNode:
		in.execCmd(n)
	case *ifNode:
		in.run(n.cond)
		if in.halted() {
			return
		}
		if in.status == stOK {
			in.run(n.then)
		} else if n.els != nil {
			in.run(n.els)
		}
	case *forNode:
		vals, err := in.expand(n.words)
		if err != nil {
			in.note("line %d: for: %v", n.ln, err)
			in.status = stFail
			return
		}
		in.loops++
		for _, v := range vals {
			if in.breaks == 1 && in.cont {
				in.breaks, in.cont = 0, false
			}
			if in.halted() {
				break
			}
			in.setVar(n.name, v)
			in.run(n.body)
		}
		in.endLoop()
	case *whileNode:
		in.loops++
		for !in.halted() {
			in.run(n.cond)
			if in.halted() {
				break
			}
			ok := in.status == stOK
			if ok == n.until {
				break
			}
			in.run(n.body)
			if in.breaks == 1 && in.cont {
				in.breaks, in.cont = 0, false
			}
			if !in.step() {
				break
			}
		}
		in.endLoop()
	case *funcNode:
		if len(in.funcs) >= 1024 && in.funcs[n.name] == nil {
			in.note("line %d: too many functions", n.ln)
			return
		}
		in.funcs[n.name] = n
		in.status = stOK
	}
}

func (in *interp) endLoop() {
	in.loops--
	if in.breaks > 0 {
		in.breaks--
		in.cont = false
	}
}

func (in *interp) execCmd(c *cmdNode) {
	args, err := in.expand(c.words)
	if err != nil {
		in.note("line %d: %v", c.ln, err)
		in.status = stFail
		return
	}
	if len(args) == 0 {
		// Every word expanded to nothing: GRUB does nothing.
		return
	}
	invert := false
	if args[0] == "!" {
		if len(args) < 2 {
			in.status = stFail
			return
		}
		invert, args = true, args[1:]
	}
	st := in.call(c, args[0], args[1:])
	if invert {
		if st == stOK {
			st = stFail
		} else {
			st = stOK
		}
	}
	in.status = st
}

// call runs a builtin, a function, or an assignment.
func (in *interp) call(c *cmdNode, name string, args []string) int {
	if b, ok := builtins[name]; ok {
		return b(in, c, name, args)
	}
	if f, ok := in.funcs[name]; ok {
		return in.callFunc(f, args)
	}
	if eq := strings.IndexByte(name, '='); eq > 0 {
		// "name=value" with no such command is an assignment.
		if in.setVar(name[:eq], name[eq+1:]) {
			return stOK
		}
		return stFail
	}
	if ignored[name] {
		return stOK
	}
	in.note("line %d: unknown command %q ignored", c.ln, truncate(name, 40))
	return stUnknown
}

func (in *interp) callFunc(f *funcNode, args []string) int {
	if in.depth >= MaxDepth {
		in.note("line %d: %s: %v", f.ln, f.name, errTooDeep)
		return stFail
	}
	in.depth++
	saved, savedLoops := in.scope, in.loops
	in.scope, in.loops = &scope{args: args}, 0
	in.run(f.body)
	in.scope, in.loops = saved, savedLoops
	in.depth--
	in.returning = false
	in.breaks = 0
	return in.status
}

// resolve turns a GRUB file name into a File relative to $root.
func (in *interp) resolve(name string) (grub.File, error) {
	root, err := in.root()
	if err != nil && !strings.HasPrefix(name, "(") {
		return grub.File{}, err
	}
	f, err := grub.ParseFile(name, root, false)
	if err != nil {
		return f, err
	}
	// SUSE's GRUB resolves paths on btrfs inside $btrfs_subvol when
	// btrfs_relative_path is set: how openSUSE boots a snapshot.
	if sub := in.getVar("btrfs_subvol"); sub != "" {
		switch in.getVar("btrfs_relative_path") {
		case "y", "yes", "1", "true":
			if v, err := in.sys.Volume(f.Device); err == nil && v.Type == "btrfs" {
				f.Path = path.Join("/", sub, f.Path)
			}
		}
	}
	return f, nil
}

// root parses $root.
func (in *interp) root() (grub.Device, error) {
	r := in.getVar("root")
	if r == "" {
		return grub.Device{}, fmt.Errorf("variable root is not set")
	}
	return grub.ParseDevice(r, false)
}

// readFile reads a config-ish file, charging the file budget.
func (in *interp) readFile(f grub.File, max int64) ([]byte, error) {
	if in.files >= MaxFiles {
		return nil, fmt.Errorf("more than %d files read", MaxFiles)
	}
	in.files++
	return in.sys.ReadFile(f, max)
}

// parseScript parses src the way GRUB reads a config: statement by
// statement; a syntax error drops that statement and parsing resumes on
// the next line.
func (in *interp) parseScript(name, src string) []node {
	var out []node
	p := newParser(src, 0, 1)
	for {
		n, err := p.statement()
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				in.note("%s: %v", name, err)
				return out
			}
			in.note("%s: %v", name, se)
			off := lineOffset(src, se.Line+1)
			if off < 0 {
				return out
			}
			p = newParser(src, off, se.Line+1)
			continue
		}
		if n == nil {
			return out
		}
		out = append(out, n)
	}
}

// lineOffset returns the byte offset where line n (1-based) starts, or -1.
func lineOffset(src string, n int) int {
	off := 0
	for l := 1; l < n; l++ {
		i := strings.IndexByte(src[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	return off
}

// runFile executes a config file in the current frame: source, and the
// body of configfile in its new frame. It sets config_file and
// config_directory for the duration, as read_config_file does.
func (in *interp) runFile(f grub.File) int {
	if in.depth >= MaxDepth {
		in.note("%s: %v", f, errTooDeep)
		return stFail
	}
	data, err := in.readFile(f, grub.MaxConfigSize)
	if err != nil {
		in.note("%v", err)
		return stNotFound
	}
	oldFile, hadFile := in.fr.vars.get("config_file")
	oldDir, hadDir := in.fr.vars.get("config_directory")
	in.setVar("config_file", f.String())
	in.setVar("config_directory", "("+f.Device.String()+")"+path.Dir(f.Path))
	in.fr.vars.exported["config_file"] = true
	in.fr.vars.exported["config_directory"] = true
	in.depth++
	in.run(in.parseScript(f.String(), string(data)))
	in.depth--
	restore := func(name, old string, had bool) {
		if had {
			in.setVar(name, old)
		} else {
			in.fr.vars.unset(name)
		}
	}
	restore("config_file", oldFile, hadFile)
	restore("config_directory", oldDir, hadDir)
	return in.status
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
