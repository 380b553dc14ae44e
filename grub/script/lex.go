package script

import (
	"fmt"
	"strings"
)

// Lexing follows GRUB 2's yylex.l: words are runs of ordinary characters,
// quoted strings, backslash escapes and variable references; { } ; and
// newline are tokens of their own; | & < > are tokens GRUB's grammar never
// accepts (so they are syntax errors here too); a # starting a token starts
// a comment.

type tokKind uint8

const (
	tEOF tokKind = iota
	tNewline
	tSemi
	tLBrace
	tRBrace
	tWord
	tBad // a token the grammar rejects: | & < > || && ;; [[ ]] or a lexing error
)

// partKind is how a piece of a word expands.
type partKind uint8

const (
	pLit  partKind = iota // unquoted text: appended, creates no empty argument
	pQuot                 // quoted text: appended, always creates the argument
	pVar                  // unquoted $var: split into several arguments on blanks
	pQVar                 // "$var": appended as is
)

type part struct {
	kind partKind
	s    string // text, or the variable name
}

// word is one unexpanded argument.
type word []part

// plain returns the word's text if it is a single unquoted literal.
func (w word) plain() (string, bool) {
	if len(w) == 1 && w[0].kind == pLit {
		return w[0].s, true
	}
	return "", false
}

type token struct {
	kind tokKind
	w    word
	line int
	pos  int // byte offset of the token's start
	end  int // byte offset after it
	bad  string
	esc  bool // the word contains an escape, so it is never a reserved word
}

type lexer struct {
	src  string
	pos  int
	line int
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// isWordChar is GRUB's CHAR class: anything but {}|&$;<> blanks, newline,
// quotes and backslash (those have their own rules).
func isWordChar(c byte) bool {
	switch c {
	case '{', '}', '|', '&', '$', ';', '<', '>', ' ', '\t', '\r', '\n', '\'', '"', '\\':
		return false
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'f')
}

func isNameStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isNameChar(c byte) bool  { return isNameStart(c) || (c >= '0' && c <= '9') }

func (lx *lexer) errTok(start int, format string, args ...any) token {
	return token{kind: tBad, line: lx.line, pos: start, end: lx.pos, bad: fmt.Sprintf(format, args...)}
}

// next returns the next token.
func (lx *lexer) next() token {
	// Blanks, comments and backslash-newline continuations between tokens.
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch {
		case isBlank(c):
			lx.pos++
			continue
		case c == '\\' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '\n':
			lx.pos += 2
			lx.line++
			continue
		case c == '#':
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.pos++
			}
			continue
		}
		break
	}
	start := lx.pos
	tok := func(k tokKind, n int) token {
		lx.pos += n
		return token{kind: k, line: lx.line, pos: start, end: lx.pos}
	}
	if lx.pos >= len(lx.src) {
		return token{kind: tEOF, line: lx.line, pos: start, end: start}
	}
	rest := lx.src[lx.pos:]
	switch c := rest[0]; c {
	case '\n':
		t := tok(tNewline, 1)
		lx.line++
		return t
	case ';':
		if strings.HasPrefix(rest, ";;") {
			lx.pos += 2
			return lx.errTok(start, "unexpected ';;'")
		}
		return tok(tSemi, 1)
	case '{':
		return tok(tLBrace, 1)
	case '}':
		return tok(tRBrace, 1)
	case '|', '&', '<', '>':
		n := 1
		if len(rest) > 1 && (rest[:2] == "||" || rest[:2] == "&&") {
			n = 2
		}
		lx.pos += n
		return lx.errTok(start, "unexpected %q (GRUB has no pipes, redirections or && ||)", rest[:n])
	}
	return lx.word(start)
}

// word lexes one word made of literal runs, quotes, escapes and variables.
func (lx *lexer) word(start int) token {
	var w word
	var lit strings.Builder
	flushLit := func() {
		if lit.Len() > 0 {
			w = append(w, part{pLit, lit.String()})
			lit.Reset()
		}
	}
	startLine := lx.line
	esc := false
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch {
		case isWordChar(c):
			lit.WriteByte(c)
			lx.pos++
		case c == '\\':
			if lx.pos+1 >= len(lx.src) {
				lit.WriteByte('\\')
				lx.pos++
				continue
			}
			n := lx.src[lx.pos+1]
			lx.pos += 2
			esc = true
			if n == '\n' {
				lx.line++
				continue // line continuation
			}
			// An escaped character is literal; GRUB keeps it as unquoted
			// text (so it joins the word without creating an empty arg).
			// Its unescaping keeps \xHH as the four characters.
			if n == 'x' && lx.pos+1 < len(lx.src) && isHex(lx.src[lx.pos]) && isHex(lx.src[lx.pos+1]) {
				lit.WriteString(lx.src[lx.pos-2 : lx.pos+2])
				lx.pos += 2
				continue
			}
			lit.WriteByte(n)
		case c == '\'':
			flushLit()
			end := strings.IndexByte(lx.src[lx.pos+1:], '\'')
			if end < 0 {
				// GRUB keeps reading lines for the closing quote: the
				// error is at the end of the file.
				lx.line += strings.Count(lx.src[lx.pos:], "\n")
				lx.pos = len(lx.src)
				return lx.errTok(start, "unterminated single quote")
			}
			s := lx.src[lx.pos+1 : lx.pos+1+end]
			lx.line += strings.Count(s, "\n")
			w = append(w, part{pQuot, s})
			lx.pos += end + 2
		case c == '"':
			flushLit()
			parts, err := lx.dquote()
			if err != "" {
				return lx.errTok(start, "%s", err)
			}
			w = append(w, parts...)
		case c == '$':
			if lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '"' {
				// $"..." is a gettext string: no variable expansion.
				flushLit()
				lx.pos++
				s, err := lx.i18nQuote()
				if err != "" {
					return lx.errTok(start, "%s", err)
				}
				w = append(w, part{pQuot, s})
				continue
			}
			name, err := lx.variable()
			if err != "" {
				return lx.errTok(start, "%s", err)
			}
			flushLit()
			w = append(w, part{pVar, name})
		default:
			flushLit()
			return token{kind: tWord, w: w, line: startLine, pos: start, end: lx.pos, esc: esc}
		}
	}
	flushLit()
	return token{kind: tWord, w: w, line: startLine, pos: start, end: lx.pos, esc: esc}
}

// variable lexes $NAME, ${NAME}, $1, ${12}, $?, ${#} at lx.pos ('$').
func (lx *lexer) variable() (string, string) {
	p := lx.pos + 1
	braced := p < len(lx.src) && lx.src[p] == '{'
	if braced {
		p++
	}
	begin := p
	switch {
	case p < len(lx.src) && strings.IndexByte("?#*@", lx.src[p]) >= 0:
		p++
	case p < len(lx.src) && lx.src[p] >= '0' && lx.src[p] <= '9':
		for p < len(lx.src) && lx.src[p] >= '0' && lx.src[p] <= '9' {
			p++
		}
	case p < len(lx.src) && isNameStart(lx.src[p]):
		for p < len(lx.src) && isNameChar(lx.src[p]) {
			p++
		}
	default:
		lx.pos = min(p+1, len(lx.src))
		return "", "'$' not followed by a variable name"
	}
	name := lx.src[begin:p]
	if braced {
		if p >= len(lx.src) || lx.src[p] != '}' {
			lx.pos = min(p+1, len(lx.src))
			return "", "unterminated ${"
		}
		p++
	}
	lx.pos = p
	return name, ""
}

// dquote lexes "...": \$ \\ \" and backslash-newline are escapes, $var
// expands without splitting; the result always creates an argument.
func (lx *lexer) dquote() ([]part, string) {
	lx.pos++ // opening quote
	parts := []part{}
	var b strings.Builder
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch c {
		case '"':
			lx.pos++
			parts = append(parts, part{pQuot, b.String()})
			return parts, ""
		case '\\':
			if lx.pos+1 < len(lx.src) {
				switch n := lx.src[lx.pos+1]; n {
				case '$', '\\', '"':
					b.WriteByte(n)
					lx.pos += 2
					continue
				case '\n':
					lx.pos += 2
					lx.line++
					continue
				}
			}
			b.WriteByte('\\')
			lx.pos++
		case '$':
			parts = append(parts, part{pQuot, b.String()})
			b.Reset()
			name, err := lx.variable()
			if err != "" {
				return nil, err
			}
			parts = append(parts, part{pQVar, name})
		default:
			if c == '\n' {
				lx.line++
			}
			b.WriteByte(c)
			lx.pos++
		}
	}
	return nil, "unterminated double quote"
}

// i18nQuote lexes the "..." of $"...": \\ stays two backslashes, \" is a
// quote, backslash-newline is removed; no variables.
func (lx *lexer) i18nQuote() (string, string) {
	lx.pos++
	var b strings.Builder
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch {
		case c == '"':
			lx.pos++
			return b.String(), ""
		case c == '\\' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '"':
			b.WriteByte('"')
			lx.pos += 2
		case c == '\\' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '\n':
			lx.pos += 2
			lx.line++
		default:
			if c == '\n' {
				lx.line++
			}
			b.WriteByte(c)
			lx.pos++
		}
	}
	return "", "unterminated $\" string"
}
