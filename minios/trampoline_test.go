package minios

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
)

// TestTrampolineDisassembly checks the hand-encoded trampoline against
// binutils' disassembler: the instruction sequence, that every RIP-relative
// operand lands on its parameter slot, and that the failure branch is ud2.
func TestTrampolineDisassembly(t *testing.T) {
	testassets.NeedTools(t, "objdump")
	page := make([]byte, 4096)
	writeTrampoline(page, trampolineParams{NewL4MFN: 0x1234, OldL4MFN: 0x5678, RSP: 0xffffffff80c01000, RSI: 0xffffffff80b00000, Entry: 0xffffffff81000000})
	code := page[:encodeTrampoline(make([]byte, 4096))]
	if len(code) >= trampOps {
		t.Fatalf("code is %d bytes, overlaps the parameters at %#x", len(code), trampOps)
	}
	bin := filepath.Join(t.TempDir(), "tramp.bin")
	if err := os.WriteFile(bin, code, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*(.*)$`)
	var insns []string
	for _, l := range strings.Split(string(out), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ins := strings.Join(strings.Fields(m[2]), " ")
		if i := strings.Index(ins, "#"); i >= 0 { // objdump's "# 0x800" comments: keep the target
			ins = strings.TrimSpace(ins[:i]) + " #" + strings.TrimSpace(ins[i+1:])
		}
		insns = append(insns, ins)
	}
	want := []string{
		`lea rdi,\[rip\+0x[0-9a-f]+\] #0x800`,
		`mov esi,0x2`,
		`xor edx,edx`,
		`mov r10d,0x7ff0`,
		`mov eax,0x1a`,
		`syscall`,
		`test rax,rax`,
		`jne 0x[0-9a-f]+`,
		`mov rsp,QWORD PTR \[rip\+0x[0-9a-f]+\] #0x880`,
		`mov rsi,QWORD PTR \[rip\+0x[0-9a-f]+\] #0x888`,
		`mov rax,QWORD PTR \[rip\+0x[0-9a-f]+\] #0x890`,
		`xor ebx,ebx`, `xor ecx,ecx`, `xor edx,edx`, `xor edi,edi`, `xor ebp,ebp`,
		`xor r8d,r8d`, `xor r9d,r9d`, `xor r10d,r10d`, `xor r11d,r11d`,
		`xor r12d,r12d`, `xor r13d,r13d`, `xor r14d,r14d`, `xor r15d,r15d`,
		`jmp rax`,
		`ud2`,
		`jmp 0x[0-9a-f]+`,
	}
	if len(insns) != len(want) {
		t.Fatalf("disassembly has %d instructions, want %d:\n%s", len(insns), len(want), out)
	}
	for i, w := range want {
		if !regexp.MustCompile("^" + w + "$").MatchString(insns[i]) {
			t.Errorf("instruction %d: %q, want %s", i, insns[i], w)
		}
	}
	// Both branches go to the ud2: find its offset.
	ud2 := -1
	for i := 0; i+1 < len(code); i++ {
		if code[i] == 0x0f && code[i+1] == 0x0b {
			ud2 = i
		}
	}
	if !regexp.MustCompile(`jne\s+0x` + strconv.FormatInt(int64(ud2), 16) + `\b`).Match(out) {
		t.Errorf("jne does not target the ud2 at %#x:\n%s", ud2, out)
	}
	le := binary.LittleEndian
	for _, c := range []struct {
		off  int
		want uint64
	}{
		{trampOps, mmuextNewBaseptr}, {trampOps + 8, 0x1234},
		{trampOps + 24, mmuextUnpin}, {trampOps + 32, 0x5678},
		{trampRSP, 0xffffffff80c01000}, {trampRSI, 0xffffffff80b00000}, {trampEntry, 0xffffffff81000000},
	} {
		if got := le.Uint64(page[c.off:]); got != c.want {
			t.Errorf("parameter at %#x = %#x, want %#x", c.off, got, c.want)
		}
	}
}
