package main

import (
	"bytes"
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
