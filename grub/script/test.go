package script

import (
	"strconv"
	"strings"
)

// bTest is GRUB's test / [ command, evaluated as grub-core/commands/test.c
// does: a left-to-right scan where -a binds tighter than -o, ! inverts the
// next test, ( ) group, and a lone word is true when non-empty.
func bTest(in *interp, c *cmdNode, name string, args []string) int {
	if name == "[" {
		if len(args) == 0 || args[len(args)-1] != "]" {
			in.note("line %d: [: ']' expected", c.ln)
			return stFail
		}
		args = args[:len(args)-1]
	}
	pos, depth := 0, 0
	if in.testParse(args, &pos, &depth) {
		return stOK
	}
	return stFail
}

const maxTestDepth = 100

type testCtx struct{ and, or, invert bool }

func (t *testCtx) update(v bool) {
	if t.invert {
		v = !v
	}
	t.and = t.and && v
	t.invert = false
}

func (in *interp) testParse(a []string, pos, depth *int) bool {
	t := testCtx{and: true}
	for *pos < len(a) {
		i := *pos
		if i+2 < len(a) {
			l, op, r := a[i], a[i+1], a[i+2]
			done := true
			switch op {
			case "=", "==":
				t.update(l == r)
			case "!=":
				t.update(l != r)
			case "<":
				t.update(l < r)
			case "<=":
				t.update(l <= r)
			case ">":
				t.update(l > r)
			case ">=":
				t.update(l >= r)
			case "-eq":
				t.update(strtosl(l) == strtosl(r))
			case "-ne":
				t.update(strtosl(l) != strtosl(r))
			case "-lt":
				t.update(strtosl(l) < strtosl(r))
			case "-le":
				t.update(strtosl(l) <= strtosl(r))
			case "-gt":
				t.update(strtosl(l) > strtosl(r))
			case "-ge":
				t.update(strtosl(l) >= strtosl(r))
			case "-pgt", "-plt":
				ln, rn := prefixNumbers(l, r)
				if op == "-pgt" {
					t.update(ln > rn)
				} else {
					t.update(ln < rn)
				}
			default:
				if strings.HasPrefix(op, "-nt") || strings.HasPrefix(op, "-ot") {
					// We have no modification times: GRUB then compares
					// only existence.
					le, _, _ := in.fileInfo(l)
					re, _, _ := in.fileInfo(r)
					if op[1] == 'n' {
						t.update(le && !re)
					} else {
						t.update(!le && re)
					}
				} else {
					done = false
				}
			}
			if done {
				*pos += 3
				continue
			}
		}
		if i+1 < len(a) {
			op, arg := a[i], a[i+1]
			done := true
			switch op {
			case "-d":
				ex, dir, _ := in.fileInfo(arg)
				t.update(ex && dir)
			case "-e":
				ex, _, _ := in.fileInfo(arg)
				t.update(ex)
			case "-f":
				ex, dir, _ := in.fileInfo(arg)
				t.update(ex && !dir)
			case "-s":
				ex, dir, size := in.fileInfo(arg)
				t.update(ex && !dir && size != 0)
			case "-n":
				t.update(arg != "")
			case "-z":
				t.update(arg == "")
			default:
				done = false
			}
			if done {
				*pos += 2
				continue
			}
		}
		switch a[i] {
		case ")":
			*pos++
			if *depth > 0 {
				*depth--
			}
			return t.or || t.and
		case "(":
			*pos++
			*depth++
			if *depth > maxTestDepth {
				return t.or || t.and
			}
			t.update(in.testParse(a, pos, depth))
			continue
		case "!":
			t.invert = !t.invert
			*pos++
			continue
		case "-a":
			*pos++
			continue
		case "-o":
			t.or = t.or || t.and
			t.and = true
			*pos++
			continue
		}
		t.update(a[i] != "")
		*pos++
	}
	return t.or || t.and
}

// strtosl is grub_strtosl(s, 0, 0): a C-style number (0x hex, 0 octal)
// with optional sign; garbage after the digits is ignored, no digits is 0.
func strtosl(s string) int64 {
	s = strings.TrimLeft(s, " \t\n")
	neg := false
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, s = 16, s[2:]
	case strings.HasPrefix(s, "0") && len(s) > 1:
		base, s = 8, s[1:]
	}
	end := 0
	for end < len(s) && digitVal(s[end]) < base {
		end++
	}
	n, err := strconv.ParseInt(s[:end], base, 64)
	if err != nil {
		if end > 0 {
			n = 1<<63 - 1 // overflow saturates, as strtol does
		}
	}
	if neg {
		n = -n
	}
	return n
}

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return int(c|0x20-'a') + 10
	}
	return 99
}

// prefixNumbers implements -pgt/-plt: skip the common prefix, back up over
// digits, and compare the numbers that follow ("vmlinuz-2" < "vmlinuz-11").
func prefixNumbers(l, r string) (uint64, uint64) {
	i := 0
	for i < len(l) && i < len(r) && l[i] == r[i] {
		i++
	}
	i--
	for i > 0 && l[i] >= '0' && l[i] <= '9' {
		i--
	}
	i++
	num := func(s string) uint64 {
		if i >= len(s) {
			return 0
		}
		s = s[i:]
		end := 0
		for end < len(s) && s[end] >= '0' && s[end] <= '9' {
			end++
		}
		n, _ := strconv.ParseUint(s[:end], 10, 64)
		return n
	}
	return num(l), num(r)
}
