package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"
)

// fmtExitUnformatted is the exit code of `fmt -check` when a file would
// change (Terraform's).
const fmtExitUnformatted = 3

type fmtOptions struct {
	check, diff, recursive, noColor bool
	list, write                     bool
}

func newFmtCmd(g *globals) *cobra.Command {
	o := fmtOptions{list: true, write: true}
	cmd := &cobra.Command{
		Use:   "fmt [TARGET...]",
		Short: "Rewrite spec files in the canonical format",
		Long: `Fmt rewrites *.hcl and *.hclvars files in the canonical HCL layout. TARGET is a
file or a folder, relative to -chdir; the default is the spec folder. "-" formats
standard input to standard output.

With -check nothing is written and the exit code is 3 when a file would change.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.check {
				o.write = false
			}
			return runFmt(g, o, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.check, "check", false, "write nothing; exit 3 when a file is not formatted")
	f.BoolVar(&o.diff, "diff", false, "print the changes as a unified diff")
	f.BoolVar(&o.recursive, "recursive", false, "also format files in subfolders")
	f.BoolVar(&o.list, "list", true, "print the names of files that change")
	f.BoolVar(&o.write, "write", true, "write the formatted files")
	f.BoolVar(&o.noColor, "no-color", false, "never colour the output")
	return cmd
}

func runFmt(g *globals, o fmtOptions, targets []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(targets) == 1 && targets[0] == "-" {
		src, err := spec.ReadStream(stdin, "<stdin>", spec.MaxFileSize)
		if err != nil {
			return err
		}
		out, diags := formatSource(src, "<stdin>")
		if diags.HasErrors() {
			dw := newDiagWriter(stderr, g.chdir, false)
			dw.sources["<stdin>"] = parsedSource(src, "<stdin>")
			dw.write(diags)
			return silentExit(1)
		}
		if o.check {
			if !bytes.Equal(src, out) {
				return silentExit(fmtExitUnformatted)
			}
			return nil
		}
		_, err = stdout.Write(out)
		return err
	}
	if len(targets) == 0 {
		targets = []string{"."}
	}
	var files []fmtFile
	for _, t := range targets {
		found, err := fmtFiles(g.chdir, t, o.recursive)
		if err != nil {
			return err
		}
		files = append(files, found...)
	}
	dw := newDiagWriter(stderr, g.chdir, !o.noColor && isTerminal(stderr))
	var changed, failed bool
	var errs []error
	done := map[string]bool{} // resolved paths: a symlink and its target are one file
	for _, f := range files {
		path, src, err := f.read()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if done[path] {
			continue
		}
		done[path] = true
		name := f.name
		out, diags := formatSource(src, name)
		if diags.HasErrors() {
			dw.sources[name] = parsedSource(src, name)
			dw.write(diags)
			failed = true
			continue
		}
		if bytes.Equal(src, out) {
			continue
		}
		changed = true
		if o.list {
			fmt.Fprintln(stdout, name)
		}
		if o.diff {
			writeUnifiedDiff(stdout, "a/"+filepath.ToSlash(name), "b/"+filepath.ToSlash(name), string(src), string(out))
		}
		if o.write {
			// Written to the resolved path, so that a symlink stays one.
			if err := atomicfile.WriteKeepMode(path, out, 0o644); err != nil {
				errs = append(errs, err)
			}
		}
	}
	switch {
	case len(errs) > 0:
		return errors.Join(errs...)
	case failed:
		return silentExit(1)
	case o.check && changed:
		return silentExit(fmtExitUnformatted)
	}
	return nil
}

// formatSource formats one file, refusing files that do not parse (the
// formatter would otherwise mangle them) and, before parsing, files nested
// deeper than the parser can take.
func formatSource(src []byte, name string) ([]byte, hcl.Diagnostics) {
	if d := spec.CheckNesting(src, name); d != nil {
		return nil, hcl.Diagnostics{d}
	}
	if _, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}

// parsedSource is a file as the diagnostics writer shows it.
func parsedSource(src []byte, name string) *hcl.File {
	f := &hcl.File{}
	if spec.CheckNesting(src, name) == nil {
		if pf, _ := hclsyntax.ParseConfig(src, name, hcl.InitialPos); pf != nil {
			f = pf
		}
	}
	f.Bytes = src
	return f
}

// fmtFile is one file fmt handles: rel inside the folder root, shown as
// name.
type fmtFile struct {
	root, rel, name string
}

// read returns the file's resolved path and content, with the spec
// loader's rules: bounded, regular files only, and a symlink only when it
// resolves inside the folder (the spec folder, the folder target, or the
// folder of a file target).
func (f fmtFile) read() (string, []byte, error) {
	path, err := spec.ResolveSpecFile(f.root, f.rel)
	if err != nil {
		return "", nil, renamed(err, f.name)
	}
	src, err := spec.ReadFile(path, f.name, spec.MaxFileSize)
	return path, src, err
}

// renamed makes a spec.FileError name the file as fmt lists it.
func renamed(err error, name string) error {
	var fe *spec.FileError
	if errors.As(err, &fe) {
		c := *fe
		c.Name = name
		return &c
	}
	return err
}

// isFmtFile reports whether fmt handles a file name.
func isFmtFile(name string) bool {
	return spec.SpecFileName(name) || (strings.HasSuffix(name, spec.VarsSuffix) && !strings.HasPrefix(name, "."))
}

// fmtFiles lists the files a target names, shown relative to dir (a
// target given as an absolute path stays absolute).
func fmtFiles(dir, target string, recursive bool) ([]fmtFile, error) {
	path := target
	if !filepath.IsAbs(target) {
		path = filepath.Join(dir, target)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		if !strings.HasSuffix(target, spec.SpecSuffix) && !strings.HasSuffix(target, spec.VarsSuffix) {
			return nil, fmt.Errorf("%s: only *%s and *%s files can be formatted", target, spec.SpecSuffix, spec.VarsSuffix)
		}
		return []fmtFile{{root: filepath.Dir(path), rel: filepath.Base(path), name: filepath.Clean(target)}}, nil
	}
	var out []fmtFile
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && (!recursive || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		// Symlinks and special files are listed too: reading them applies
		// the same rules as validate, and says why one is refused.
		if !isFmtFile(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(path, p)
		if err != nil {
			return err
		}
		out = append(out, fmtFile{root: path, rel: rel, name: filepath.Clean(filepath.Join(target, rel))})
		return nil
	})
	return out, err
}

// diffEdit is one line of a line diff: ' ' kept, '-' removed, '+' added.
type diffEdit struct {
	op   byte
	line string
}

// writeUnifiedDiff prints a unified diff of two texts with three lines of
// context, like diff -u.
func writeUnifiedDiff(w io.Writer, oldName, newName, a, b string) {
	edits := diffLines(splitLines(a), splitLines(b))
	fmt.Fprintf(w, "--- %s\n+++ %s\n", oldName, newName)
	const ctx = 3
	for i := 0; i < len(edits); {
		if edits[i].op == ' ' {
			i++
			continue
		}
		// A hunk runs from ctx lines before this change to ctx lines after
		// the last change that is at most 2*ctx kept lines away.
		start := max(0, i-ctx)
		end := i
		for j := i; j < len(edits); j++ {
			if edits[j].op != ' ' {
				end = j
				continue
			}
			if j-end > 2*ctx {
				break
			}
		}
		end = min(len(edits), end+ctx+1)
		oldStart, newStart := 1, 1
		for _, e := range edits[:start] {
			if e.op != '+' {
				oldStart++
			}
			if e.op != '-' {
				newStart++
			}
		}
		var oldN, newN int
		for _, e := range edits[start:end] {
			if e.op != '+' {
				oldN++
			}
			if e.op != '-' {
				newN++
			}
		}
		fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(oldStart, oldN), hunkRange(newStart, newN))
		for _, e := range edits[start:end] {
			fmt.Fprintf(w, "%c%s\n", e.op, e.line)
		}
		i = end
	}
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start-1)
	}
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diffLines is Myers' shortest edit script over lines. For very different
// large inputs, where the search would need too much memory, it falls back
// to replacing everything.
func diffLines(a, b []string) []diffEdit {
	n, m := len(a), len(b)
	limit := n + m
	off := limit + 1
	v := make([]int, 2*limit+3)
	var trace [][]int
	const maxCells = 1 << 24
	for d := 0; d <= limit; d++ {
		if (d+1)*len(v) > maxCells {
			return replaceAll(a, b)
		}
		trace = append(trace, append([]int(nil), v...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(a, b, trace, off)
			}
		}
	}
	return replaceAll(a, b)
}

func backtrack(a, b []string, trace [][]int, off int) []diffEdit {
	var rev []diffEdit
	x, y := len(a), len(b)
	for d := len(trace) - 1; d >= 0; d-- {
		v := trace[d]
		k := x - y
		var prevK int
		if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := v[off+prevK]
		prevY := prevX - prevK
		for x > prevX && y > prevY && x > 0 && y > 0 {
			rev = append(rev, diffEdit{' ', a[x-1]})
			x--
			y--
		}
		if d > 0 {
			if x == prevX {
				rev = append(rev, diffEdit{'+', b[y-1]})
				y--
			} else {
				rev = append(rev, diffEdit{'-', a[x-1]})
				x--
			}
		}
	}
	out := make([]diffEdit, len(rev))
	for i, e := range rev {
		out[len(rev)-1-i] = e
	}
	return out
}

func replaceAll(a, b []string) []diffEdit {
	var out []diffEdit
	for _, l := range a {
		out = append(out, diffEdit{'-', l})
	}
	for _, l := range b {
		out = append(out, diffEdit{'+', l})
	}
	return out
}
