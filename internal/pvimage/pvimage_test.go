package pvimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
)

// buildProbe links a small static Go program that imports crypto (so it has
// the 32 MiB drbg BSS) and prints its own lazyBSS variable.
func buildProbe(t *testing.T) []byte {
	t.Helper()
	testassets.NeedTools(t, "go")
	dir := t.TempDir()
	src := fmt.Sprintf(`package main

import (
	"crypto/sha256"
	"fmt"
)

var lazyBSS = [2]uint64{%#x, 0}

func main() {
	fmt.Printf("%%x %%#x %%#x\n", sha256.Sum256([]byte("gopvgrub")), lazyBSS[0], lazyBSS[1])
}
`, uint64(LazyBSSMagic))
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module probe\ngo 1.26\n"), 0o644)
	cmd := exec.Command("go", "build", "-o", "probe", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuild(t *testing.T) {
	in := buildProbe(t)
	img, info, err := Build(in, Options{GuestVersion: "test", TrimBSS: 1 << 20, LazySymbol: "main.lazyBSS"})
	if err != nil {
		t.Fatal(err)
	}
	// The notes Xen's libelf requires, found the way it looks for them.
	notes, err := ReadNotes(img, "Xen")
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint32][]byte{}
	for _, n := range notes {
		got[n.Type] = n.Desc
	}
	str := func(typ uint32) string { return strings.TrimRight(string(got[typ]), "\x00") }
	num := func(typ uint32) uint64 {
		if len(got[typ]) != 8 {
			t.Fatalf("note %d: %d bytes, want 8", typ, len(got[typ]))
		}
		return binary.LittleEndian.Uint64(got[typ])
	}
	if str(NoteXenVersion) != "xen-3.0" || str(NoteLoader) != "generic" || str(NoteGuestOS) != "gopvgrub" || str(NoteGuestVer) != "test" {
		t.Errorf("string notes: %q %q %q %q", str(NoteXenVersion), str(NoteLoader), str(NoteGuestOS), str(NoteGuestVer))
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("output does not parse as ELF: %v", err)
	}
	if num(NoteEntry) != f.Entry || num(NoteVirtBase) != 0x400000 || num(NotePaddrOffset) != 0x400000 {
		t.Errorf("ENTRY %#x (e_entry %#x) VIRT_BASE %#x PADDR_OFFSET %#x", num(NoteEntry), f.Entry, num(NoteVirtBase), num(NotePaddrOffset))
	}
	if len(f.Sections) != 0 {
		t.Errorf("output still has %d sections", len(f.Sections))
	}
	// The RW segment lost the 32 MiB drbg buffer from p_memsz.
	orig, _ := elf.NewFile(bytes.NewReader(in))
	rwMem := func(f *elf.File) uint64 {
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_W != 0 {
				return p.Memsz
			}
		}
		return 0
	}
	if d := rwMem(orig) - rwMem(f); d < 32<<20-4096 {
		t.Errorf("p_memsz shrank by %d bytes, want about 32 MiB", d)
	}
	if info.LazyEnd-info.LazyStart < 32<<20-4096 || info.LazyStart%4096 != 0 {
		t.Errorf("lazy range [%#x,%#x)", info.LazyStart, info.LazyEnd)
	}
	// The image still runs as a Linux program (which never touches the
	// trimmed buffer) and sees the patched range.
	exe := filepath.Join(t.TempDir(), "img")
	os.WriteFile(exe, img, 0o755)
	out, err := exec.Command(exe).Output()
	if err != nil {
		t.Fatalf("running the image: %v", err)
	}
	want := fmt.Sprintf("%#x %#x", info.LazyStart, info.LazyEnd)
	if !strings.Contains(string(out), want) {
		t.Errorf("image printed %q, want it to contain %q", out, want)
	}
	{
		if _, err := exec.LookPath("readelf"); err == nil {
			o, err := exec.Command("readelf", "-nW", exe).CombinedOutput()
			if err != nil || !strings.Contains(string(o), "Xen") {
				t.Errorf("readelf -n does not show the Xen notes: %v\n%s", err, o)
			}
		}
	}
}

func TestBuildRejects(t *testing.T) {
	cases := map[string][]byte{
		"empty":     nil,
		"not ELF":   []byte("#!/bin/sh\necho hi\n"),
		"truncated": buildProbe(t)[:200],
	}
	if b, err := os.ReadFile("/bin/true"); err == nil {
		cases["dynamic"] = b
	}
	for name, in := range cases {
		if _, _, err := Build(in, Options{}); err == nil {
			t.Errorf("%s: Build accepted it", name)
		}
	}
}

func TestTrimNeedsLazySymbol(t *testing.T) {
	in := buildProbe(t)
	if _, _, err := Build(in, Options{TrimBSS: 1 << 20, LazySymbol: "main.noSuchSymbol"}); err == nil {
		t.Fatal("trimming without a place to record the range must fail")
	}
}
