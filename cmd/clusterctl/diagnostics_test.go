package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
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

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

const starterSpec = "cluster \"demo\" {\n  kubernetes_version = \"1.37.2\"\n}\n\nhost \"cp-1\" {\n  address = \"10.0.0.11\"\n  roles   = [\"control-plane\", \"etcd\", \"worker\"]\n}\n"

// TestValidateHostileInput runs validate on the inputs of issue 14: each
// ends in exit 1 with a message naming the file (and line), within a
// memory bound, without echoing what it must not.
func TestValidateHostileInput(t *testing.T) {
	const secret = "hunter2-from-the-environment"
	t.Setenv("CLUSTERCTL_TEST_SECRET", secret)
	deep := "locals {\n  x = " + strings.Repeat("[", 50000) + strings.Repeat("]", 50000) + "\n}\n"
	huge := strings.Repeat("v", 500000)
	for _, tc := range []struct {
		name  string
		files map[string]string
		link  [2]string // symlink: target, name
		args  []string
		want  []string
	}{
		{name: "deep nesting", files: map[string]string{"deep.hcl": deep},
			want: []string{"Error: Nesting too deep", "on deep.hcl line 2, column 262", "deep.hcl:2: nesting deeper than 256"}},
		{name: "var-file /dev/zero", args: []string{"-var-file", "/dev/zero"},
			want: []string{"Error: Not a regular file", "/dev/zero: not a regular file (a device)."}},
		{name: "large file", files: map[string]string{"big.hcl": strings.Repeat("# x\n", 300000)},
			want: []string{"Error: File too large", "big.hcl: larger than 1 MiB."}},
		{name: "symlink to the environment", link: [2]string{"/proc/self/environ", "env.hcl"},
			want: []string{"Error: Symlink outside the spec folder", "env.hcl: symlink to outside the spec folder."}},
		{name: "duplicate taints", files: map[string]string{"taints.hcl": "host \"w\" {\n  address = \"10.0.0.12\"\n  roles = [\"worker\"]\n  taints = [\"gpu=a:NoSchedule\", \"gpu=b:NoSchedule\"]\n}\n"},
			want: []string{"Error: Duplicate taint", "on taints.hcl line 4, column 33", `Host "w" has two taints with key "gpu" and effect NoSchedule (the first at taints.hcl:4)`}},
		{name: "build metadata", files: map[string]string{"cluster.hcl": strings.Replace(starterSpec, `"1.37.2"`, `"1.37.2+build"`, 1)},
			want: []string{"Error: Invalid version", "on cluster.hcl line 2", `kubernetes_version: version "1.37.2+build" is not MAJOR.MINOR.PATCH`}},
		{name: "IPv6 host in an IPv4 cluster", files: map[string]string{"cluster.hcl": strings.Replace(starterSpec, "10.0.0.11", "fd00::11", 1)},
			want: []string{"Error: Mixed address families", "on cluster.hcl line 6", `Host "cp-1" has the IPv6 address fd00::11, but pod_cidr 10.244.0.0/16 and service_cidr 10.96.0.0/12 are IPv4`}},
		{name: "64-character host name", files: map[string]string{"h.hcl": "host \"" + strings.Repeat("n", 64) + "\" {\n  address = \"10.0.0.12\"\n  roles = [\"worker\"]\n}\n"},
			want: []string{"Error: Invalid host name", "on h.hcl line 1", "is 64 characters, and each dot-separated part (a DNS label) is at most 63 characters"}},
		{name: "huge label value", files: map[string]string{"l.hcl": "host \"w\" {\n  address = \"10.0.0.12\"\n  roles = [\"worker\"]\n  labels = { zone = \"" + huge + "\" }\n}\n"},
			want: []string{"Error: Invalid label", "on l.hcl line 4", `has value "` + strings.Repeat("v", 64) + `…" (500000 bytes); it is 500000 characters, and a label value is at most 63 characters`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"cluster.hcl": starterSpec}, 0o644)
			writeFiles(t, dir, tc.files, 0o644)
			if tc.link[1] != "" {
				if err := os.Symlink(tc.link[0], filepath.Join(dir, tc.link[1])); err != nil {
					t.Skip(err)
				}
			}
			var stdout, stderr string
			var code int
			n := allocated(func() {
				stdout, stderr, code = runCLI(t, append([]string{"-chdir=" + dir, "validate", "-no-color"}, tc.args...)...)
			})
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q", code, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%.2000s", w, stderr)
				}
			}
			if strings.Contains(stderr, secret) || strings.Contains(stderr, strings.Repeat("v", 200)) {
				t.Errorf("stderr echoes what it must not:\n%.2000s", stderr)
			}
			if len(stderr) > 4000 {
				t.Errorf("stderr is %d bytes", len(stderr))
			}
			if n > 128<<20 {
				t.Errorf("validate allocated %d MiB", n>>20)
			}
		})
	}
}

func TestValidateRefusesAFIFO(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.hcl": starterSpec}, 0o644)
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.hcl"), 0o644); err != nil {
		t.Skip(err)
	}
	_, stderr, code := runCLI(t, "-chdir="+dir, "validate")
	if code != 1 || !strings.Contains(stderr, "pipe.hcl: not a regular file (a FIFO).") {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "-chdir="+dir, "fmt", "-check"); code != 1 || !strings.Contains(stderr, "pipe.hcl: not a regular file (a FIFO)") {
		t.Errorf("fmt: exit %d:\n%s", code, stderr)
	}
}

func TestSnippetClipsLongLines(t *testing.T) {
	line := `  labels = { zone = "` + strings.Repeat("v", 1000) + `", k = "x" }`
	hs := strings.Index(line, "k =")
	code, nhs, nhe := clipSnippet(line, hs, hs+1)
	if len(code) > maxSnippetWidth+2*len(ellipsis) || !strings.HasPrefix(code, ellipsis) || code[nhs:nhe] != "k" {
		t.Errorf("clipSnippet = %q, highlight %q", code, code[nhs:nhe])
	}
	code, nhs, nhe = clipSnippet("short\n"+line, 0, 5)
	if !strings.HasPrefix(code, "short\n  labels = { zone = \"vvv") || !strings.HasSuffix(code, ellipsis) || code[nhs:nhe] != "short" {
		t.Errorf("clipSnippet = %q, highlight %q", code, code[nhs:nhe])
	}
	if code, hs, he := clipSnippet("a = 1", 0, 1); code != "a = 1" || hs != 0 || he != 1 {
		t.Errorf("short snippet changed: %q %d %d", code, hs, he)
	}
}
