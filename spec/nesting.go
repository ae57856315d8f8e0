package spec

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// The HCL parser and evaluator recurse once per nesting level and once
// per operator, and Go cannot recover from a stack overflow. CheckNesting
// refuses, before parsing, what would recurse deeper than these limits; no
// spec a person writes comes close to them.
const (
	// MaxNesting bounds brackets, braces, parentheses (blocks included),
	// template interpolations and template if/for directives inside one
	// another.
	MaxNesting = 256
	// MaxOperators bounds the operators of the expressions open at one
	// point of a file (a+b+…, !!…, a ? b : c ? …).
	MaxOperators = 1024
)

// CheckNesting scans HCL native syntax without parsing it (skipping
// strings, heredocs and comments) and reports the first point where the
// nesting or the operators exceed the limits, or nil.
func CheckNesting(src []byte, filename string) *hcl.Diagnostic {
	s := &nestScanner{src: src, name: filename, line: 1, stack: []nestLevel{{kind: 0}}}
	return s.run()
}

// nestLevel is one open construct: 0 the file, '(' '[' '{' code in
// brackets, '$' a template interpolation or directive, '"' a quoted
// template, 'H' a heredoc.
type nestLevel struct {
	kind        byte
	ops         int    // operators of the current expression (code levels)
	directives  int    // open %{ if } / %{ for } (template levels)
	delim       []byte // heredoc end marker
	atLineStart bool   // heredoc: the next byte starts a line
}

type nestScanner struct {
	src       []byte
	name      string
	i         int
	line      int
	lineStart int
	stack     []nestLevel
	depth     int // counted levels: code levels and directives
	ops       int // operators over all open levels
}

func (s *nestScanner) top() *nestLevel { return &s.stack[len(s.stack)-1] }

func (s *nestScanner) run() *hcl.Diagnostic {
	for s.i < len(s.src) {
		var d *hcl.Diagnostic
		switch s.top().kind {
		case '"':
			d = s.quoted()
		case 'H':
			d = s.heredoc()
		default:
			d = s.code()
		}
		if d != nil {
			return d
		}
	}
	return nil
}

func (s *nestScanner) peek(off int) byte {
	if s.i+off < len(s.src) {
		return s.src[s.i+off]
	}
	return 0
}

func (s *nestScanner) newline() {
	s.i++
	s.line++
	s.lineStart = s.i
}

// code handles one token outside templates.
func (s *nestScanner) code() *hcl.Diagnostic {
	c := s.src[s.i]
	switch {
	case c == '#' || c == '/' && s.peek(1) == '/':
		s.skipLine()
	case c == '/' && s.peek(1) == '*':
		s.skipBlockComment()
	case c == '"':
		s.i++
		s.stack = append(s.stack, nestLevel{kind: '"'})
	case c == '<' && s.peek(1) == '<' && s.startHeredoc():
	case c == '(' || c == '[' || c == '{':
		return s.push(c)
	case c == ')' || c == ']':
		if k := s.top().kind; k == '(' || k == '[' || k == '{' {
			s.pop()
		}
		s.i++
	case c == '}':
		if k := s.top().kind; k == '{' || k == '$' {
			s.pop()
		}
		s.i++
	case c == ',':
		s.resetOps()
		s.i++
	case c == '\n':
		if k := s.top().kind; k == 0 || k == '{' {
			s.resetOps() // newlines end items in bodies and objects only
		}
		s.newline()
	case c == '=' && s.peek(1) == '=':
		return s.operator(2)
	case bytes.IndexByte([]byte("!-+*/%?<>&|"), c) >= 0:
		return s.operator(1)
	default:
		s.i++
	}
	return nil
}

func (s *nestScanner) skipLine() {
	if j := bytes.IndexByte(s.src[s.i:], '\n'); j >= 0 {
		s.i += j
	} else {
		s.i = len(s.src)
	}
}

func (s *nestScanner) skipBlockComment() {
	s.i += 2
	for s.i < len(s.src) && !(s.src[s.i] == '*' && s.peek(1) == '/') {
		if s.src[s.i] == '\n' {
			s.newline()
			continue
		}
		s.i++
	}
	s.i = min(len(s.src), s.i+2)
}

// startHeredoc opens a heredoc at "<<EOT\n" or "<<-EOT\n" and reports
// whether there was one.
func (s *nestScanner) startHeredoc() bool {
	j := s.i + 2
	if j < len(s.src) && s.src[j] == '-' {
		j++
	}
	start := j
	for j < len(s.src) && identByte(s.src[j], j > start) {
		j++
	}
	delim := s.src[start:j]
	if j < len(s.src) && s.src[j] == '\r' {
		j++
	}
	if len(delim) == 0 || j >= len(s.src) || s.src[j] != '\n' {
		return false
	}
	s.i = j
	s.newline()
	s.stack = append(s.stack, nestLevel{kind: 'H', delim: delim, atLineStart: true})
	return true
}

func identByte(c byte, notFirst bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 || notFirst && (c == '-' || c >= '0' && c <= '9')
}

// quoted handles one byte of a "quoted template".
func (s *nestScanner) quoted() *hcl.Diagnostic {
	switch c := s.src[s.i]; {
	case c == '\\' && s.peek(1) != '\n':
		s.i += 2
	case c == '"':
		s.i++
		s.pop()
	case c == '\n':
		s.pop() // unterminated: the parser reports it; the newline is code's
	case c == '$' || c == '%':
		return s.templateSequence()
	default:
		s.i++
	}
	return nil
}

// heredoc handles one byte of a heredoc template.
func (s *nestScanner) heredoc() *hcl.Diagnostic {
	lvl := s.top()
	if lvl.atLineStart {
		lvl.atLineStart = false
		if s.endsHeredoc(lvl.delim) {
			s.pop()
			return nil
		}
	}
	switch c := s.src[s.i]; c {
	case '\n':
		s.newline()
		lvl.atLineStart = true
	case '$', '%':
		return s.templateSequence()
	default:
		s.i++
	}
	return nil
}

// endsHeredoc reports whether the line at s.i is the end marker delim
// (indentation allowed) and if so moves past the marker.
func (s *nestScanner) endsHeredoc(delim []byte) bool {
	j := s.i
	for j < len(s.src) && (s.src[j] == ' ' || s.src[j] == '\t') {
		j++
	}
	if !bytes.HasPrefix(s.src[j:], delim) {
		return false
	}
	k := j + len(delim)
	if k < len(s.src) && s.src[k] == '\r' {
		k++
	}
	if k < len(s.src) && s.src[k] != '\n' {
		return false
	}
	s.i = j + len(delim)
	return true
}

// templateSequence handles '$' or '%' inside a template: an escape ("$${",
// "%%{"), an interpolation or directive, or a plain character.
func (s *nestScanner) templateSequence() *hcl.Diagnostic {
	c := s.src[s.i]
	switch {
	case s.peek(1) == c && s.peek(2) == '{':
		s.i += 3
	case s.peek(1) == '{':
		if c == '%' {
			if d := s.directive(); d != nil {
				return d
			}
		}
		return s.push('$')
	default:
		s.i++
	}
	return nil
}

// directive counts %{ if } and %{ for } as a level until their end.
func (s *nestScanner) directive() *hcl.Diagnostic {
	j := s.i + 2
	for j < len(s.src) && (s.src[j] == ' ' || s.src[j] == '\t' || s.src[j] == '~') {
		j++
	}
	k := j
	for k < len(s.src) && identByte(s.src[k], k > j) {
		k++
	}
	lvl := s.top()
	switch string(s.src[j:k]) {
	case "if", "for":
		lvl.directives++
		s.depth++
		if s.depth > MaxNesting {
			return s.tooDeep()
		}
	case "endif", "endfor":
		if lvl.directives > 0 {
			lvl.directives--
			s.depth--
		}
	}
	return nil
}

// push opens a counted level at s.i: a bracket, or '$' for "${" and "%{".
func (s *nestScanner) push(kind byte) *hcl.Diagnostic {
	s.depth++
	if s.depth > MaxNesting {
		return s.tooDeep()
	}
	if kind == '$' {
		s.i += 2
	} else {
		s.i++
	}
	s.stack = append(s.stack, nestLevel{kind: kind})
	return nil
}

func (s *nestScanner) pop() {
	if len(s.stack) == 1 {
		return
	}
	lvl := s.top()
	s.ops -= lvl.ops
	if lvl.kind == '"' || lvl.kind == 'H' {
		s.depth -= lvl.directives
	} else {
		s.depth--
	}
	s.stack = s.stack[:len(s.stack)-1]
}

func (s *nestScanner) resetOps() {
	lvl := s.top()
	s.ops -= lvl.ops
	lvl.ops = 0
}

// operator counts the operator of width bytes at s.i.
func (s *nestScanner) operator(width int) *hcl.Diagnostic {
	s.top().ops++
	s.ops++
	if s.ops > MaxOperators {
		return s.diag("Expression too complex", "%s:%d: more than %d operators in one expression. Split it into local values.", MaxOperators)
	}
	s.i += width
	return nil
}

func (s *nestScanner) tooDeep() *hcl.Diagnostic {
	return s.diag("Nesting too deep", "%s:%d: nesting deeper than %d. Brackets, braces, parentheses and template interpolations may nest at most that deep; flatten the expression.", MaxNesting)
}

// diag reports a problem at s.i; format starts with FILE:LINE.
func (s *nestScanner) diag(summary, format string, limit int) *hcl.Diagnostic {
	at := min(s.i, len(s.src))
	col := utf8.RuneCount(s.src[s.lineStart:at]) + 1
	pos := hcl.Pos{Line: s.line, Column: col, Byte: at}
	end := pos
	if at < len(s.src) {
		end.Byte, end.Column = at+1, col+1
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, s.name, s.line, limit),
		Subject:  &hcl.Range{Filename: s.name, Start: pos, End: end},
	}
}
