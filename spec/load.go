package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Spec file name patterns.
const (
	SpecSuffix     = ".hcl"          // every *.hcl file of the folder is part of the spec
	AutoVarsSuffix = ".auto.hclvars" // variable values loaded automatically, in name order
	VarsSuffix     = ".hclvars"      // variable values files (for -var-file)
)

// Load reads the spec in dir: every *.hcl file (sorted by name, merged into
// one spec), every *.auto.hclvars file, and the -var-file files of vars
// (relative paths are relative to dir). File names in diagnostics are
// relative to dir. Relative paths written in the spec are resolved against
// the folder of the file they are written in. The Cluster is nil when the
// diagnostics hold an error.
func Load(dir string, vars VarInputs) (*Cluster, hcl.Diagnostics) {
	if vars.Env == nil {
		vars.Env = os.Environ()
	}
	files, diags := ReadDir(dir, vars)
	if diags.HasErrors() {
		return nil, finish(diags)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	c, pdiags := parse(files, vars, abs)
	return c, append(diags, pdiags...)
}

// ReadDir returns the files Load would read, keyed by their name relative
// to dir (a -var-file keeps the path as given). Every read is bounded by
// MaxFileSize and refuses what is not a regular file; a spec file that is
// a symlink is read only when it resolves inside dir (see ReadSpecFile).
func ReadDir(dir string, vars VarInputs) (map[string][]byte, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read the spec folder", Detail: err.Error()}}
	}
	files := map[string][]byte{}
	total := 0
	add := func(name string, src []byte) bool {
		total += len(src)
		if total > MaxSpecSize {
			diags = append(diags, specTooLarge(name))
			return false
		}
		files[name] = src
		return true
	}
	for _, e := range entries {
		name := e.Name()
		if !SpecFileName(name) && !strings.HasSuffix(name, AutoVarsSuffix) || e.IsDir() {
			continue
		}
		src, err := ReadSpecFile(dir, name)
		if err != nil {
			diags = append(diags, fileDiag("Cannot read spec file", err))
			continue
		}
		if !add(name, src) {
			return files, diags
		}
	}
	for _, a := range vars.Args {
		if !a.File {
			continue
		}
		src, err := readVarFileArg(dir, a.Value)
		if err != nil {
			diags = append(diags, fileDiag("Cannot read -var-file", err))
			continue
		}
		if !add(a.Value, src) {
			return files, diags
		}
	}
	return files, diags
}

// specTooLarge reports the file that takes a spec past MaxSpecSize.
func specTooLarge(name string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Spec too large",
		Detail: fmt.Sprintf("%s: the spec and variable files together are larger than %s.", name, sizeText(MaxSpecSize))}
}

// readVarFileArg reads a -var-file: relative paths are relative to dir,
// and one inside dir follows the symlink rule of the spec files.
func readVarFileArg(dir, p string) ([]byte, error) {
	if insideLexically(p) {
		return ReadSpecFile(dir, p)
	}
	path := p
	if !filepath.IsAbs(p) {
		path = filepath.Join(dir, p)
	}
	return ReadFile(path, p, MaxFileSize)
}

// SpecFileName reports whether a file name is part of a spec folder: *.hcl,
// ignoring hidden files and editor backups.
func SpecFileName(name string) bool {
	return strings.HasSuffix(name, SpecSuffix) && !strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "#") && !strings.HasSuffix(name, "~")
}

// Parse decodes a spec from in-memory files keyed by name: names ending in
// .auto.hclvars are variable files loaded automatically, names given as
// -var-file in vars are variable files, every other name is a spec file.
// Relative paths in the spec resolve against the folder of the file name.
func Parse(files map[string][]byte, vars VarInputs) (*Cluster, hcl.Diagnostics) {
	return parse(files, vars, "")
}

func parse(files map[string][]byte, vars VarInputs, baseDir string) (*Cluster, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	argFiles := map[string]bool{}
	for _, a := range vars.Args {
		if a.File {
			argFiles[a.Value] = true
		}
	}
	var specFiles []*hcl.File
	var varFiles []varFile
	refused, total := false, 0
	for _, name := range sortedKeys(files) {
		if total += len(files[name]); total > MaxSpecSize && !refused {
			diags, refused = append(diags, specTooLarge(name)), true
		}
		if d := checkSource(files[name], name); d != nil {
			diags, refused = append(diags, d), true
			continue
		}
		f, fdiags := hclsyntax.ParseConfig(files[name], name, hcl.InitialPos)
		diags = append(diags, fdiags...)
		switch {
		case argFiles[name]:
			varFiles = append(varFiles, varFile{name: name, kind: FromVarFile, file: f})
		case strings.HasSuffix(name, AutoVarsSuffix):
			varFiles = append(varFiles, varFile{name: name, kind: FromAutoFile, file: f})
		default:
			specFiles = append(specFiles, f)
		}
	}
	if refused {
		return nil, finish(diags)
	}
	for _, a := range vars.Args {
		if _, ok := files[a.Value]; a.File && !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing -var-file", Detail: fmt.Sprintf("The file %q given with -var-file was not provided.", a.Value)})
		}
	}
	if len(specFiles) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No spec files",
			Detail: "The folder has no *.hcl files. Run `clusterctl init` to write a starter spec, or use -chdir=DIR to point at a spec folder."})
	}
	if diags.HasErrors() {
		return nil, finish(diags)
	}
	c, bdiags := build(specFiles, varFiles, vars, baseDir)
	diags = finish(append(diags, bdiags...))
	if diags.HasErrors() {
		return nil, diags
	}
	return c, diags
}

// checkSource refuses, before the HCL parser sees it, a file larger than
// MaxFileSize or nested deeper than the parser can take.
func checkSource(src []byte, name string) *hcl.Diagnostic {
	if len(src) > MaxFileSize {
		return fileDiag("Cannot read spec file", tooLarge(name, MaxFileSize))
	}
	return CheckNesting(src, name)
}

// finish sorts the diagnostics and clips the user values they quote.
func finish(diags hcl.Diagnostics) hcl.Diagnostics {
	diags = sortDiagnostics(diags)
	clipDiagnostics(diags)
	return diags
}

// sortDiagnostics orders diagnostics by file and position (those without a
// source first) and drops exact repeats, so output is stable.
func sortDiagnostics(diags hcl.Diagnostics) hcl.Diagnostics {
	key := func(d *hcl.Diagnostic) (string, int) {
		if d.Subject == nil {
			return "", -1
		}
		return d.Subject.Filename, d.Subject.Start.Byte
	}
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		af, ab := key(a)
		bf, bb := key(b)
		if c := strings.Compare(af, bf); c != 0 {
			return c
		}
		return ab - bb
	})
	var out hcl.Diagnostics
	for _, d := range diags {
		if len(out) > 0 && sameDiagnostic(out[len(out)-1], d) {
			continue
		}
		out = append(out, d)
	}
	return out
}

func sameDiagnostic(a, b *hcl.Diagnostic) bool {
	if a.Severity != b.Severity || a.Summary != b.Summary || a.Detail != b.Detail {
		return false
	}
	if a.Subject == nil || b.Subject == nil {
		return a.Subject == b.Subject
	}
	return *a.Subject == *b.Subject
}
