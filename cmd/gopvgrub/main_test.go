package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/grub"
	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/loader"
	"github.com/gopvgrub/gopvgrub/loader/layout"
	"github.com/gopvgrub/gopvgrub/loader/layout/xendump"
)

const corpus = "../../testdata/grub"

type caseFile struct {
	Extra   string `json:"extra"`
	Volumes []struct {
		Device string `json:"device"`
		UUID   string `json:"uuid"`
		Label  string `json:"label"`
		Dir    string `json:"dir"`
	} `json:"volumes"`
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func sh(t *testing.T, name string, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// buildImage makes a disk image holding a corpus case's volumes: ext4
// filesystems made by mke2fs -d from the volume trees (with the case's
// UUIDs and labels), in MBR or GPT partitions made by sfdisk with the
// case's partition numbers, or directly on the disk for "hd0".
func buildImage(t *testing.T, name string) (string, caseFile) {
	t.Helper()
	testassets.NeedTools(t, "mke2fs", "sfdisk")
	data, err := os.ReadFile(filepath.Join(corpus, name, "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c caseFile
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), name+".img")
	const partMiB = 8
	mkfs := func(v int, offset int64) {
		vol := c.Volumes[v]
		args := []string{"-q", "-F", "-t", "ext4", "-d", filepath.Join(corpus, name, vol.Dir)}
		if uuidRE.MatchString(vol.UUID) {
			args = append(args, "-U", vol.UUID)
		}
		if vol.Label != "" {
			args = append(args, "-L", vol.Label)
		}
		args = append(args, "-E", fmt.Sprintf("offset=%d", offset), img, fmt.Sprintf("%dM", partMiB))
		sh(t, "mke2fs", "", args...)
	}
	if len(c.Volumes) == 1 && !strings.Contains(c.Volumes[0].Device, ",") {
		sh(t, "truncate", "", "-s", fmt.Sprintf("%dM", partMiB), img)
		mkfs(0, 0)
		return img, c
	}
	label := "dos"
	if strings.Contains(c.Volumes[0].Device, "gpt") {
		label = "gpt"
	}
	sh(t, "truncate", "", "-s", fmt.Sprintf("%dM", 2+partMiB*len(c.Volumes)), img)
	script := "label: " + label + "\n"
	for i, v := range c.Volumes {
		d, err := grub.ParseDevice(v.Device, false)
		if err != nil {
			t.Fatal(err)
		}
		script += fmt.Sprintf("%s%d : start=%d, size=%d\n", img, d.Part, 2048+i*partMiB*2048, partMiB*2048)
	}
	sh(t, "sfdisk", script, "-q", "--no-reread", "--no-tell-kernel", img)
	for i := range c.Volumes {
		mkfs(i, int64(1<<20)+int64(i)*partMiB<<20)
	}
	return img, c
}

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	rc := run(args, &out, &errOut)
	return out.String(), errOut.String(), rc
}

// TestInspectImages boots the corpus through real disk images: the menu
// gopvgrub inspect finds on an image made by mke2fs and sfdisk must be the
// reviewed golden menu of the same case.
func TestInspectImages(t *testing.T) {
	for _, name := range []string{
		"deb12-default", "deb12-sepboot", "ubuntu-server", "amzn1-menulst", "centos5-domu",
		"ubuntu1404-ec2-pvgrub", "alpine-extlinux", "fedora39-bls", "al2023-bls",
	} {
		t.Run(name, func(t *testing.T) {
			img, c := buildImage(t, name)
			args := []string{"inspect", "--json"}
			if c.Extra != "" {
				args = append(args, "--extra", c.Extra)
			}
			out, stderr, rc := runCLI(t, append(args, img)...)
			if rc != 0 {
				t.Fatalf("rc %d: %s", rc, stderr)
			}
			var r struct {
				Menu  json.RawMessage `json:"menu"`
				Files []fileInfo      `json:"files"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatal(err)
			}
			var got, want bytes.Buffer
			json.Compact(&got, r.Menu)
			golden, err := os.ReadFile(filepath.Join(corpus, name, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			json.Compact(&want, golden)
			if got.String() != want.String() {
				t.Errorf("menu from the image differs from the golden menu:\n%s\nwant:\n%s", got.String(), want.String())
			}
			for _, f := range r.Files {
				// Every kernel and initrd the corpus trees hold is found,
				// with its size.
				if f.Error == "" && f.Size <= 0 {
					t.Errorf("%s: size %d", f.Path, f.Size)
				}
			}
		})
	}
}

func TestInspectText(t *testing.T) {
	img, _ := buildImage(t, "centos6-password")
	out, stderr, rc := runCLI(t, "inspect", img)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, stderr)
	}
	for _, want := range []string{
		"Config:   (hd0,msdos1)/grub/grub.conf (menu.lst)",
		"Default:  1\nTimeout:  5s (hidden menu)\nFallback: 0\nPassword: yes\n",
		"    3  Maintenance (own password)  [locked]",
		"*   1  CentOS 6 (2.6.32-754.el6.x86_64)",
		"        kernel  (hd0,1)/vmlinuz-2.6.32-754.el6.x86_64 (",
		"    2  CentOS 6 single user (locked)  [locked]",
		"        initrd  (hd0,1)/initramfs-2.6.32-754.35.1.el6.x86_64.img (",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestExtract(t *testing.T) {
	img, _ := buildImage(t, "deb12-default")
	dir := filepath.Join(t.TempDir(), "out")
	id := "gnulinux-advanced-0c1f7f0e-4b1e-4c8e-9a2f-3f1f5d6e7a81>gnulinux-6.1.0-25-amd64-recovery-0c1f7f0e-4b1e-4c8e-9a2f-3f1f5d6e7a81"
	out, stderr, rc := runCLI(t, "extract", "--entry", id, "--out", dir, img)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, stderr)
	}
	src := filepath.Join(corpus, "deb12-default", "hd0,msdos1", "boot")
	for _, f := range []string{"vmlinuz-6.1.0-25-amd64", "initrd.img-6.1.0-25-amd64"} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		want, _ := os.ReadFile(filepath.Join(src, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %q, %v; want %q", f, got, err, want)
		}
	}
	if c, _ := os.ReadFile(filepath.Join(dir, "cmdline")); string(c) != "root=UUID=0c1f7f0e-4b1e-4c8e-9a2f-3f1f5d6e7a81 ro single\n" {
		t.Errorf("cmdline %q", c)
	}
	if !strings.Contains(out, "entry 4: Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-25-amd64 (recovery mode)") {
		t.Errorf("output:\n%s", out)
	}
	// The default entry, by default; index and bad entries.
	if _, _, rc := runCLI(t, "extract", "--out", dir, img); rc != 0 {
		t.Error("default entry")
	}
	if _, stderr, rc := runCLI(t, "extract", "--entry", "9", "--out", dir, img); rc != 1 || !strings.Contains(stderr, `no entry "9"`) {
		t.Errorf("bad entry: %d %s", rc, stderr)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.img")
	os.WriteFile(junk, bytes.Repeat([]byte{0xA5}, 1<<20), 0o644)
	tests := []struct {
		args   []string
		rc     int
		stderr string
	}{
		{nil, 2, "usage:"},
		{[]string{"frob"}, 2, `unknown command "frob"`},
		{[]string{"inspect"}, 2, "no image given"},
		{[]string{"inspect", "--bogus", "x"}, 2, "flag provided but not defined"},
		{[]string{"extract", junk}, 2, "--out are needed"},
		{[]string{"inspect", filepath.Join(dir, "missing.img")}, 1, "no such file or directory"},
		{[]string{"inspect", junk}, 1, "no filesystem gopvgrub can read: no boot configuration found"},
		{[]string{"inspect", "--extra", "(hd0,0)/x", junk}, 1, "no such device: (hd0,1)"},
		{[]string{"inspect", dir}, 1, "a directory, not a disk image"},
	}
	for _, tt := range tests {
		_, stderr, rc := runCLI(t, tt.args...)
		if rc != tt.rc || !strings.Contains(stderr, tt.stderr) {
			t.Errorf("%q: rc %d, stderr %q; want %d, %q", tt.args, rc, stderr, tt.rc, tt.stderr)
		}
	}
}

// pvKernel is a small gzip-compressed x86_64 PV ELF, as our own image is
// packaged: one PT_LOAD of 2 MiB at 0x400000 and the Xen notes mkimage
// writes (VIRT_BASE = PADDR_OFFSET, HYPERCALL_PAGE inside the image).
func pvKernel(t *testing.T) []byte {
	t.Helper()
	le := binary.LittleEndian
	note := func(typ uint32, desc []byte) []byte {
		b := le.AppendUint32(nil, 4)
		b = le.AppendUint32(b, uint32(len(desc)))
		b = le.AppendUint32(b, typ)
		b = append(b, "Xen\x00"...)
		b = append(b, desc...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	num := func(typ uint32, v uint64) []byte { return note(typ, le.AppendUint64(nil, v)) }
	str := func(typ uint32, s string) []byte { return note(typ, append([]byte(s), 0)) }
	notes := bytes.Join([][]byte{
		str(loader.NoteGuestOS, "gopvgrub"), str(loader.NoteXenVersion, "xen-3.0"), str(loader.NoteLoader, "generic"),
		num(loader.NoteVirtBase, 0x400000), num(loader.NotePaddrOffset, 0x400000), num(loader.NoteEntry, 0x401000),
		num(loader.NoteHypercallPage, 0x500000),
	}, nil)
	const ehdr, phdr = 64, 56
	code := bytes.Repeat([]byte{0xc3}, 0x1000)
	codeOff := uint64(0x1000)
	notesOff := codeOff + uint64(len(code))
	f := make([]byte, notesOff)
	copy(f, "\x7fELF\x02\x01\x01")
	le.PutUint16(f[16:], 2)    // ET_EXEC
	le.PutUint16(f[18:], 0x3e) // EM_X86_64
	le.PutUint32(f[20:], 1)
	le.PutUint64(f[24:], 0x401000)
	le.PutUint64(f[32:], ehdr)
	le.PutUint16(f[52:], ehdr)
	le.PutUint16(f[54:], phdr)
	le.PutUint16(f[56:], 2)
	ph := func(at int, typ, flags uint32, off, addr, filesz, memsz, align uint64) {
		p := f[at:]
		le.PutUint32(p[0:], typ)
		le.PutUint32(p[4:], flags)
		for i, v := range []uint64{off, addr, addr, filesz, memsz, align} {
			le.PutUint64(p[8+8*i:], v)
		}
	}
	ph(ehdr, 1, 7, codeOff, 0x400000, uint64(len(code)), 0x200000, 0x1000)
	ph(ehdr+phdr, 4, 4, notesOff, 0, uint64(len(notes)), uint64(len(notes)), 4)
	copy(f[codeOff:], code)
	f = append(f, notes...)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(f)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

// layoutRun writes the kernel and the console log of a toolstack that
// built what the plan says for a 64 MiB domain with an initrd of
// initrdSize bytes; edit may change the dump first.
func layoutRun(t *testing.T, initrdSize uint64, edit func(d *xendump.Dump)) (image, dump string, l *layout.Layout) {
	t.Helper()
	dir := t.TempDir()
	kb := pvKernel(t)
	k, err := loader.ParseKernelBytes(kb, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	l, err = layout.Plan(k.LayoutImage(), layout.Options{
		NrPages: 64 << 8, InitrdSize: initrdSize, Cmdline: "selftest=layout",
		StoreMFN: 0x2345, StoreEvtchn: 1, ConsoleMFN: 0x2344, ConsoleEvtchn: 2, SharedInfoMA: 0xbfe67000,
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := xendump.FromLayout(l)
	if err != nil {
		t.Fatal(err)
	}
	d.Xen = xendump.Version{Major: 4, Minor: 17}
	if edit != nil {
		edit(d)
	}
	var log bytes.Buffer
	log.WriteString("gopvgrub: layout self-test\r\n")
	if _, err := d.WriteTo(&log); err != nil {
		t.Fatal(err)
	}
	log.WriteString("[  1.0] done\r\n")
	image, dump = filepath.Join(dir, "gopvgrub-x86_64.gz"), filepath.Join(dir, "console.log")
	if err := os.WriteFile(image, kb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dump, log.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return image, dump, l
}

func TestLayoutCheck(t *testing.T) {
	const initrd = 1<<20 + 5
	image, dump, l := layoutRun(t, initrd, nil)
	golden := filepath.Join(filepath.Dir(dump), "run.txt")
	out, stderr, rc := runCLI(t, "layout-check", "-image", image, "-initrd-size", "1048581", "-golden", golden, dump)
	want := fmt.Sprintf("layout-check: OK 20 fields, %d tables\n", l.NrPTFrames)
	if rc != 0 || out != want || stderr != "" {
		t.Fatalf("rc %d, out %q, stderr %q; want %q", rc, out, stderr, want)
	}
	g, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	d, err := xendump.Parse(bytes.NewReader(g))
	if err != nil {
		t.Fatal(err)
	}
	if d.Golden == nil || d.Golden.Image != l.Image || d.Golden.InitrdSize != initrd {
		t.Errorf("golden records %+v", d.Golden)
	}
	if r, err := xendump.CompareGolden(d); err != nil || !r.OK() {
		t.Errorf("golden re-check: %v %v", err, r)
	}

	// Under Xen 4.17.0–4.17.4 the plan's mod_len is whole pages, which
	// this dump does not have.
	out, _, rc = runCLI(t, "layout-check", "-image", image, "-initrd-size", "1048581", "-xen-patch", "3", dump)
	want = "layout-check: start_info.mod_len: toolstack 0x100005, plan 0x101000\nlayout-check: FAIL 1 mismatches\n"
	if rc != 1 || out != want {
		t.Errorf("4.17.3: rc %d, out %q; want %q", rc, out, want)
	}
}

func TestLayoutCheckMismatches(t *testing.T) {
	var l4 xendump.Table
	image, dump, l := layoutRun(t, 0, func(d *xendump.Dump) {
		d.MapEnd += 4 << 20
		d.Tables[0].Hash ^= 0xff
		l4 = d.Tables[0]
	})
	golden := filepath.Join(filepath.Dir(dump), "fail.txt")
	out, stderr, rc := runCLI(t, "layout-check", "-image", image, "-initrd-size", "0", "-golden", golden, dump)
	want := fmt.Sprintf("layout-check: map_end: toolstack %#x, plan %#x\n", l.VirtPgtabEnd+4<<20, l.VirtPgtabEnd) +
		fmt.Sprintf("layout-check: table pfn %#x (L4) hash: toolstack 0x%016x, plan 0x%016x\n", l4.PFN, l4.Hash, l4.Hash^0xff) +
		"layout-check: FAIL 2 mismatches\n"
	if rc != 1 || out != want || stderr != "" {
		t.Errorf("rc %d, out %q, stderr %q; want %q", rc, out, stderr, want)
	}
	// The golden of a failed run records it as it was.
	if _, err := os.Stat(golden); err != nil {
		t.Error(err)
	}
	// Forgetting the initrd shows in mod_start and mod_len.
	out, _, rc = runCLI(t, "layout-check", "-image", image, "-initrd-size", "4096", dump)
	if rc != 1 || !strings.Contains(out, "layout-check: start_info.mod_len: toolstack 0x0, plan 0x1000\n") {
		t.Errorf("initrd: rc %d, out %q", rc, out)
	}
}

func TestLayoutCheckErrors(t *testing.T) {
	image, dump, _ := layoutRun(t, 0, nil)
	dir := filepath.Dir(dump)
	cut := filepath.Join(dir, "cut.log")
	text, _ := os.ReadFile(dump)
	os.WriteFile(cut, text[:bytes.Index(text, []byte("LAYOUT done"))], 0o644)
	small := filepath.Join(dir, "small.log")
	d, err := xendump.Parse(bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(d.StartInfo[32:], 1<<8) // nr_pages: 1 MiB
	var sb bytes.Buffer
	d.WriteTo(&sb)
	os.WriteFile(small, sb.Bytes(), 0o644)
	tests := []struct {
		args   []string
		rc     int
		stderr string
	}{
		{[]string{"layout-check"}, 2, "-image, -initrd-size and one DUMP are needed"},
		{[]string{"layout-check", "-image", image, dump}, 2, "are needed"},
		{[]string{"layout-check", "-initrd-size", "0", dump}, 2, "are needed"},
		{[]string{"layout-check", "-image", image, "-initrd-size", "0", dump, dump}, 2, "are needed"},
		{[]string{"layout-check", "-image", image, "-initrd-size", "1M", dump}, 2, "-initrd-size"},
		{[]string{"layout-check", "-image", image, "-initrd-size", "0", "-xen-patch", "x", dump}, 2, "xen-patch"},
		{[]string{"layout-check", "-image", filepath.Join(dir, "none"), "-initrd-size", "0", dump}, 1, "no such file"},
		{[]string{"layout-check", "-image", dump, "-initrd-size", "0", dump}, 1, "not a kernel image"},
		{[]string{"layout-check", "-image", image, "-initrd-size", "0", filepath.Join(dir, "none")}, 1, "no such file"},
		{[]string{"layout-check", "-image", image, "-initrd-size", "0", image}, 1, "no layout dump"},
		{[]string{"layout-check", "-image", image, "-initrd-size", "0", cut}, 1, "incomplete layout dump: no LAYOUT done"},
		{[]string{"layout-check", "-image", image, "-initrd-size", "0", small}, 1, "not enough memory"},
		{[]string{"layout-check", "-image", image, "-initrd-size", "0", "-golden", filepath.Join(dir, "no", "g.txt"), dump}, 1, "golden"},
	}
	for _, tt := range tests {
		out, stderr, rc := runCLI(t, tt.args...)
		if rc != tt.rc || !strings.Contains(stderr, tt.stderr) || (rc == 2) != strings.Contains(stderr, "usage:") {
			t.Errorf("%q: rc %d, stdout %q, stderr %q; want %d, %q", tt.args, rc, out, stderr, tt.rc, tt.stderr)
		}
	}
}

// TestStaticBuild: layout-check runs in dom0, so nothing the command
// imports may need cgo (a cgo binary would want dom0's libc).
func TestStaticBuild(t *testing.T) {
	testassets.NeedTools(t, "go")
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .CgoFiles}}{{.ImportPath}}{{end}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("packages with cgo in gopvgrub's dependencies:\n%s", s)
	}
}
