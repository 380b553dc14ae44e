package bls

import "strings"

// Compare compares two version strings by the UAPI Version Format
// Specification's algorithm (systemd's strverscmp_improved): it returns
// -1, 0 or +1. "~" sorts before everything, "-", "^" and "." separate
// parts, digit runs compare numerically and letter runs alphabetically;
// any other character is skipped.
func Compare(a, b string) int {
	for {
		a, b = skipInvalid(a), skipInvalid(b)
		if c, both := sep(&a, &b, '~'); !both && c != 0 {
			return c
		} else if both {
			continue
		}
		if a == "" || b == "" {
			switch {
			case a != "":
				return 1
			case b != "":
				return -1
			}
			return 0
		}
		skipped := false
		for _, s := range []byte{'-', '^', '.'} {
			c, both := sep(&a, &b, s)
			if c != 0 {
				return c
			}
			if both {
				skipped = true
				break
			}
		}
		if skipped {
			continue
		}
		if isDigit(a[0]) || isDigit(b[0]) {
			na, ra := digitRun(a)
			nb, rb := digitRun(b)
			if c := compareNumbers(na, nb); c != 0 {
				return c
			}
			a, b = ra, rb
			continue
		}
		la, ra := letterRun(a)
		lb, rb := letterRun(b)
		if c := strings.Compare(la, lb); c != 0 {
			return c
		}
		a, b = ra, rb
	}
}

// sep handles a separator: when exactly one string starts with s it
// compares lower (c is the result); when both do, both skip it (both).
func sep(a, b *string, s byte) (c int, both bool) {
	ha := *a != "" && (*a)[0] == s
	hb := *b != "" && (*b)[0] == s
	switch {
	case ha && hb:
		*a, *b = (*a)[1:], (*b)[1:]
		return 0, true
	case ha:
		return -1, false
	case hb:
		return 1, false
	}
	return 0, false
}

func valid(c byte) bool {
	return isDigit(c) || isLetter(c) || c == '-' || c == '.' || c == '~' || c == '^'
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func skipInvalid(s string) string {
	i := 0
	for i < len(s) && !valid(s[i]) {
		i++
	}
	return s[i:]
}

func digitRun(s string) (num, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return strings.TrimLeft(s[:i], "0"), s[i:]
}

func letterRun(s string) (run, rest string) {
	i := 0
	for i < len(s) && isLetter(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// compareNumbers compares decimal digit strings without leading zeros, of
// any length (no overflow).
func compareNumbers(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	switch c := strings.Compare(a, b); {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}
