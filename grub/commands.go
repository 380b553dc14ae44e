package grub

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNoKernel is returned for a command list that loads no kernel.
var ErrNoKernel = errors.New("no kernel loaded (use linux or kernel first)")

// DeviceName returns d in the syntax of a menu's format: GRUB legacy's
// 0-based "(hd0,0)" when legacy and d has no scheme, else GRUB 2's.
func DeviceName(d Device, legacy bool) string {
	if legacy && !d.Net && d.Part > 0 && d.Scheme == "" {
		return "(hd" + strconv.Itoa(d.Disk) + "," + strconv.Itoa(d.Part-1) + ")"
	}
	return "(" + d.String() + ")"
}

func fileName(f File, root Device, legacy bool) string {
	if f.Device == root {
		return f.Path
	}
	return DeviceName(f.Device, legacy) + f.Path
}

// Commands renders the entry as the simple commands the editor shows and
// ParseCommands reads back: root, then linux (or multiboot and module),
// then initrd. legacy selects menu.lst device syntax.
func (e *Entry) Commands(legacy bool) []string {
	lines := []string{"root " + DeviceName(e.Root, legacy)}
	join := func(cmd, file, args string) string {
		if args == "" {
			return cmd + " " + file
		}
		return cmd + " " + file + " " + args
	}
	kernel := "linux"
	if legacy {
		kernel = "kernel"
	}
	switch {
	case e.Kind == KindMultiboot && e.Kernel != nil:
		lines = append(lines, join("multiboot", fileName(*e.Kernel, e.Root, legacy), e.Cmdline))
		for _, m := range e.Modules {
			lines = append(lines, join("module", fileName(m.File, e.Root, legacy), m.Args))
		}
	case e.Kernel != nil:
		lines = append(lines, join(kernel, fileName(*e.Kernel, e.Root, legacy), e.Cmdline))
	}
	if len(e.Initrds) > 0 {
		names := make([]string, len(e.Initrds))
		for i, f := range e.Initrds {
			names[i] = fileName(f, e.Root, legacy)
		}
		lines = append(lines, "initrd "+strings.Join(names, " "))
	}
	return lines
}

// ParseCommands builds an entry from commands typed in the editor or on
// the command line: root DEVICE (also "set root=DEVICE" and rootnoverify),
// linux/linux16/linuxefi/kernel FILE ARGS, initrd/initrd16/initrdefi FILE…,
// multiboot FILE ARGS, module FILE ARGS (an initrd unless multiboot was
// given, as in PV-GRUB), and boot (ignored). Blank lines and # comments are
// skipped. root is the starting root device.
func ParseCommands(lines []string, root Device, legacy bool) (Entry, error) {
	e := Entry{Kind: KindNone, Root: root}
	for n, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		if v, ok := strings.CutPrefix(line, "set root="); ok {
			cmd, rest = "setroot", strings.Trim(v, `'"`)
		}
		fail := func(err error) (Entry, error) { return Entry{}, fmt.Errorf("line %d: %s: %w", n+1, cmd, err) }
		file := func(s string) (File, error) { return ParseFile(s, e.Root, legacy) }
		switch cmd {
		case "root", "rootnoverify", "setroot":
			d, err := ParseDevice(firstWord(rest), legacy && cmd != "setroot")
			if err != nil {
				return fail(err)
			}
			e.Root = d
		case "linux", "linux16", "linuxefi", "kernel", "multiboot", "multiboot2":
			p, args := cutWord(rest)
			if p == "" {
				return fail(errors.New("filename expected"))
			}
			f, err := file(p)
			if err != nil {
				return fail(err)
			}
			e.Kernel, e.Cmdline, e.Modules, e.Initrds = &f, args, nil, nil
			e.Kind = KindLinux
			if strings.HasPrefix(cmd, "multiboot") {
				e.Kind = KindMultiboot
			}
		case "initrd", "initrd16", "initrdefi":
			if e.Kernel == nil {
				return fail(ErrNoKernel)
			}
			e.Initrds = nil
			for _, p := range strings.Fields(rest) {
				f, err := file(p)
				if err != nil {
					return fail(err)
				}
				e.Initrds = append(e.Initrds, f)
			}
			if len(e.Initrds) == 0 {
				return fail(errors.New("filename expected"))
			}
		case "module", "modulenounzip":
			if e.Kernel == nil {
				return fail(ErrNoKernel)
			}
			p, args := cutWord(rest)
			if p == "--nounzip" {
				p, args = cutWord(args)
			}
			if p == "" {
				return fail(errors.New("filename expected"))
			}
			f, err := file(p)
			if err != nil {
				return fail(err)
			}
			if e.Kind == KindMultiboot {
				e.Modules = append(e.Modules, Module{File: f, Args: args})
			} else {
				e.Initrds = append(e.Initrds, f)
			}
		case "boot":
		default:
			return fail(errors.New("unknown command"))
		}
	}
	if e.Kernel == nil {
		return Entry{}, ErrNoKernel
	}
	return e, nil
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
