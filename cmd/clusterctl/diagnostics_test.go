package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/spec"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

var update = flag.Bool("update", false, "rewrite the golden files of the spec corpus")

// corpusCase is one folder of spec/testdata/{invalid,warnings}: spec files,
// optional args (extra command-line arguments, one per line) and env
// (KEY=VALUE lines), first_error or first_warning ("FILE:LINE Summary" of
// the first diagnostic of that severity, "- Summary" when it has no
// source; further lines must also be present), must_not_print (strings,
// such as sensitive values, that no output may contain), and the golden outputs
// expected.txt and expected.json.
type corpusCase struct {
	dir  string
	args []string
	env  []string
}

func readCorpus(t *testing.T, kind string) []corpusCase {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("..", "..", "spec", "testdata", kind, "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no corpus in spec/testdata/%s: %v", kind, err)
	}
	var out []corpusCase
	for _, d := range dirs {
		c := corpusCase{dir: d, args: readLines(t, filepath.Join(d, "args")), env: readLines(t, filepath.Join(d, "env"))}
		out = append(out, c)
	}
	return out
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), args, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/clusterctl -run TestSpecCorpus -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

type validateJSON struct {
	Valid        bool             `json:"valid"`
	ErrorCount   int              `json:"error_count"`
	WarningCount int              `json:"warning_count"`
	Diagnostics  []jsonDiagnostic `json:"diagnostics"`
}

func TestSpecCorpus(t *testing.T) {
	for _, kind := range []string{"invalid", "warnings"} {
		wantCode, severity, expectFile := 1, "error", "first_error"
		if kind == "warnings" {
			wantCode, severity, expectFile = 0, "warning", "first_warning"
		}
		for _, c := range readCorpus(t, kind) {
			t.Run(kind+"/"+filepath.Base(c.dir), func(t *testing.T) {
				for _, kv := range c.env {
					k, v, _ := strings.Cut(kv, "=")
					t.Setenv(k, v)
				}
				base := append([]string{"-chdir=" + c.dir, "validate"}, c.args...)

				stdout, stderr, code := runCLI(t, append(base, "-no-color")...)
				if code != wantCode {
					t.Errorf("exit code %d, want %d\nstderr:\n%s", code, wantCode, stderr)
				}
				golden(t, filepath.Join(c.dir, "expected.txt"), stderr+stdout)

				jout, jerr, jcode := runCLI(t, append(base, "-json")...)
				if jcode != wantCode || jerr != "" {
					t.Errorf("-json: exit code %d, stderr %q", jcode, jerr)
				}
				golden(t, filepath.Join(c.dir, "expected.json"), jout)

				var res validateJSON
				if err := json.Unmarshal([]byte(jout), &res); err != nil {
					t.Fatalf("-json output: %v\n%s", err, jout)
				}
				if res.Valid != (kind == "warnings") || len(res.Diagnostics) != res.ErrorCount+res.WarningCount {
					t.Errorf("valid %v, %d errors, %d warnings, %d diagnostics", res.Valid, res.ErrorCount, res.WarningCount, len(res.Diagnostics))
				}
				var first string
				var all []string
				for _, d := range res.Diagnostics {
					loc := "-"
					if d.Range != nil {
						loc = fmt.Sprintf("%s:%d", d.Range.Filename, d.Range.Start.Line)
						if !strings.Contains(stderr, fmt.Sprintf("  on %s line %d, column %d", d.Range.Filename, d.Range.Start.Line, d.Range.Start.Column)) {
							t.Errorf("human output lacks the location of %q", d.Summary)
						}
					}
					line := loc + " " + d.Summary
					all = append(all, line)
					if first == "" && d.Severity == severity {
						first = line
					}
				}
				for _, secret := range readLines(t, filepath.Join(c.dir, "must_not_print")) {
					if strings.Contains(stdout+stderr+jout, secret) {
						t.Errorf("the output shows the sensitive value %q", secret)
					}
				}
				expect := readLines(t, filepath.Join(c.dir, expectFile))
				if len(expect) == 0 {
					t.Fatalf("%s is missing", expectFile)
				}
				if first != expect[0] {
					t.Errorf("first %s is %q, want %q; all:\n%s", severity, first, expect[0], strings.Join(all, "\n"))
				}
				for _, e := range expect[1:] {
					if !strings.Contains(strings.Join(all, "\n")+"\n", e+"\n") {
						t.Errorf("missing diagnostic %q; all:\n%s", e, strings.Join(all, "\n"))
					}
				}
			})
		}
	}
}

func TestValidateExamples(t *testing.T) {
	for _, ex := range []string{"single-node", "lab", "ha"} {
		dir := filepath.Join("..", "..", "examples", ex)
		stdout, stderr, code := runCLI(t, "-chdir="+dir, "validate")
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Success!") {
			t.Errorf("validate %s: exit %d\nstdout: %s\nstderr: %s", ex, code, stdout, stderr)
		}
		if _, stderr, code := runCLI(t, "-chdir="+dir, "fmt", "-check"); code != 0 {
			t.Errorf("fmt -check %s: exit %d: %s", ex, code, stderr)
		}
	}
}

func TestDiagnosticRendering(t *testing.T) {
	dir := t.TempDir()
	src := "cluster \"x\" {\n\tkubernetes_version = \"1.37\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "c.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	subject := hcl.Range{Filename: "c.hcl", Start: hcl.Pos{Line: 2, Column: 23, Byte: 36}, End: hcl.Pos{Line: 2, Column: 29, Byte: 42}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Invalid version", Detail: "Bad.", Subject: &subject},
		{Severity: hcl.DiagWarning, Summary: "No source", Detail: "Somewhere."},
		{Severity: hcl.DiagError, Summary: "Gone", Subject: &hcl.Range{Filename: "missing.hcl", Start: hcl.Pos{Line: 9, Column: 1}}},
	}
	var plain bytes.Buffer
	newDiagWriter(&plain, dir, false).write(diags)
	want := "Error: Invalid version\n\n" +
		"  on c.hcl line 2, column 23, in cluster \"x\":\n" +
		"   2: \tkubernetes_version = \"1.37\"\n" +
		"      \t" + strings.Repeat(" ", len("kubernetes_version = ")) + "^^^^^^\n\n" +
		"Bad.\n\n" +
		"Warning: No source\n\n" +
		"Somewhere.\n\n" +
		"Error: Gone\n\n" +
		"  on missing.hcl line 9, column 1:\n\n"
	if diff := cmp.Diff(want, plain.String()); diff != "" {
		t.Errorf("plain rendering (-want +got):\n%s", diff)
	}
	var color bytes.Buffer
	newDiagWriter(&color, dir, true).write(diags[:1])
	if !strings.Contains(color.String(), "\x1b[1;4m\"1.37\"\x1b[0m") || strings.Contains(color.String(), "^") {
		t.Errorf("colour rendering should underline the subject instead of carets:\n%q", color.String())
	}
	js := newDiagWriter(nil, dir, false).toJSON(diags[:1])
	if sn := js[0].Snippet; sn == nil || sn.Code[sn.HighlightStartOffset:sn.HighlightEndOffset] != "\"1.37\"" || sn.StartLine != 2 || sn.Context != "cluster \"x\"" {
		t.Errorf("snippet %+v", js[0].Snippet)
	}
}

// FuzzRenderDiagnostics renders the diagnostics of arbitrary specs, as
// text with and without colour and as JSON: the renderer must cope with
// every range the parser and validator produce.
func FuzzRenderDiagnostics(f *testing.F) {
	for _, kind := range []string{"invalid", "warnings"} {
		files, _ := filepath.Glob(filepath.Join("..", "..", "spec", "testdata", kind, "*", "*.hcl"))
		for _, name := range files {
			src, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Add([]byte("cluster \"x\" {\r\n  kubernetes_version = \"1.0\"\r\n}\r\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		_, diags := spec.Parse(map[string][]byte{"fuzz.hcl": src}, spec.VarInputs{})
		for _, color := range []bool{false, true} {
			var out bytes.Buffer
			w := newDiagWriter(&out, t.TempDir(), color)
			file, _ := hclsyntax.ParseConfig(src, "fuzz.hcl", hcl.InitialPos)
			if file == nil {
				file = &hcl.File{}
			}
			file.Bytes = src
			w.sources["fuzz.hcl"] = file
			w.write(diags)
			if len(diags) > 0 && out.Len() == 0 {
				t.Fatal("diagnostics rendered as nothing")
			}
			if _, err := json.Marshal(w.toJSON(diags)); err != nil {
				t.Fatal(err)
			}
		}
	})
}
