// Command gopvgrub is gopvgrub's host tool: it reads a guest's disk images
// with the same code the PV bootloader runs and shows or extracts what it
// would boot, as PyGrub does for debugging and migration.
//
//	gopvgrub inspect [--json] [--extra CONFIG] IMAGE...
//	gopvgrub extract [--entry N|ID|TITLE] [--extra CONFIG] --out DIR IMAGE...
//	gopvgrub layout-check -image FILE -initrd-size N [-xen-patch P] [-golden OUT] DUMP
//
// The images are the guest's disks in order: the first is hd0. --extra is
// what the domain's extra= would say, e.g. "(hd0,0)/boot/grub/menu.lst";
// without it the config is discovered as the bootloader discovers it.
// extract writes the kernel, the initrds (under their own names) and a
// file "cmdline" into DIR.
//
// layout-check runs in dom0 after a kernel FILE was booted directly by
// the toolstack with an initrd of N bytes: it reads the LAYOUT dump the
// kernel printed (a console log, DUMP) and reports every difference from
// what package loader/layout plans (see loader/layout/xendump). -golden
// records the run for the unit tests.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gopvgrub/gopvgrub/fs"
	"github.com/gopvgrub/gopvgrub/grub"
	"github.com/gopvgrub/gopvgrub/grub/discover"
	"github.com/gopvgrub/gopvgrub/loader"
	"github.com/gopvgrub/gopvgrub/loader/layout"
	"github.com/gopvgrub/gopvgrub/loader/layout/xendump"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage:
  gopvgrub inspect [--json] [--extra CONFIG] IMAGE...
  gopvgrub extract [--entry N|ID|TITLE] [--extra CONFIG] --out DIR IMAGE...
  gopvgrub layout-check -image FILE -initrd-size N [-xen-patch P] [-golden OUT] DUMP

IMAGEs are the guest's disks in order (the first is hd0). CONFIG names the
config as the domain's extra= would, e.g. "(hd0,0)/boot/grub/menu.lst".
layout-check compares the LAYOUT dump in the console log DUMP of kernel
FILE, booted by the toolstack with an N-byte initrd under Xen 4.17.P, with
the planned layout; exit status 1 on any mismatch. OUT is written as a
golden file whatever the outcome.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "inspect":
		err = inspect(args[1:], stdout)
	case "extract":
		err = extract(args[1:], stdout)
	case "layout-check":
		err = layoutCheck(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gopvgrub: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, errFailed) {
		return 1
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "gopvgrub: %v\n%s", err, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "gopvgrub: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ error }

// errFailed: the command has printed why it failed; exit 1 quietly.
var errFailed = errors.New("failed")

// fileDisk is a disk image file.
type fileDisk struct {
	*os.File
	size int64
}

func (d fileDisk) Size() int64 { return d.size }

// openImages opens the images as disks hd0, hd1, … and discovers the menu.
func openImages(images []string, extra string) (*grub.System, *grub.Menu, []string, func(), error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	var disks []fs.Disk
	for _, name := range images {
		f, err := os.Open(name)
		if err != nil {
			closeAll()
			return nil, nil, nil, nil, err
		}
		files = append(files, f)
		st, err := f.Stat()
		if err != nil {
			closeAll()
			return nil, nil, nil, nil, err
		}
		if st.IsDir() {
			closeAll()
			return nil, nil, nil, nil, fmt.Errorf("%s: a directory, not a disk image", name)
		}
		disks = append(disks, fileDisk{f, st.Size()})
	}
	sys, errs := grub.FromDisks(fs.NewDisks(disks...))
	var warnings []string
	for _, e := range errs {
		warnings = append(warnings, e.Error())
	}
	m, err := discover.Discover(sys, extra)
	if err != nil {
		closeAll()
		if len(sys.Volumes) == 0 {
			why := ""
			if len(warnings) > 0 {
				why = " (" + strings.Join(warnings, "; ") + ")"
			}
			err = fmt.Errorf("%s: no filesystem gopvgrub can read%s: %w", strings.Join(images, ", "), why, err)
		} else {
			err = fmt.Errorf("%s: %w", strings.Join(images, ", "), err)
		}
		return nil, nil, nil, nil, err
	}
	return sys, m, warnings, closeAll, nil
}

// fileInfo is a kernel or initrd as inspect reports it.
type fileInfo struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Error string `json:"error,omitempty"`
}

type volumeInfo struct {
	Device string `json:"device"`
	Type   string `json:"type"`
	UUID   string `json:"uuid,omitempty"`
	Label  string `json:"label,omitempty"`
}

type report struct {
	Images   []string     `json:"images"`
	Volumes  []volumeInfo `json:"volumes"`
	Warnings []string     `json:"warnings,omitempty"`
	Menu     *grub.Menu   `json:"menu"`
	Files    []fileInfo   `json:"files"`
}

func stat(sys *grub.System, f grub.File) fileInfo {
	fi := fileInfo{Path: f.String(), Size: -1}
	st, err := sys.Stat(f)
	switch {
	case err != nil:
		fi.Error = err.Error()
	case st.IsDir():
		fi.Error = "is a directory"
	default:
		fi.Size = st.Size()
	}
	return fi
}

func inspect(args []string, out io.Writer) error {
	fl := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	asJSON := fl.Bool("json", false, "print JSON")
	extra := fl.String("extra", "", "the config location, as extra= says it")
	if err := fl.Parse(args); err != nil {
		return usageError{err}
	}
	if fl.NArg() == 0 {
		return usageError{errors.New("inspect: no image given")}
	}
	sys, m, warnings, done, err := openImages(fl.Args(), *extra)
	if err != nil {
		return err
	}
	defer done()
	r := report{Images: fl.Args(), Menu: m, Warnings: warnings, Volumes: []volumeInfo{}, Files: []fileInfo{}}
	for _, v := range sys.Volumes {
		r.Volumes = append(r.Volumes, volumeInfo{"(" + v.Device.String() + ")", v.Type, v.UUID, v.Label})
	}
	sizes := map[string]fileInfo{}
	add := func(f grub.File) fileInfo {
		if fi, ok := sizes[f.String()]; ok {
			return fi
		}
		fi := stat(sys, f)
		sizes[f.String()] = fi
		r.Files = append(r.Files, fi)
		return fi
	}
	for _, e := range m.Entries {
		if e.Kernel != nil {
			add(*e.Kernel)
		}
		for _, i := range e.Initrds {
			add(i)
		}
		for _, mod := range e.Modules {
			add(mod.File)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	w := &errWriter{w: out}
	w.printf("Config:   %s (%s)\n", m.Source, m.Format)
	timeout := "none (waits for a key)"
	if m.Timeout >= 0 {
		timeout = m.Timeout.String()
	}
	w.printf("Default:  %d\nTimeout:  %s", m.Default, timeout)
	if m.Hidden {
		w.printf(" (hidden menu)")
	}
	w.printf("\n")
	if len(m.Fallback) > 0 {
		w.printf("Fallback: %s\n", ints(m.Fallback))
	}
	if m.Auth != nil {
		if m.Auth.NamedUsers() {
			w.printf("Password: yes (superusers: %s)\n", strings.Join(m.Auth.Superusers, " "))
		} else {
			w.printf("Password: yes\n")
		}
	}
	w.printf("Volumes:\n")
	for _, v := range r.Volumes {
		w.printf("  %-14s %-8s UUID=%s LABEL=%s\n", v.Device, v.Type, v.UUID, v.Label)
	}
	w.printf("Entries:\n")
	describe := func(kind string, f grub.File, args string) {
		fi := sizes[f.String()]
		size := fmt.Sprintf("%d bytes", fi.Size)
		if fi.Error != "" {
			size = "MISSING: " + fi.Error
		}
		w.printf("        %-7s %s (%s)%s\n", kind, f, size, args)
	}
	for i, e := range m.Entries {
		mark := " "
		if i == m.Default {
			mark = "*"
		}
		w.printf("%s %3d  %s", mark, i, strings.Join(append(append([]string{}, e.Submenu...), e.Title), " > "))
		if e.Kind != grub.KindLinux {
			w.printf("  [%s]", e.Kind)
		}
		if m.BootLocked(&e) {
			w.printf("  [locked]")
		}
		w.printf("\n")
		if e.Kernel != nil {
			describe("kernel", *e.Kernel, "")
		}
		for _, f := range e.Initrds {
			describe("initrd", f, "")
		}
		for _, mod := range e.Modules {
			describe("module", mod.File, " "+mod.Args)
		}
		if e.Kind == grub.KindLinux || e.Cmdline != "" {
			w.printf("        cmdline %s\n", e.Cmdline)
		}
		for _, n := range e.Notes {
			w.printf("        note    %s\n", n)
		}
	}
	if len(m.Notes) > 0 || len(warnings) > 0 {
		w.printf("Notes:\n")
		for _, n := range append(append([]string{}, warnings...), m.Notes...) {
			w.printf("  %s\n", n)
		}
	}
	return w.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " ")
}

func extract(args []string, out io.Writer) error {
	fl := flag.NewFlagSet("extract", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	entry := fl.String("entry", "", "entry index, id or title path (default: the menu's default)")
	extra := fl.String("extra", "", "the config location, as extra= says it")
	dir := fl.String("out", "", "directory to write into")
	if err := fl.Parse(args); err != nil {
		return usageError{err}
	}
	if fl.NArg() == 0 || *dir == "" {
		return usageError{errors.New("extract: an image and --out are needed")}
	}
	sys, m, _, done, err := openImages(fl.Args(), *extra)
	if err != nil {
		return err
	}
	defer done()
	i := m.Default
	if *entry != "" {
		if n, err := strconv.Atoi(*entry); err == nil {
			i = n
		} else {
			i = m.Find(*entry)
		}
		if i < 0 || i >= len(m.Entries) {
			return fmt.Errorf("extract: no entry %q (there are %d)", *entry, len(m.Entries))
		}
	}
	e := m.Entries[i]
	if !e.Bootable() {
		return fmt.Errorf("extract: entry %d (%s) has no Linux kernel to extract (%s)%s", i, e.Title, e.Kind, noteSuffix(e.Notes))
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	used := map[string]bool{"cmdline": true}
	write := func(kind string, f grub.File) (string, error) {
		name := path.Base(f.Path)
		if name == "/" || name == "." || name == "" {
			name = "file"
		}
		for n := 1; used[name]; n++ {
			name = fmt.Sprintf("%s.%d", path.Base(f.Path), n)
		}
		used[name] = true
		src, err := sys.Open(f)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
		defer src.Close()
		dst, err := os.Create(filepath.Join(*dir, name))
		if err != nil {
			return "", err
		}
		n, err := io.Copy(dst, src)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
		fmt.Fprintf(out, "  %-7s %s -> %s (%d bytes)\n", kind, f, filepath.Join(*dir, name), n)
		return name, nil
	}
	fmt.Fprintf(out, "entry %d: %s\n", i, e.Path())
	if _, err := write("kernel", *e.Kernel); err != nil {
		return err
	}
	for _, f := range e.Initrds {
		if _, err := write("initrd", f); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(*dir, "cmdline"), []byte(e.Cmdline+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "  cmdline %q -> %s\n", e.Cmdline, filepath.Join(*dir, "cmdline"))
	return nil
}

func noteSuffix(notes []string) string {
	if len(notes) == 0 {
		return ""
	}
	return ": " + strings.Join(notes, "; ")
}

// kernelLimit bounds the kernel file and its decompressed vmlinux.
const kernelLimit = 1 << 30

func layoutCheck(args []string, out io.Writer) error {
	fl := flag.NewFlagSet("layout-check", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	image := fl.String("image", "", "the kernel the toolstack booted")
	initrd := fl.String("initrd-size", "", "bytes of the initrd it loaded, 0 for none")
	patch := fl.Int("xen-patch", -1, "Xen's patch level P of 4.17.P, if known")
	golden := fl.String("golden", "", "write the run as a golden file")
	if err := fl.Parse(args); err != nil {
		return usageError{err}
	}
	if fl.NArg() != 1 || *image == "" || *initrd == "" {
		return usageError{errors.New("layout-check: -image, -initrd-size and one DUMP are needed")}
	}
	size, err := strconv.ParseUint(*initrd, 10, 64)
	if err != nil {
		return usageError{fmt.Errorf("layout-check: -initrd-size: %w", err)}
	}
	k, err := readKernel(*image)
	if err != nil {
		return fmt.Errorf("layout-check: %w", err)
	}
	f, err := os.Open(fl.Arg(0))
	if err != nil {
		return fmt.Errorf("layout-check: %w", err)
	}
	d, err := xendump.Parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("layout-check: %s: %w", fl.Arg(0), err)
	}
	var opts []xendump.Option
	if *patch >= 0 {
		opts = append(opts, xendump.XenPatch(*patch))
	}
	img := k.LayoutImage()
	r, err := xendump.Compare(d, img, size, opts...)
	if err != nil {
		return fmt.Errorf("layout-check: %s: %w", fl.Arg(0), err)
	}
	if *golden != "" {
		if err := writeGolden(*golden, d, img, size, opts); err != nil {
			return fmt.Errorf("layout-check: %w", err)
		}
	}
	w := &errWriter{w: out}
	for _, m := range r.Mismatches {
		w.printf("layout-check: %s\n", m)
	}
	w.printf("layout-check: %s\n", r.Summary())
	if w.err != nil {
		return w.err
	}
	if !r.OK() {
		return errFailed
	}
	return nil
}

func readKernel(name string) (*loader.Kernel, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	k, err := loader.ParseKernel(f, st.Size(), kernelLimit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}

// writeGolden replaces name whole: a half-written golden would fail the
// unit tests for the wrong reason.
func writeGolden(name string, d *xendump.Dump, img layout.Image, size uint64, opts []xendump.Option) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("golden: %w", err)
	}
	err = xendump.WriteGolden(tmp, d, img, size, opts...)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("golden %s: %w", name, err)
	}
	return nil
}
