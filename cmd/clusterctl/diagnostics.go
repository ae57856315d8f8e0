package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/clusterctl/clusterctl/spec"
	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/pflag"
)

// This file renders spec diagnostics (Terraform's layout) and holds the
// spec-loading helpers every command that reads the spec uses.

// varFlag appends -var and -var-file options to one list, so that their
// command-line order (later wins) is kept across both flags.
type varFlag struct {
	args *[]spec.VarArg
	file bool
}

func (f varFlag) String() string { return "" }
func (f varFlag) Type() string {
	if f.file {
		return "FILE"
	}
	return "NAME=VALUE"
}
func (f varFlag) Set(s string) error {
	*f.args = append(*f.args, spec.VarArg{File: f.file, Value: s})
	return nil
}

// specOptions are the flags of commands that read the spec.
type specOptions struct {
	vars    spec.VarInputs
	noColor bool
}

// addSpecFlags registers -var, -var-file and -no-color.
func addSpecFlags(fs *pflag.FlagSet, o *specOptions) {
	fs.Var(varFlag{args: &o.vars.Args}, "var", "set a variable: -var 'NAME=VALUE' (repeatable; later wins)")
	fs.Var(varFlag{args: &o.vars.Args, file: true}, "var-file", "read variable values from an HCL `FILE` of NAME = VALUE lines (repeatable)")
	fs.BoolVar(&o.noColor, "no-color", false, "never colour the output")
}

// loadSpec reads the spec in g.chdir and prints its diagnostics to stderr.
// On errors it returns silentExit(1): the diagnostics say everything.
func loadSpec(g *globals, o *specOptions, stderr io.Writer) (*spec.Cluster, error) {
	c, diags := spec.Load(g.chdir, o.vars)
	newDiagWriter(stderr, g.chdir, !o.noColor && isTerminal(stderr)).write(diags)
	if diags.HasErrors() {
		return nil, silentExit(1)
	}
	return c, nil
}

// isTerminal reports whether w is a terminal that takes colour.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// diagWriter renders diagnostics like Terraform: severity and summary, the
// file and line, the source line with the subject marked, the detail.
type diagWriter struct {
	w       io.Writer
	dir     string // file names are relative to it
	color   bool
	sources map[string]*hcl.File
}

func newDiagWriter(w io.Writer, dir string, color bool) *diagWriter {
	return &diagWriter{w: w, dir: dir, color: color, sources: map[string]*hcl.File{}}
}

// source returns the parsed file a diagnostic points into, or nil.
func (d *diagWriter) source(name string) *hcl.File {
	if f, ok := d.sources[name]; ok {
		return f
	}
	// Read the file as the spec loader does: bounded, and never a symlink
	// that leads out of the spec folder.
	var f *hcl.File
	if src, err := spec.ReadSource(d.dir, name); err == nil {
		f = parsedSource(src, name)
	}
	d.sources[name] = f
	return f
}

func (d *diagWriter) write(diags hcl.Diagnostics) {
	for _, diag := range diags {
		d.writeOne(diag)
	}
}

func (d *diagWriter) paint(code, s string) string {
	if !d.color {
		return s
	}
	return code + s + "\x1b[0m"
}

const (
	ansiRed       = "\x1b[1;31m"
	ansiYellow    = "\x1b[1;33m"
	ansiBold      = "\x1b[1m"
	ansiUnderline = "\x1b[1;4m"
)

func (d *diagWriter) writeOne(diag *hcl.Diagnostic) {
	sev := d.paint(ansiRed, "Error")
	if diag.Severity == hcl.DiagWarning {
		sev = d.paint(ansiYellow, "Warning")
	}
	fmt.Fprintf(d.w, "%s: %s\n\n", sev, d.paint(ansiBold, diag.Summary))
	if diag.Subject != nil {
		sn := d.snippet(diag.Subject)
		ctx := ""
		if sn != nil && sn.Context != "" {
			ctx = ", in " + sn.Context
		}
		fmt.Fprintf(d.w, "  on %s line %d, column %d%s:\n", diag.Subject.Filename, diag.Subject.Start.Line, diag.Subject.Start.Column, ctx)
		if sn != nil {
			d.writeSnippet(sn)
		}
		fmt.Fprintln(d.w)
	}
	if diag.Detail != "" {
		fmt.Fprintf(d.w, "%s\n\n", diag.Detail)
	}
}

// writeSnippet prints the subject's lines, the subject underlined on a
// terminal and marked with carets otherwise.
func (d *diagWriter) writeSnippet(sn *jsonSnippet) {
	hs, he := sn.HighlightStartOffset, sn.HighlightEndOffset
	ls := 0
	for i, line := range strings.Split(sn.Code, "\n") {
		le := ls + len(line)
		ms, me := max(hs, ls), min(he, le)
		marked := ms < me || (hs == he && hs >= ls && hs <= le)
		if !marked {
			fmt.Fprintf(d.w, "%4d: %s\n", sn.StartLine+i, strings.TrimSuffix(line, "\r"))
			ls = le + 1
			continue
		}
		before, mark, after := line[:ms-ls], line[ms-ls:me-ls], strings.TrimSuffix(line[me-ls:], "\r")
		if d.color {
			fmt.Fprintf(d.w, "%4d: %s%s%s\n", sn.StartLine+i, before, d.paint(ansiUnderline, mark), after)
		} else {
			pad := strings.Map(func(r rune) rune {
				if r == '\t' {
					return r
				}
				return ' '
			}, before)
			fmt.Fprintf(d.w, "%4d: %s%s%s\n      %s%s\n", sn.StartLine+i, before, mark, after, pad, strings.Repeat("^", max(1, utf8.RuneCountInString(mark))))
		}
		ls = le + 1
	}
}

// maxSnippetLines caps the source shown for a subject that spans a block.
const maxSnippetLines = 3

// snippet extracts the lines of a subject range from its file.
func (d *diagWriter) snippet(r *hcl.Range) *jsonSnippet {
	f := d.source(r.Filename)
	if f == nil || r.Start.Byte < 0 || r.End.Byte < r.Start.Byte || r.End.Byte > len(f.Bytes) {
		return nil
	}
	src := f.Bytes
	start := bytes.LastIndexByte(src[:r.Start.Byte], '\n') + 1
	end := len(src)
	if i := bytes.IndexByte(src[r.End.Byte:], '\n'); i >= 0 {
		end = r.End.Byte + i
	}
	if r.End.Byte > r.Start.Byte && r.End.Byte > start && src[r.End.Byte-1] == '\n' {
		end = r.End.Byte - 1 // a range ending in a newline stops at its line
	}
	code := string(src[start:end])
	hs, he := r.Start.Byte-start, min(r.End.Byte-start, len(code))
	if lines := strings.SplitN(code, "\n", maxSnippetLines+1); len(lines) > maxSnippetLines {
		code = strings.Join(lines[:maxSnippetLines], "\n")
		he = min(he, len(code))
	}
	code = strings.TrimRight(code, "\r")
	hs, he = min(hs, len(code)), min(he, len(code))
	code, hs, he = clipSnippet(code, hs, he)
	sn := &jsonSnippet{Code: code, StartLine: r.Start.Line - strings.Count(string(src[start:r.Start.Byte]), "\n"), HighlightStartOffset: hs, HighlightEndOffset: he}
	if nav, ok := f.Nav.(interface{ ContextString(int) string }); ok {
		sn.Context = spec.ClipQuoted(nav.ContextString(r.Start.Byte))
	}
	return sn
}

// maxSnippetWidth caps each source line shown: a longer line is cut to a
// window around the subject, marked with ellipses, so that a huge value
// written in the spec is not echoed whole.
const maxSnippetWidth = 160

// clipSnippet cuts the long lines of code, moving the highlight offsets
// hs and he along.
func clipSnippet(code string, hs, he int) (string, int, int) {
	if len(code) <= maxSnippetWidth {
		return code, hs, he
	}
	var b strings.Builder
	nhs, nhe := hs, he
	ls := 0
	for i, line := range strings.Split(code, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		le := ls + len(line)
		ws, we := snippetWindow(line, hs-ls)
		shift := func(p int) int { // p inside this line -> offset in the output
			prefix := 0
			if ws > 0 {
				prefix = len(ellipsis)
			}
			return b.Len() + prefix + min(max(p-ls, ws), we) - ws
		}
		if hs >= ls && hs <= le {
			nhs = shift(hs)
		}
		if he >= ls && he <= le {
			nhe = shift(he)
		}
		if ws > 0 {
			b.WriteString(ellipsis)
		}
		b.WriteString(line[ws:we])
		if we < len(line) {
			b.WriteString(ellipsis)
		}
		ls = le + 1
	}
	return b.String(), nhs, max(nhe, nhs)
}

const ellipsis = "…"

// snippetWindow is the part of line to show: all of it when it is short,
// else maxSnippetWidth bytes starting a little before offset at (when at
// falls inside the line), on character boundaries.
func snippetWindow(line string, at int) (int, int) {
	if len(line) <= maxSnippetWidth {
		return 0, len(line)
	}
	ws := 0
	if at > 0 && at < len(line) {
		ws = max(0, at-maxSnippetWidth/4)
	}
	we := min(len(line), ws+maxSnippetWidth)
	for ws > 0 && !utf8.RuneStart(line[ws]) {
		ws--
	}
	for we < len(line) && !utf8.RuneStart(line[we]) {
		we--
	}
	return ws, we
}

// The JSON shape of `validate -json` (and of diagnostics in other -json
// output): Terraform's, so tools written for it read ours.
type jsonDiagnostic struct {
	Severity string       `json:"severity"`
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Range    *jsonRange   `json:"range,omitempty"`
	Snippet  *jsonSnippet `json:"snippet,omitempty"`
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

type jsonSnippet struct {
	Context              string `json:"context,omitempty"`
	Code                 string `json:"code"`
	StartLine            int    `json:"start_line"`
	HighlightStartOffset int    `json:"highlight_start_offset"`
	HighlightEndOffset   int    `json:"highlight_end_offset"`
}

func (d *diagWriter) toJSON(diags hcl.Diagnostics) []jsonDiagnostic {
	out := []jsonDiagnostic{}
	for _, diag := range diags {
		j := jsonDiagnostic{Severity: "error", Summary: diag.Summary, Detail: diag.Detail}
		if diag.Severity == hcl.DiagWarning {
			j.Severity = "warning"
		}
		if r := diag.Subject; r != nil {
			j.Range = &jsonRange{
				Filename: r.Filename,
				Start:    jsonPos{r.Start.Line, r.Start.Column, r.Start.Byte},
				End:      jsonPos{r.End.Line, r.End.Column, r.End.Byte},
			}
			j.Snippet = d.snippet(r)
		}
		out = append(out, j)
	}
	return out
}

// writeJSON prints v indented, with a trailing newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
