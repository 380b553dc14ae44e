package script

import (
	"errors"
	"fmt"
)

// The grammar is GRUB 2's parser.y:
//
//	script    := { statement delimiter }
//	statement := grubcmd | if | for | while | until | function
//	grubcmd   := word argument* block?          block := "{" commands "}"
//	if        := "if" commands "then" commands { "elif" commands "then" commands } [ "else" commands ] "fi"
//	for       := "for" NAME "in" argument* delim "do" commands "done"
//	while     := "while" commands "do" commands "done"   (until likewise)
//	function  := "function" NAME newlines "{" commands "}"
//
// Reserved words start compound commands only in command position; as
// arguments they are plain words. Every command list must be non-empty.

type node interface{ line() int }

type cmdNode struct {
	ln    int
	words []word
	block *blockNode // the { } argument of menuentry, submenu, …
}

type blockNode struct {
	body []node
	src  string // the text between the braces, as GRUB keeps it
}

type ifNode struct {
	ln         int
	cond, then []node
	els        []node // nil when there is no else; an elif is a nested ifNode
}

type forNode struct {
	ln    int
	name  string
	words []word
	body  []node
}

type whileNode struct {
	ln         int
	until      bool
	cond, body []node
}

type funcNode struct {
	ln   int
	name string
	body []node
	src  string
}

func (n *cmdNode) line() int   { return n.ln }
func (n *ifNode) line() int    { return n.ln }
func (n *forNode) line() int   { return n.ln }
func (n *whileNode) line() int { return n.ln }
func (n *funcNode) line() int  { return n.ln }

// MaxNesting bounds how deeply blocks and compound commands nest.
const MaxNesting = 64

// SyntaxError is a statement GRUB would reject.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: syntax error: %s", e.Line, e.Msg) }

var errEOF = errors.New("unexpected end of file")

type parser struct {
	lx    *lexer
	tok   token
	peek  *token
	depth int
}

// newParser parses src from byte offset pos, which is on line firstLine.
func newParser(src string, pos, firstLine int) *parser {
	p := &parser{lx: &lexer{src: src, pos: pos, line: firstLine}}
	p.advance()
	return p
}

func (p *parser) advance() {
	if p.peek != nil {
		p.tok, p.peek = *p.peek, nil
		return
	}
	p.tok = p.lx.next()
}

func (p *parser) fail(format string, args ...any) error {
	if p.tok.kind == tBad {
		return &SyntaxError{Line: p.tok.line, Msg: p.tok.bad}
	}
	return &SyntaxError{Line: p.tok.line, Msg: fmt.Sprintf(format, args...)}
}

// reserved returns the reserved word the current token is, or "".
func (p *parser) reserved() string {
	if p.tok.kind != tWord || p.tok.esc {
		return ""
	}
	s, ok := p.tok.w.plain()
	if !ok {
		return ""
	}
	switch s {
	case "if", "then", "elif", "else", "fi", "for", "in", "do", "done", "while",
		"until", "function", "case", "esac", "select", "[[", "]]":
		return s
	}
	return ""
}

func (p *parser) skipNewlines() {
	for p.tok.kind == tNewline {
		p.advance()
	}
}

func (p *parser) isDelim() bool { return p.tok.kind == tNewline || p.tok.kind == tSemi }

// statement parses one top-level statement; nil at end of input.
func (p *parser) statement() (node, error) {
	for p.isDelim() {
		p.advance()
	}
	if p.tok.kind == tEOF {
		return nil, nil
	}
	var n node
	var err error
	if p.reserved() == "function" {
		n, err = p.function()
	} else {
		n, err = p.command()
	}
	if err != nil {
		return nil, err
	}
	if !p.isDelim() && p.tok.kind != tEOF {
		return nil, p.fail("unexpected %s after command", p.describe())
	}
	return n, nil
}

func (p *parser) describe() string {
	switch p.tok.kind {
	case tEOF:
		return "end of file"
	case tNewline:
		return "newline"
	case tSemi:
		return "';'"
	case tLBrace:
		return "'{'"
	case tRBrace:
		return "'}'"
	case tBad:
		return p.tok.bad
	}
	if r := p.reserved(); r != "" {
		return "'" + r + "'"
	}
	return "word"
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxNesting {
		return p.fail("nested more than %d deep", MaxNesting)
	}
	return nil
}

// command parses a grubcmd or a compound command.
func (p *parser) command() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	switch p.reserved() {
	case "if":
		return p.ifCmd()
	case "for":
		return p.forCmd()
	case "while", "until":
		return p.whileCmd()
	case "":
	default:
		return nil, p.fail("unexpected %s", p.describe())
	}
	if p.tok.kind != tWord {
		return nil, p.fail("unexpected %s", p.describe())
	}
	c := &cmdNode{ln: p.tok.line}
	for p.tok.kind == tWord {
		c.words = append(c.words, p.tok.w)
		p.advance()
	}
	if p.tok.kind == tLBrace {
		b, err := p.block()
		if err != nil {
			return nil, err
		}
		c.block = b
	}
	return c, nil
}

// block parses "{ commands }" and keeps its source text.
func (p *parser) block() (*blockNode, error) {
	start := p.tok.end
	p.advance() // {
	body, err := p.commands(func() bool { return p.tok.kind == tRBrace })
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tRBrace {
		return nil, p.fail("expected '}', found %s", p.describe())
	}
	b := &blockNode{body: body, src: p.lx.src[start:p.tok.pos]}
	p.advance()
	return b, nil
}

// commands parses a non-empty command list ended (after optional
// delimiters) by a token for which end returns true.
func (p *parser) commands(end func() bool) ([]node, error) {
	var list []node
	for {
		for p.isDelim() {
			p.advance()
		}
		if p.tok.kind == tEOF {
			return nil, p.fail("%v", errEOF)
		}
		if end() {
			if len(list) == 0 {
				return nil, p.fail("empty command list")
			}
			return list, nil
		}
		n, err := p.command()
		if err != nil {
			return nil, err
		}
		list = append(list, n)
		if !p.isDelim() && !end() {
			return nil, p.fail("unexpected %s", p.describe())
		}
	}
}

func (p *parser) isWord(words ...string) func() bool {
	return func() bool {
		r := p.reserved()
		for _, w := range words {
			if r == w {
				return true
			}
		}
		return false
	}
}

// requireDelim checks that a delimiter preceded a reserved word (GRUB's
// "commands1 delimiters1 then").
func (p *parser) ifCmd() (node, error) {
	n := &ifNode{ln: p.tok.line}
	p.advance() // if / elif
	var err error
	if n.cond, err = p.commands(p.isWord("then")); err != nil {
		return nil, err
	}
	p.advance() // then
	if n.then, err = p.commands(p.isWord("elif", "else", "fi")); err != nil {
		return nil, err
	}
	switch p.reserved() {
	case "elif":
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		sub, err := p.ifCmd()
		if err != nil {
			return nil, err
		}
		n.els = []node{sub}
		return n, nil // the nested if consumed "fi"
	case "else":
		p.advance()
		if n.els, err = p.commands(p.isWord("fi")); err != nil {
			return nil, err
		}
	}
	p.advance() // fi
	return n, nil
}

func (p *parser) forCmd() (node, error) {
	n := &forNode{ln: p.tok.line}
	p.advance()
	name, ok := p.tok.w.plain()
	if p.tok.kind != tWord || !ok || !validName(name) {
		return nil, p.fail("for: variable name expected")
	}
	n.name = name
	p.advance()
	if p.reserved() != "in" {
		return nil, p.fail("for: 'in' expected")
	}
	p.advance()
	for p.tok.kind == tWord {
		n.words = append(n.words, p.tok.w)
		p.advance()
	}
	if !p.isDelim() {
		return nil, p.fail("for: unexpected %s", p.describe())
	}
	for p.isDelim() {
		p.advance()
	}
	if p.reserved() != "do" {
		return nil, p.fail("for: 'do' expected")
	}
	p.advance()
	var err error
	if n.body, err = p.commands(p.isWord("done")); err != nil {
		return nil, err
	}
	p.advance()
	return n, nil
}

func (p *parser) whileCmd() (node, error) {
	n := &whileNode{ln: p.tok.line, until: p.reserved() == "until"}
	p.advance()
	var err error
	if n.cond, err = p.commands(p.isWord("do")); err != nil {
		return nil, err
	}
	p.advance()
	if n.body, err = p.commands(p.isWord("done")); err != nil {
		return nil, err
	}
	p.advance()
	return n, nil
}

func (p *parser) function() (node, error) {
	n := &funcNode{ln: p.tok.line}
	p.advance()
	name, ok := p.tok.w.plain()
	if p.tok.kind != tWord || !ok || p.tok.esc || !validName(name) {
		return nil, p.fail("function: name expected")
	}
	n.name = name
	p.advance()
	p.skipNewlines()
	if p.tok.kind != tLBrace {
		return nil, p.fail("function: '{' expected")
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	b, err := p.block()
	if err != nil {
		return nil, err
	}
	n.body, n.src = b.body, b.src
	return n, nil
}

func validName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}
